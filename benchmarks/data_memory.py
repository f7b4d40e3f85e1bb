"""Peak memory of a streamed audit and of one training epoch over 1,000 to 50,000 files on disk.

    python -m benchmarks.data_memory                                   # 1,000 / 10,000 / 50,000
    python -m benchmarks.data_memory --sizes 200 1000 --jobs audit first-batch      # a quick run
    python -m benchmarks.data_memory --method standard --sizes 1000 10000

It writes ``max(--sizes)`` generated ``--side`` px PNG images with ``.mask.png`` masks in the
class-folders layout (10 classes) into a temporary folder once; each smaller size is a folder of
hard links to the first images (the same files, nothing copied). Every measurement runs in a fresh
Python process (``--child``), so that one's peak never hides another's:

* ``audit`` — :func:`isnet.analysis.stream_audit.audit_stream` over every file (opened with
  :func:`isnet.data.dataset_splits.open_evaluation`), random-weight ``--model``, LRP of the
  predicted class, ``--batch`` images per batch, ``--workers`` decoding processes;
* ``train`` — one epoch of :func:`isnet.training.lightning.fit_lightning` over every file
  (:func:`isnet.data.dataset_splits.open_splits` with no validation or test share), ``--model``
  trained as ``--method``, batch ``--batch``, ``--workers`` decoding processes, BatchNorm
  recalibration off (``python -m isnet.train --data``'s default); ``--max-steps`` cuts it short
  (the JSON then says how many images the epoch reached);
* ``first-batch`` — seconds from nothing (imports done) to the first training batch: listing and
  splitting the folder (``open_splits``), then starting the workers and decoding one batch;
* ``idle`` (once) — the same process after its imports and model, with no data: the fixed part.

Memory of each process tree (the measuring process and its DataLoader workers), in MiB:

* ``peak_rss_mib`` — peak RSS of the main process plus the peak RSS of each worker (``VmHWM`` of
  ``/proc/<pid>/status``, the kernel's high-water mark, read every 0.1 s until the process ends):
  the sum of per-process peaks, an upper bound of the tree's simultaneous peak. Forked workers
  share the parent's pages (torch's libraries), which each RSS counts again;
* ``peak_tree_pss_mib`` (and ``peak_tree_rss_mib``) — the largest sum over the tree of PSS
  (proportional set size: a page shared by n processes counts 1/n in each) and of RSS, sampled
  every 0.1 s from ``/proc/<pid>/smaps_rollup``: PSS is what the tree really costs;
* ``getrusage_self_mib``, ``getrusage_children_mib`` — ``resource.getrusage`` ``ru_maxrss`` for
  SELF and CHILDREN, as the kernel reports them, recorded beside the above: SELF is the main
  process's peak (it agrees with its ``VmHWM``); CHILDREN is the peak of the largest single
  finished child (a worker, or a helper process an import started), never a sum over workers.

Goals (the data issue): peak memory grows by ≤ 300 MB from 1,000 to 50,000 files; the first batch
of a 50,000-file folder is ready in < 10 s. The baseline of each growth is the smallest size of the
same run. Results go to ``--out`` (JSON with the command, machine facts and load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.data_throughput import (
    command_line,
    exit_on_terminate,
    generate_folder,
    load_average,
    machine_facts,
    save,
)

JOBS = ("audit", "train", "first-batch")
MIB = 2 ** 20


# --- the measuring process -------------------------------------------------------------------

def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from ``/proc/<pid>/task/*/children``)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def read_memory(pid: int) -> tuple[int, int, int]:
    """(RSS, PSS, peak RSS ``VmHWM``) of one process in bytes; zeros once it has gone."""
    rss = pss = hwm = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return rss, pss, hwm


class TreeSampler(threading.Thread):
    """Samples the memory of this process tree every ``interval`` seconds (see the module
    docstring)."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval, self.stopped = interval, threading.Event()
        self.peak_rss = self.peak_pss = self.processes = 0
        self.high_water: dict[int, int] = {}  # pid → its last seen VmHWM (monotonic)

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sample()
            self.stopped.wait(self.interval)

    def sample(self) -> None:
        members = tree(os.getpid())
        found = {pid: read_memory(pid) for pid in members}
        self.peak_rss = max(self.peak_rss, sum(v[0] for v in found.values()))
        self.peak_pss = max(self.peak_pss, sum(v[1] for v in found.values()))
        for pid, values in found.items():
            self.high_water[pid] = max(self.high_water.get(pid, 0), values[2])
        self.processes = max(self.processes, len(members))

    def stop(self) -> dict[str, Any]:
        self.sample()
        self.stopped.set()
        self.join()
        own = self.high_water.pop(os.getpid())
        others = sum(self.high_water.values())
        usage_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        usage_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        return {"peak_rss_mib": round((own + others) / MIB, 1),
                "peak_rss_main_mib": round(own / MIB, 1),
                "peak_rss_workers_mib": round(others / MIB, 1),
                "peak_tree_rss_mib": round(self.peak_rss / MIB, 1),
                "peak_tree_pss_mib": round(self.peak_pss / MIB, 1),
                "getrusage_self_mib": round(usage_self / MIB, 1),
                "getrusage_children_mib": round(usage_children / MIB, 1),
                "processes": self.processes}


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process; returns its JSON-ready record."""
    import isnet
    from isnet.analysis.stream_audit import audit_stream
    from isnet.data.dataset_splits import open_evaluation, open_splits
    from isnet.data.streaming import stream_loader
    from isnet.data.transforms import Preprocessing
    from isnet.training.lightning import fit_lightning
    from isnet.training.loop import EpochShuffle
    from isnet.training.methods import create_network

    torch.set_num_threads(args.threads)
    prep = Preprocessing(size=args.side)
    config = isnet.TrainConfig(model=args.model, num_classes=10, method=args.method, epochs=1,
                               batch_size=args.batch, input_size=args.side,
                               recalibrate_batchnorm=False, seed=0)
    sampler = TreeSampler()
    sampler.start()
    start = time.perf_counter()
    record: dict[str, Any] = {"job": args.child}
    if args.child == "idle":
        create_network(config)
    elif args.child == "first-batch":
        splits = open_splits(args.root, prep, val_ratio=0.0, test_ratio=0.0)
        listed = time.perf_counter() - start
        train = splits.train
        loader = stream_loader(train, args.batch, args.workers,
                               sampler=EpochShuffle(len(train), 0))
        batch = next(iter(loader))
        record.update(files=len(train), listing_s=round(listed, 3),
                      first_batch_s=round(time.perf_counter() - start, 3),
                      batch_images=len(batch.labels))
        del loader
    elif args.child == "audit":
        dataset, _ = open_evaluation(args.root, prep)
        model = isnet.create_model(args.model, num_classes=10)
        result = audit_stream(model, dataset, args.batch, args.workers)
        record.update(files=len(dataset), images=len(result), skipped=len(result.skipped))
    elif args.child == "train":
        splits = open_splits(args.root, prep, val_ratio=0.0, test_ratio=0.0)
        with tempfile.TemporaryDirectory() as folder:
            result, trainer = fit_lightning(create_network(config), splits.train, None, config,
                                            root_dir=folder, workers=args.workers,
                                            max_steps=args.max_steps)
        record.update(files=len(splits.train), steps=result.steps, status=result.status,
                      images=min(len(splits.train), result.steps * args.batch),
                      skipped=len(result.skipped))
    record["seconds"] = round(time.perf_counter() - start, 2)
    record.update(sampler.stop())
    return record


# --- the parent ------------------------------------------------------------------------------

def run_child(args: argparse.Namespace, job: str, root: Path) -> dict[str, Any]:
    """Run ``job`` over ``root`` in a fresh process; its record (the last line it prints)."""
    command = [sys.executable, "-m", "benchmarks.data_memory", "--child", job, "--root",
               str(root), "--side", str(args.side), "--batch", str(args.batch), "--workers",
               str(args.workers), "--model", args.model, "--method", args.method, "--threads",
               str(args.threads), "--max-steps", str(args.max_steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise SystemExit(f"{job} over {root.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def link_subset(source: Path, target: Path, count: int) -> None:
    """``target`` with hard links to the first ``count`` images (and masks) of ``source``."""
    for folder in sorted(source.iterdir()):
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():
            if int(path.name.split(".")[0]) < count:
                os.link(path, target / folder.name / path.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000],
                        help="files (images, each with a mask) per folder")
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    parser.add_argument("--side", type=int, default=32, help="image side in px (and model input)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--model", default="tiny_densenet")
    parser.add_argument("--method", default="selective")
    parser.add_argument("--max-steps", type=int, default=-1,
                        help="cut the training epoch after this many steps (-1: whole epoch)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("results/data/memory.json"))
    parser.add_argument("--child", choices=[*JOBS, "idle"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    exit_on_terminate()
    sizes = sorted(set(args.sizes))
    record: dict[str, Any] = {"command": command_line(), "machine": machine_facts(args.threads),
                              "load_average_before": load_average(),
                              "settings": {k: v for k, v in vars(args).items()
                                           if k not in ("out", "child", "root")}}
    work = Path(tempfile.mkdtemp(prefix="isnet-memory-"))
    rows: list[dict[str, Any]] = []
    try:
        largest = work / f"files-{sizes[-1]}"
        record["dataset"] = generate_folder(largest, sizes[-1], args.side, args.side, "png")
        print(f"generated {sizes[-1]} images + masks ({args.side} px PNG, "
              f"{record['dataset']['bytes'] / MIB:.0f} MiB) in {record['dataset']['seconds']} s; "
              f"load {load_average()}", flush=True)
        folders = {sizes[-1]: largest}
        for size in sizes[:-1]:
            folders[size] = work / f"files-{size}"
            link_subset(largest, folders[size], size)
        rows.append({"size": 0, **run_child(args, "idle", folders[sizes[0]])})
        print(f"idle (imports + model): {rows[-1]['peak_tree_pss_mib']} MiB PSS", flush=True)
        for size in sizes:
            for job in args.jobs:
                rows.append({"size": size, **run_child(args, job, folders[size]),
                             "load_average": load_average()})
                print(f"  {size} {job}: {rows[-1]['seconds']} s, "
                      f"{rows[-1]['peak_rss_mib']} MiB RSS (main + workers), "
                      f"{rows[-1]['peak_tree_pss_mib']} MiB PSS "
                      f"(load {rows[-1]['load_average'][0]})",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record["rows"] = rows
    record["growth"] = growth(rows, sizes, args.jobs)
    record["load_average_after"] = load_average()
    table(record, args)
    save(args.out, record)
    return 0


def growth(rows: list[dict[str, Any]], sizes: list[int], jobs: list[str]) -> dict[str, Any]:
    """Per job: peak memory at the largest size minus at the smallest (the same run's baseline),
    and the goals."""
    found: dict[str, Any] = {}
    for job in (j for j in jobs if j != "first-batch"):
        by_size = {row["size"]: row for row in rows if row["job"] == job}
        low, high = by_size[sizes[0]], by_size[sizes[-1]]
        found[job] = {"from_files": sizes[0], "to_files": sizes[-1], **{
            f"growth_{key}": round(high[key] - low[key], 1)
            for key in ("peak_rss_mib", "peak_tree_pss_mib", "peak_tree_rss_mib")},
            "ratio_peak_rss": round(high["peak_rss_mib"] / low["peak_rss_mib"], 3)}
        # The goal is in MB (10^6 bytes), on both the RSS sum and the tree's PSS.
        found[job]["goal_growth_le_300_MB_met"] = all(
            found[job][f"growth_{key}"] * MIB / 1e6 <= 300
            for key in ("peak_rss_mib", "peak_tree_pss_mib"))
    firsts = [row for row in rows if row["job"] == "first-batch"]
    if firsts:
        last = max(firsts, key=lambda row: row["size"])
        found["first-batch"] = {"files": last["size"], "seconds": last["first_batch_s"],
                                "goal_lt_10_s_met": last["first_batch_s"] < 10}
    return found


def table(record: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the Markdown tables."""
    rows = record["rows"]
    print(f"\n{args.model}, {args.side} px, batch {args.batch}, {args.workers} workers, "
          f"training method {args.method}")
    print("| job | files | images done | seconds | peak RSS main + workers MiB | "
          "peak PSS, tree MiB | getrusage self, children MiB | processes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if row["job"] == "first-batch":
            continue
        print(f"| {row['job']} | {row['size']} | {row.get('images', '')} | {row['seconds']} | "
              f"{row['peak_rss_main_mib']} + {row['peak_rss_workers_mib']} | "
              f"{row['peak_tree_pss_mib']} | "
              f"{row['getrusage_self_mib']}, {row['getrusage_children_mib']} | "
              f"{row['processes']} |")
    firsts = [row for row in rows if row["job"] == "first-batch"]
    if firsts:
        print("\n| files | listing s | listing + first batch s |\n|---:|---:|---:|")
        for row in firsts:
            print(f"| {row['size']} | {row['listing_s']} | {row['first_batch_s']} |")
    for job, facts in record["growth"].items():
        print(f"{job}: {facts}")


if __name__ == "__main__":
    raise SystemExit(main())
