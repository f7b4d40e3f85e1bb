"""Command line evaluation: accuracy and background share per test condition.

``python -m isnet.evaluate CKPT [CKPT ...] --split biased unbiased confounding [--json]
[--input-rule trained|zb|epsilon] [--limit N] [--data-root FOLDER]`` rebuilds each checkpoint's
test images from its saved data description
(:class:`isnet.training.experiment.ExperimentData`) and prints one row per (checkpoint, split).
The background share uses the LRP input rule each model was trained with unless
``--input-rule`` names one for all (the table says which). The measurements themselves are
:func:`isnet.training.evaluate.evaluate_checkpoint`.

Each checkpoint's rows are printed as soon as it is measured, after a progress bar on stderr
(``--json`` prints one document at the end). ``--limit N`` measures N test images per split, a
quick check. The Fashion-MNIST files are found the way the loader finds them (Debian's
``dataset-fashion-mnist`` package) or in ``--data-root``; the folder a checkpoint recorded is
only a hint. A checkpoint that cannot be measured is reported on stderr, the others still run,
and the exit status is 1.

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

from tqdm import tqdm

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


def measure_checkpoint(path: Path, name: str, args: argparse.Namespace) -> dict[str, dict]:
    """One checkpoint's results for the parsed command line, with a progress bar on stderr
    (robustness runs without one)."""
    if args.robustness:
        return checkpoint_robustness(path, args.kinds, args.limit, max(args.batch_size, 1),
                                     args.data_seed, args.data_root)
    zb = {"trained": None, "zb": True, "epsilon": False}[args.input_rule]
    with tqdm(desc=name, unit="image", leave=False, file=sys.stderr) as bar:
        def advance(done: int, total: int) -> None:
            if bar.total != total:
                bar.reset(total=total)
            bar.update(done - bar.n)

        return evaluate_checkpoint(path, args.split, args.limit, args.batch_size, zb,
                                   args.data_seed, args.data_root, advance)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m isnet.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint files")
    parser.add_argument("--split", nargs="+", default=["biased", "unbiased", "confounding"],
                        choices=["biased", "unbiased", "confounding"], help="test conditions")
    parser.add_argument("--limit", type=int, default=None,
                        help="test images per split (default: each checkpoint's own number; "
                             "a small N is a quick check)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder of the Fashion-MNIST IDX files (default: the checkpoint's "
                             "recorded folder if it holds them, else Debian's package)")
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
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    args = parse_arguments(argv)
    render = format_robustness if args.robustness else format_table
    results: dict[str, dict[str, dict]] = {}
    failures = 0
    for name, path in zip(row_names(args.checkpoints), args.checkpoints, strict=True):
        try:
            results[name] = measure_checkpoint(path, name, args)
        except ValueError as error:  # user errors: a bad file, no data description, no data
            failures += 1
            sys.stderr.write(f"{name}: {error}\n")
            continue
        if not args.json:
            lines = render({name: results[name]}).splitlines()
            sys.stdout.write("\n".join(lines if len(results) == 1 else lines[2:]) + "\n")
            sys.stdout.flush()
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    if failures:
        sys.stderr.write(f"{failures} of {len(args.checkpoints)} checkpoints could not be "
                         "measured (see above; --data-root names a Fashion-MNIST folder)\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
