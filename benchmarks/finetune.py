"""Benchmark: a user's short CPU fine-tune, timed. ``python -m benchmarks.finetune``.

Fine-tunes a bundled DenseNet121 checkpoint on 50 Fashion-MNIST test images at 128 px for 10
epochs (the explorer's "Train" tab at its default size) with :func:`isnet.fit`, and prints the
wall time, the time per step and the peak resident memory of the process. The goal on the
2-core development CPU is under 2 minutes. The figures go to the run record
(:mod:`benchmarks.record`), ``results/finetune/<date>-<machine>.json`` (``--out`` to choose).

Examples::

    python -m benchmarks.finetune
    python -m benchmarks.finetune \
        --checkpoint assets/checkpoints/standard_densenet121.safetensors \\
        --method standard --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.record import finish_record, start_record
from isnet.io.checkpoints import load_checkpoint
from isnet.training.config import TRAINING_METHODS, TrainConfig
from isnet.training.experiment import ExperimentData, evaluation_set
from isnet.training.loop import fit

DEFAULT_CHECKPOINT = (Path(__file__).resolve().parents[1] / "assets" / "checkpoints"
                      / "isnet_densenet121.safetensors")


def run_benchmark(checkpoint: Path = DEFAULT_CHECKPOINT, images: int = 50, size: int = 128,
                  epochs: int = 10, batch_size: int = 10, method: str | None = None,
                  seed: int = 0) -> dict[str, Any]:
    """Fine-tune ``checkpoint`` on ``images`` biased test images and measure it.

    Args:
        checkpoint: the starting model.
        images: number of fine-tuning images.
        size: image side in pixels.
        epochs: passes over the images.
        batch_size: images per step.
        method: training method; default: the checkpoint's own (or ``"selective"``).
        seed: seeds the image subset and the run.

    Returns:
        A dictionary of plain numbers: ``wall_seconds`` (fine-tune only), ``seconds_per_step``,
        ``steps``, ``peak_rss_mb`` (whole process), ``rss_before_mb``, final ``loss``,
        ``accuracy``, and the settings.
    """
    model, metadata = load_checkpoint(checkpoint)
    config = metadata.get("config", {})
    method = method or config.get("method", config.get("variant", "selective"))
    data_description = ExperimentData.from_dict(metadata["data"]) if metadata.get("data") else \
        ExperimentData()
    data = evaluation_set(replace(data_description, size=size, seed=seed), "biased", limit=images)
    config = replace(TrainConfig.from_dict(metadata["config"]) if metadata.get("config") else
                     TrainConfig(), method=method, epochs=epochs, batch_size=batch_size,
                     input_size=size, seed=seed, num_classes=model.num_classes)
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    result = fit(model, data, None, config)
    wall = time.perf_counter() - start
    last = result.history[-1] if result.history else {}
    return {"checkpoint": str(checkpoint), "method": method, "images": images, "size": size,
            "epochs": epochs, "batch_size": batch_size, "threads": torch.get_num_threads(),
            "steps": result.steps, "wall_seconds": round(wall, 1),
            "seconds_per_step": round(wall / max(result.steps, 1), 3),
            "rss_before_mb": round(rss_before), "peak_rss_mb": round(_peak_rss_mb()),
            "loss": last.get("loss"), "accuracy": last.get("accuracy"), "status": result.status}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--method", "--variant", dest="method", choices=TRAINING_METHODS,
                        default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path, default=None,
                        help="the run record (default results/finetune/<date>-<machine>.json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    record = start_record("finetune", threads=torch.get_num_threads())
    values = run_benchmark(args.checkpoint, args.images, args.size, args.epochs,
                           args.batch_size, args.method)
    record.update(result=values, goal_wall_seconds=120.0,
                  goal_met=bool(values["wall_seconds"] < 120))
    finish_record(record, args.out)
    if args.json:
        sys.stdout.write(json.dumps(values) + "\n")
    else:
        sys.stdout.write("".join(f"{key:>17}: {value}\n" for key, value in values.items()))
        verdict = "under" if values["wall_seconds"] < 120 else "OVER"
        sys.stdout.write(f"fine-tune took {values['wall_seconds']} s ({verdict} the 120 s goal), "
                         f"peak memory {values['peak_rss_mb']} MB\n")
    return 0


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    raise SystemExit(main())
