"""Command line evaluation: accuracy and background share per test condition.

``python -m isnet.evaluate CKPT [CKPT ...] --split biased unbiased confounding [--json]``
rebuilds each checkpoint's test images from its saved data description
(:class:`isnet.training.experiment.ExperimentData`) and prints one row per (checkpoint, split).
The measurements themselves are :func:`isnet.training.evaluate.evaluate_checkpoint`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from isnet.training.evaluate import evaluate_checkpoint


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown table: one row per (checkpoint, split)."""
    lines = ["| checkpoint | split | accuracy (%) | background share | images |",
             "|---|---|---:|---:|---:|"]
    for name, per_split in results.items():
        for split, values in per_split.items():
            lines.append(f"| {name} | {split} | {100 * values['accuracy']:.1f} | "
                         f"{values['background_share']:.3f} | {values['count']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m isnet.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint files")
    parser.add_argument("--split", nargs="+", default=["biased", "unbiased", "confounding"],
                        choices=["biased", "unbiased", "confounding"], help="test conditions")
    parser.add_argument("--limit", type=int, default=None, help="test images per split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = {path.stem: evaluate_checkpoint(path, args.split, args.limit, args.batch_size)
               for path in args.checkpoints}
    sys.stdout.write((json.dumps(results, indent=2) if args.json else format_table(results))
                     + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
