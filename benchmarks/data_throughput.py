"""Images per second from disk against the same images in memory, and what it costs a training step.

    python -m benchmarks.data_throughput                      # 256 images, 256–512 px JPEG → 224 px
    python -m benchmarks.data_throughput --images 64 --steps 2 --no-train    # a quick run
    python -m benchmarks.data_throughput --format png --workers 0 2 --rounds 2

It writes a class-folders dataset (:mod:`isnet.data.layouts`: ``<class>/x.jpg`` with
``x.mask.png``) of ``--images`` generated pictures of realistic size (each side drawn from
``--min-side``–``--max-side``; a smooth textured background with fine noise and one coloured
ellipse whose mask is the ellipse) into a temporary folder, deleted at the end, and measures:

* **loader** — images per second of one full pass of ``stream_loader`` over a
  :class:`isnet.data.streaming.StreamingDataset` (read, decode, check, joint transform to
  ``--size`` px, collate; worker start-up included) with 0, 1 and 2 decoding workers, for the
  evaluation and the training transform (:class:`isnet.data.transforms.Preprocessing`), against
  the in-memory path: the same images decoded once with the evaluation transform into one
  ``isnet.ImageSet``, served by a DataLoader over its ``TensorDataset`` (the baseline; "× memory"
  is each row's images per second over it);
* **training step** — ``--model`` as an ISNet (``--method``, default selective) trained with
  :func:`isnet.training.loop.train_step` on batches of ``--step-batch`` images: fed from disk
  (the training transform, ``--train-workers`` decoding processes, shuffled, as
  ``python -m isnet.train --data`` feeds it) against fed from memory (the ImageSet's tensors). Each
  side starts from the same weights, takes one warm-up step (not timed; worker start-up and the
  first batch fall in it), then ``--steps`` timed steps, each timed from asking the loader for the
  batch to the end of the update. With ``--rounds 2`` the sides run memory, disk, disk, memory
  (a slow spell of a shared machine then hurts both alike).

Goal (the data issue): fed from disk, a training step keeps ≥ 90 % of the in-memory throughput
(ratio of total timed seconds, memory ÷ disk; the ratio of median steps is printed beside it).

Results go to ``--out`` (JSON: the command, machine facts, load averages before and after, every
figure and its ratio to the baseline of the same run). Another process on the machine slows both
sides; the load averages say how busy it was.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

import isnet
from benchmarks.record import command_line, load_average, machine_facts
from isnet.data.image_set import as_dataset
from isnet.data.layouts import read_layout
from isnet.data.streaming import StreamingDataset, batch_parts, stream_loader
from isnet.data.transforms import Preprocessing
from isnet.io.export import write_json
from isnet.training.loop import EpochShuffle, build_network, make_optimizer, train_step

CLASSES = 10


# --- shared by the data benchmarks (data_memory, audit_throughput import these) -------------

def generate_folder(root: Path, count: int, min_side: int, max_side: int, fmt: str = "jpg",
                    seed: int = 0, classes: int = CLASSES, masks: bool = True) -> dict[str, Any]:
    """Write ``count`` images (and ``.mask.png`` masks) as ``root/class_<k>/<i>.<fmt>``.

    Each image: a smooth random background (low-resolution noise scaled up), fine pixel noise
    and one coloured ellipse (the object; its mask). Sides are drawn in [min_side, max_side].

    Returns:
        {"files": images + masks written, "bytes": their total size, "seconds": time taken}.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    for k in range(classes):
        (root / f"class_{k}").mkdir(parents=True, exist_ok=True)
    total, files = 0, 0
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    for i in range(count):
        height, width = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
        coarse = rng.integers(0, 256, (max(2, height // 32), max(2, width // 32), 3), np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image.astype(np.int16) + rng.integers(-12, 13, image.shape),
                        0, 255).astype(np.uint8)
        mask = np.zeros((height, width), np.uint8)
        centre = (int(rng.integers(width // 4, 3 * width // 4 + 1)),
                  int(rng.integers(height // 4, 3 * height // 4 + 1)))
        axes = (max(1, int(width * rng.uniform(0.12, 0.3))),
                max(1, int(height * rng.uniform(0.12, 0.3))))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(mask, centre, axes, angle, 0, 360, 255, -1)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(image, centre, axes, angle, 0, 360, colour, -1)
        stem = root / f"class_{i % classes}" / f"{i:06d}"
        for path, picture, extra in ((stem.with_suffix(f".{fmt}"), image, params),
                                     (Path(f"{stem}.mask.png"), mask,
                                      [cv2.IMWRITE_PNG_COMPRESSION, 1])):
            if picture is mask and not masks:
                continue
            ok, encoded = cv2.imencode(path.suffix, picture, extra)
            if not ok:
                raise RuntimeError(f"could not encode {path.name}")
            path.write_bytes(encoded.tobytes())
            total += len(encoded)
            files += 1
    return {"files": files, "bytes": total, "seconds": round(time.perf_counter() - start, 2)}


def exit_on_terminate() -> None:
    """Turn SIGTERM into SystemExit, so that ``finally`` deletes the generated folder."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def save(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` as strict, indented JSON (replacing an earlier run's file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record, overwrite=True)
    print(f"wrote {path}")


# --- this benchmark --------------------------------------------------------------------------

def in_memory(dataset: StreamingDataset) -> isnet.ImageSet:
    """Every image of ``dataset`` decoded once (its transform) into one ImageSet."""
    items = [dataset[i] for i in range(len(dataset))]
    return isnet.ImageSet(torch.stack([item[0] for item in items]),
                          torch.stack([item[1] for item in items]),
                          torch.stack([item[2] for item in items]), list(dataset.class_names))


def loader_pass(dataset: Any, batch: int, workers: int) -> dict[str, float]:
    """Seconds of one full pass over ``dataset`` (workers started inside), first batch, rate."""
    start = time.perf_counter()
    first, count = None, 0
    for item in stream_loader(dataset, batch, workers):
        count += len(batch_parts(item)[2])
        first = first or time.perf_counter() - start
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": round(seconds, 3), "first_batch_s": round(first or 0, 3),
            "images_per_s": round(count / seconds, 1)}


def training_side(network: torch.nn.Module, loader: Any, config: isnet.TrainConfig,
                  steps: int) -> list[float]:
    """One warm-up step, then the seconds of ``steps`` steps (next batch + train_step)."""
    optimizer = make_optimizer(network, config)
    batches = iter(loader)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        images, masks, labels, _ = batch_parts(next(batches))
        train_step(network, (images, masks, labels), optimizer, config)
        if step:
            times.append(time.perf_counter() - start)
    del batches  # stops the workers
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="images generated")
    parser.add_argument("--min-side", type=int, default=256)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--format", choices=["jpg", "png"], default="jpg")
    parser.add_argument("--size", type=int, default=224, help="model input side S")
    parser.add_argument("--batch", type=int, default=32, help="images per loader batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--transforms", nargs="+", choices=["evaluation", "training"],
                        default=["evaluation", "training"])
    parser.add_argument("--model", default="densenet121")
    parser.add_argument("--method", default="selective", choices=isnet.TRAINING_METHODS)
    parser.add_argument("--step-batch", type=int, default=8, help="images per training step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side")
    parser.add_argument("--rounds", type=int, default=1,
                        help="1: memory then disk; 2: memory, disk, disk, memory")
    parser.add_argument("--train-workers", type=int, default=2)
    parser.add_argument("--no-train", action="store_true", help="only the loader figures")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of the main process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/data/throughput.json"))
    args = parser.parse_args()
    exit_on_terminate()
    torch.set_num_threads(args.threads)
    record: dict[str, Any] = {"command": command_line(), "machine": machine_facts(args.threads),
                              "load_average_before": load_average(),
                              "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    folder = Path(tempfile.mkdtemp(prefix="isnet-throughput-"))
    try:
        record["dataset"] = generate_folder(folder, args.images, args.min_side, args.max_side,
                                            args.format, args.seed)
        print(f"{args.images} images {args.min_side}–{args.max_side} px {args.format} "
              f"({record['dataset']['bytes'] / 2**20:.1f} MiB with masks) in {folder}; "
              f"torch threads {args.threads}, load {record['load_average_before']}", flush=True)
        catalogue = read_layout(folder, "class-folders")
        prep = Preprocessing(size=args.size)
        evaluation = StreamingDataset(catalogue, prep.evaluation(), args.seed)
        memory = in_memory(evaluation)
        record["loader"] = loaders(args, catalogue, prep, memory)
        if not args.no_train:
            record["training_step"] = training(args, catalogue, prep, memory)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record["load_average_after"] = load_average()
    save(args.out, record)
    return 0


def loaders(args: argparse.Namespace, catalogue: Any, prep: Preprocessing,
            memory: isnet.ImageSet) -> dict[str, Any]:
    """The loader table: in-memory baseline, then each transform × workers from disk."""
    baseline = loader_pass(as_dataset(memory), args.batch, 0)
    rows = [{"source": "memory (ImageSet → TensorDataset)", "transform": "decoded once",
             "workers": 0, **baseline, "x_memory": 1.0}]
    for kind in args.transforms:
        transform = prep.evaluation() if kind == "evaluation" else prep.training()
        for workers in args.workers:
            dataset = StreamingDataset(catalogue, transform, args.seed)
            found = loader_pass(dataset, args.batch, workers)
            rows.append({"source": "disk (StreamingDataset)", "transform": kind,
                         "workers": workers, **found,
                         "x_memory": round(found["images_per_s"] / baseline["images_per_s"], 4)})
    print(f"\nloader, {args.size} px, batch {args.batch}, {len(catalogue)} images per pass")
    print("| source | transform | workers | images/s | first batch s | × memory |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['source']} | {row['transform']} | {row['workers']} | "
              f"{row['images_per_s']:.1f} | {row['first_batch_s']:.3f} | {row['x_memory']:.4f} |")
    return {"baseline": "memory", "rows": rows}


def training(args: argparse.Namespace, catalogue: Any, prep: Preprocessing,
             memory: isnet.ImageSet) -> dict[str, Any]:
    """Training steps fed from memory and from disk (see the module docstring)."""
    needed = (args.steps + 1) * args.step_batch
    if len(catalogue) < needed:
        raise SystemExit(f"--images must be at least (steps + 1) × step-batch = {needed}")
    config = isnet.TrainConfig(model=args.model, num_classes=CLASSES, method=args.method,
                               batch_size=args.step_batch, input_size=args.size, seed=args.seed)
    isnet.seed_everything(args.seed)
    start = build_network(isnet.create_model(args.model, num_classes=CLASSES), config)
    order = ["memory", "disk", "disk", "memory", "memory", "disk"][: 2 * args.rounds] \
        if args.rounds <= 3 else ["memory", "disk"] * args.rounds
    times: dict[str, list[float]] = {"memory": [], "disk": []}
    for side in order:
        if side == "memory":
            loader = stream_loader(as_dataset(memory), args.step_batch, 0,
                                   sampler=EpochShuffle(len(memory), args.seed))
        else:
            dataset = StreamingDataset(catalogue, prep.training(), args.seed)
            loader = stream_loader(dataset, args.step_batch, args.train_workers,
                                   sampler=EpochShuffle(len(dataset), args.seed))
        found = training_side(copy.deepcopy(start), loader, config, args.steps)
        print(f"  {side}: steps {', '.join(f'{t:.2f}' for t in found)} s "
              f"(load {load_average()[0]})", flush=True)
        times[side] += found
    summary = {side: {"step_seconds": [round(t, 3) for t in found],
                      "total_s": round(sum(found), 3),
                      "median_step_s": round(statistics.median(found), 3),
                      "images_per_s": round(args.step_batch * len(found) / sum(found), 3)}
               for side, found in times.items()}
    ratio_total = summary["memory"]["total_s"] / summary["disk"]["total_s"]
    ratio_median = summary["memory"]["median_step_s"] / summary["disk"]["median_step_s"]
    print(f"\ntraining step, {args.model} {args.method}, batch {args.step_batch}, {args.size} px, "
          f"{args.steps} timed steps per side and round, {args.rounds} round(s)")
    print("| fed from | workers | images/s | median step s | disk ÷ memory throughput |")
    print("|---|---:|---:|---:|---:|")
    print(f"| memory (ImageSet) | 0 | {summary['memory']['images_per_s']:.3f} | "
          f"{summary['memory']['median_step_s']:.2f} | 1.000 |")
    print(f"| disk (StreamingDataset, training transform) | {args.train_workers} | "
          f"{summary['disk']['images_per_s']:.3f} | {summary['disk']['median_step_s']:.2f} | "
          f"{ratio_total:.3f} (median steps {ratio_median:.3f}) |")
    met = ratio_total >= 0.9
    print(f"goal: from disk ≥ 90 % of in-memory throughput: {'met' if met else 'NOT met'} "
          f"({100 * ratio_total:.1f} %)")
    return {"model": args.model, "method": args.method, "batch": args.step_batch,
            "order": order, "baseline": "memory", **summary,
            "disk_over_memory_throughput": round(ratio_total, 4),
            "disk_over_memory_median_step": round(ratio_median, 4),
            "goal": "from disk >= 90 % of in-memory throughput", "goal_met": met}


if __name__ == "__main__":
    raise SystemExit(main())
