"""Audit throughput from disk at 224 px: images per second through ``audit_stream``, per model.

    python -m benchmarks.audit_throughput               # densenet121, resnet50; 128 images
    python -m benchmarks.audit_throughput --images 32 --models resnet50      # a quick run
    python -m benchmarks.audit_throughput --device cuda --images 512 --batch 64   # on a GPU

It writes ``--images`` generated pictures of realistic size (sides ``--min-side``–``--max-side``,
JPEG with ``.mask.png`` masks, class-folders layout; see
:func:`benchmarks.data_throughput.generate_folder`) into a temporary folder, deleted at the end,
opens it as ``python -m isnet.audit`` does (:func:`isnet.data.dataset_splits.open_evaluation`,
evaluation transform to ``--size`` px, raw pixels, z^B in [0, 1]) and, per model (random weights
from ``isnet.create_model``, 10 classes, on ``--device``, :func:`isnet.devices.choose_device`):

* **from disk** — :func:`isnet.analysis.stream_audit.audit_stream` over every image: reading,
  decoding and resizing in ``--workers`` processes, LRP of the predicted class, background share
  and the kept 16 px maps, ``--batch`` images per batch;
* **in memory** (the baseline) — :func:`isnet.analysis.audit.audit_images` over the same images
  decoded beforehand into one tensor, the same batch size, one batch at a time (``workers=1``).

"× memory" is the disk audit's images per second over the in-memory one's, same run. One batch of
each model is audited first and not timed (weights' layout, first-call costs; on a GPU, kernel
selection). Results go to ``--out`` (JSON: the command, machine facts, load averages, figures).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import isnet
from benchmarks.data_throughput import (
    command_line,
    exit_on_terminate,
    generate_folder,
    in_memory,
    load_average,
    machine_facts,
    save,
)
from isnet.analysis.audit import audit_images
from isnet.analysis.stream_audit import audit_stream
from isnet.data.dataset_splits import open_evaluation
from isnet.data.transforms import Preprocessing
from isnet.devices import DEVICE_CHOICES, choose_device


def synchronise(device: torch.device) -> None:
    """Wait for the GPU's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, dataset: Any, memory: isnet.ImageSet, args: argparse.Namespace,
            device: torch.device) -> dict[str, Any]:
    """Warm-up, then the disk and the in-memory audit of one random-weight model."""
    isnet.seed_everything(args.seed)
    model = isnet.create_model(name, num_classes=len(dataset.class_names)).to(device).eval()
    warm = type(dataset)(dataset.catalogue.subset(np.arange(min(args.batch, len(dataset)))),
                         dataset.transform, dataset.seed)
    audit_stream(model, warm, args.batch, 0)
    synchronise(device)
    start = time.perf_counter()
    streamed = audit_stream(model, dataset, args.batch, args.workers)
    synchronise(device)
    disk = time.perf_counter() - start
    row: dict[str, Any] = {"model": name, "images": len(streamed),
                           "skipped": len(streamed.skipped), "disk_s": round(disk, 2),
                           "disk_images_per_s": round(len(streamed) / disk, 2)}
    if memory is not None:
        start = time.perf_counter()
        result = audit_images(model, memory.images, memory.masks, memory.labels,
                              batch_size=args.batch, workers=1)
        synchronise(device)
        seconds = time.perf_counter() - start
        rate = len(memory) / seconds
        shares = np.asarray(result.background_share, dtype=np.float64)
        agree = float(np.nanmax(np.abs(shares - streamed.background_share.astype(np.float64))))
        row.update(memory_s=round(seconds, 2), memory_images_per_s=round(rate, 2),
                   x_memory=round(row["disk_images_per_s"] / rate, 3),
                   largest_share_difference=agree)
    row["load_average"] = load_average()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["densenet121", "resnet50"],
                        choices=isnet.MODEL_NAMES)
    parser.add_argument("--images", type=int, default=128, help="images generated and audited")
    parser.add_argument("--size", type=int, default=224, help="model input side S")
    parser.add_argument("--batch", type=int, default=16, help="images per batch")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} or cuda:N")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of the main process")
    parser.add_argument("--min-side", type=int, default=256)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--format", choices=["jpg", "png"], default="jpg")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the in-memory baseline (only the disk figures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default results/audit/throughput-<cpu|cuda>.json)")
    args = parser.parse_args()
    exit_on_terminate()
    device = choose_device(args.device)
    torch.set_num_threads(args.threads)
    out = args.out or Path(f"results/audit/throughput-{device.type}.json")
    record: dict[str, Any] = {"command": command_line(),
                              "machine": machine_facts(args.threads, device),
                              "load_average_before": load_average(),
                              "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    folder = Path(tempfile.mkdtemp(prefix="isnet-audit-throughput-"))
    rows = []
    try:
        record["dataset"] = generate_folder(folder, args.images, args.min_side, args.max_side,
                                            args.format, args.seed)
        dataset, _ = open_evaluation(folder, Preprocessing(size=args.size))
        memory = None if args.no_memory else in_memory(dataset)
        print(f"{args.images} images {args.min_side}–{args.max_side} px {args.format} → "
              f"{args.size} px on {record['machine']['device']}, torch threads {args.threads}, "
              f"load {record['load_average_before']}", flush=True)
        for name in args.models:
            rows.append(measure(name, dataset, memory, args, device))
            print(f"  {rows[-1]}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record["rows"] = rows
    record["baseline"] = "memory (audit_images over the same decoded images)"
    record["load_average_after"] = load_average()
    print(f"\naudit, {args.size} px, batch {args.batch}, {args.workers} workers, "
          f"{record['machine']['device']}")
    print("| model | images | from disk images/s | in memory images/s | × memory |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['images']} | {row['disk_images_per_s']:.2f} | "
              f"{row.get('memory_images_per_s', float('nan')):.2f} | "
              f"{row.get('x_memory', float('nan')):.3f} |")
    save(out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
