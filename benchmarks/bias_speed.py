"""Benchmark: how long 10,000 biased 64 px Fashion-MNIST images take to make.

Run ``python -m benchmarks.bias_speed`` (options: ``--count``, ``--size``, ``--kinds``). It prints,
per bias kind, the seconds to load the images with masks, the seconds to draw the marks (biased
split, ``on_no_room="skip"``), how many images were skipped, and the total as a fraction of the
30 s budget set in issue 3 (below 1.0 passes), and writes them to the run record
(:mod:`benchmarks.record`), ``results/bias_speed/<date>-<machine>.json`` (``--out`` to choose).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.record import finish_record, start_record
from isnet.data.bias.config import BIAS_KINDS, BiasConfig
from isnet.data.bias.splits import make_split
from isnet.data.fashion_mnist import load_fashion_mnist

BUDGET_SECONDS = 30.0


def run_benchmark(count: int = 10000, size: int = 64,
                  kinds: tuple[str, ...] = BIAS_KINDS) -> list[dict[str, float | str]]:
    """Time loading ``count`` Fashion-MNIST training images and biasing them with each kind.

    Args:
        count: Number of images N.
        size: Image side in pixels.
        kinds: Bias kinds to time.

    Returns:
        One dict per kind: kind, load_s, bias_s, total_s, skipped, budget_ratio.
    """
    start = time.perf_counter()
    data = load_fashion_mnist(split="train", size=size, limit=count, seed=0)
    load_seconds = time.perf_counter() - start
    rows = []
    for kind in kinds:
        config = BiasConfig(kind=kind, position="random", strength=0.9, on_no_room="skip")
        start = time.perf_counter()
        split = make_split(data.images, data.masks, data.labels, data.num_classes,
                                  "biased", config, seed=0)
        bias_seconds = time.perf_counter() - start
        total = load_seconds + bias_seconds
        rows.append({"kind": kind, "load_s": load_seconds, "bias_s": bias_seconds,
                     "total_s": total, "skipped": int(split.skipped.sum()),
                     "budget_ratio": total / BUDGET_SECONDS})
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line: print one line per bias kind and write the run record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--kinds", nargs="+", default=list(BIAS_KINDS), choices=BIAS_KINDS)
    parser.add_argument("--out", type=Path, default=None,
                        help="the run record (default results/bias_speed/<date>-<machine>.json)")
    args = parser.parse_args(argv)
    record = start_record("bias_speed")
    record["settings"] = {"count": args.count, "size": args.size, "kinds": args.kinds,
                          "budget_s": BUDGET_SECONDS}
    print(f"{args.count} Fashion-MNIST images at {args.size} px, budget {BUDGET_SECONDS:.0f} s")
    rows = run_benchmark(args.count, args.size, tuple(args.kinds))
    for row in rows:
        print(f"{row['kind']:>8}: load {row['load_s']:.2f} s + bias {row['bias_s']:.2f} s = "
              f"{row['total_s']:.2f} s ({row['skipped']} skipped); "
              f"ratio to budget {row['budget_ratio']:.3f}")
    record["rows"] = [{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
                      for row in rows]
    finish_record(record, args.out)


if __name__ == "__main__":
    main()
