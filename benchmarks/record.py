"""One run record per benchmark run: every figure a document quotes comes from a file.

A benchmark opens a record when it starts and writes it when it ends::

    from benchmarks.record import finish_record, start_record

    record = start_record("audit", threads=args.threads, device=device)
    record["settings"] = {...}          # what was asked for
    record["rows"] = [...]              # what was measured (ratios against a baseline of the run)
    finish_record(record)               # → results/audit/2026-12-06-cpu-2-cores.json

The record holds the command line, machine facts (torch and Python versions, threads, CPUs, the
device, the git commit), the load average before and after (what else the machine was doing),
the UTC date and time, and whatever the benchmark adds. It is written as strict JSON, atomically
(:mod:`isnet.io.atomic`: a half-written file never appears under its name), to
``results/<benchmark>/<date>-<machine>.json``; a second run on the same day and machine replaces
the first (pass ``out=`` to keep both). ``python -m scripts.results_tables`` renders the tables
of ``docs/results.md`` from these files.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from isnet.devices import device_label
from isnet.io.export import write_json

RESULTS = Path("results")
"""Folder of the run records, relative to the repository root."""


def machine_facts(threads: int | None = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Torch version, threads, CPUs, the device's name, platform, Python and the git commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {"torch": torch.__version__,
            "torch_threads": threads if threads is not None else torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "device": device_label(device),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "git_commit": commit}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (what else the machine was doing)."""
    return [round(v, 2) for v in os.getloadavg()]


def command_line() -> str:
    """How this benchmark was started, as one line (``python -m benchmarks.x --flag``)."""
    script = Path(sys.argv[0])
    return " ".join([f"python -m {script.parent.name}.{script.stem}", *sys.argv[1:]])


def machine_name(device: torch.device | str = "cpu") -> str:
    """A short file-name-safe name of the machine: ``cpu-2-cores`` or ``nvidia-h100-80gb-hbm3``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
    else:
        name = f"{device.type}-{os.cpu_count()}-cores"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def start_record(benchmark: str, threads: int | None = None,
                 device: torch.device | str = "cpu") -> dict[str, Any]:
    """A new run record: the benchmark's name, command, machine facts, date and load before."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", benchmark):
        raise ValueError(f"benchmark name {benchmark!r}: use lower-case letters, digits, '-' "
                         "and '_' (it names the folder under results/)")
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"benchmark": benchmark, "command": command_line(),
            "date": now.date().isoformat(), "started_utc": now.isoformat(timespec="seconds"),
            "machine_name": machine_name(device), "machine": machine_facts(threads, device),
            "load_average_before": load_average()}


def record_path(record: dict[str, Any], root: Path = RESULTS) -> Path:
    """Where ``record`` goes: ``<root>/<benchmark>/<date>-<machine>.json``."""
    return root / record["benchmark"] / f"{record['date']}-{record['machine_name']}.json"


def finish_record(record: dict[str, Any], out: Path | None = None, root: Path = RESULTS) -> Path:
    """Add the load average after, write ``record`` atomically and return the path.

    Args:
        record: from :func:`start_record`, with the benchmark's figures added.
        out: an explicit path (a benchmark's ``--out``); default :func:`record_path`.
        root: the results folder (tests pass a temporary one).
    """
    record["load_average_after"] = load_average()
    path = Path(out) if out is not None else record_path(record, root)
    write_json(path, record, overwrite=True)
    print(f"wrote {path}")
    return path
