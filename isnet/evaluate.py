"""Command line evaluation: accuracy and background share per test condition.

``python -m isnet.evaluate CKPT [CKPT ...] --split biased unbiased confounding [--json]
[--input-rule trained|zb|epsilon]`` rebuilds each checkpoint's test images from its saved data
description (:class:`isnet.training.experiment.ExperimentData`) and prints one row per
(checkpoint, split). The background share uses the LRP input rule each model was trained with
unless ``--input-rule`` names one for all (the table says which). The measurements themselves
are :func:`isnet.training.evaluate.evaluate_checkpoint`.

``--robustness`` measures instead how much each unseen background change costs: accuracy on the
clean test images against the same images with each bias kind planted with a random other class
(:mod:`isnet.training.robustness`), one row per checkpoint, the drop in points per kind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from isnet.data.bias.config import BIAS_KINDS
from isnet.training.evaluate import evaluate_checkpoint
from isnet.training.robustness import checkpoint_robustness


def row_names(paths: Sequence[Path]) -> list[str]:
    """A name per checkpoint for the table and the JSON: the file's stem, or ``folder/stem`` when
    two files share a stem (so no result overwrites another)."""
    stems = [path.stem for path in paths]
    names = [f"{path.parent.name}/{path.stem}" if stems.count(path.stem) > 1 else path.stem
             for path in paths]
    return [name if names.count(name) == 1 else str(path.with_suffix(""))
            for name, path in zip(names, paths, strict=True)]


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown table: one row per (checkpoint, split)."""
    lines = ["| checkpoint | split | accuracy (%) | background share | input rule | images |",
             "|---|---|---:|---:|---|---:|"]
    for name, per_split in results.items():
        for split, values in per_split.items():
            rule = {True: "z^B", False: "ε"}.get(values.get("zb", True))
            lines.append(f"| {name} | {split} | {100 * values['accuracy']:.1f} | "
                         f"{values['background_share']:.3f} | {rule} | {values['count']} |")
    return "\n".join(lines)


def format_robustness(results: dict[str, dict[str, dict]]) -> str:
    """Markdown table: one row per checkpoint, clean accuracy and the drop per planted kind."""
    kinds = list(dict.fromkeys(k for per_kind in results.values() for k in per_kind))
    lines = ["| checkpoint | clean accuracy (%) | " +
             " | ".join(f"{kind}: drop (points)" for kind in kinds) + " |",
             "|---|---:|" + "---:|" * len(kinds)]
    for name, per_kind in results.items():
        clean = next(iter(per_kind.values()))["clean"]
        drops = [f"{per_kind[k]['drop_points']:.1f}" if k in per_kind else "–" for k in kinds]
        lines.append(f"| {name} | {100 * clean:.1f} | " + " | ".join(drops) + " |")
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
    parser.add_argument("--input-rule", choices=["trained", "zb", "epsilon"], default="trained",
                        help="LRP rule at the input layer for the background share (default: "
                             "each model's training rule)")
    parser.add_argument("--data-seed", type=int, default=None,
                        help="rebuild the test images with this seed instead of each "
                             "checkpoint's own (compare runs on the same images)")
    parser.add_argument("--robustness", action="store_true",
                        help="measure the accuracy drop under unseen background changes instead")
    parser.add_argument("--kinds", nargs="+", default=list(BIAS_KINDS), choices=BIAS_KINDS,
                        help="bias kinds to plant with --robustness (default: all)")
    args = parser.parse_args(argv)
    names = row_names(args.checkpoints)
    if args.robustness:
        results = {name: checkpoint_robustness(path, args.kinds, args.limit,
                                               max(args.batch_size, 1), args.data_seed)
                   for name, path in zip(names, args.checkpoints, strict=True)}
        sys.stdout.write((json.dumps(results, indent=2) if args.json
                          else format_robustness(results)) + "\n")
        return 0
    zb = {"trained": None, "zb": True, "epsilon": False}[args.input_rule]
    results = {name: evaluate_checkpoint(path, args.split, args.limit, args.batch_size, zb,
                                         args.data_seed)
               for name, path in zip(names, args.checkpoints, strict=True)}
    sys.stdout.write((json.dumps(results, indent=2) if args.json else format_table(results))
                     + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
