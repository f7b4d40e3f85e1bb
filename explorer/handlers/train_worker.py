"""A fine-tune in its own process: :func:`isnet.fit` runs there, the serving process only watches.

Training allocates far more than serving (autograd graphs, LRP heatmaps, optimiser state), and a
Python process seldom gives freed memory back to the system, so a fine-tune in the server's own
process made it grow by a gigabyte per run. Here every run gets a fresh process (``spawn``, so it
inherits no threads or locks of the server), and everything it allocated is gone when it ends.

* :class:`WorkerJob` — what the process needs: the model to train (a copy), the two sets, the
  :class:`isnet.TrainConfig`, where to save, the checkpoint's metadata, and the device to train
  on (the explorer's ``--device``; the job itself travels on the CPU, since CUDA tensors do not
  cross process boundaries safely);
* :func:`run_job` — the process's entry point: move the model and the sets to the device, fit,
  save atomically only a usable result (:attr:`isnet.training.loop.FitResult.usable`), from CPU
  tensors, report;
* :class:`FitWorker` — the server's handle: start, read reports, stop between two steps, kill.

Reports travel over a queue as ``("ready",)`` once the process has started and its model and
sets are on the device (start-up, which takes seconds, is over), ``("progress", step, total,
metrics)`` after each step, then one
``("end", summary)`` or ``("error", message)``. Stopping sets an event that ``fit`` checks before
every step. Killing the process loses nothing saved before: the checkpoint is written atomically
(a partial file never has the final name) and only after training has finished.

This module imports only the engine (no Gradio), so the worker process starts quickly. As with
any ``spawn`` process, a script that builds the explorer must do so under
``if __name__ == "__main__":`` (``app.py`` does), since the new process imports the main module.
"""

from __future__ import annotations

import multiprocessing
import queue
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from isnet.data.image_set import ImageSet
from isnet.io.checkpoints import save_checkpoint
from isnet.training.config import TrainConfig
from isnet.training.loop import fit

_SPAWN = multiprocessing.get_context("spawn")


@dataclass
class WorkerJob:
    """Everything a worker process needs for one fine-tune.

    Attributes:
        model: the network to train (a copy; the server's model is never trained).
        train_set, val_set: the fine-tuning sets.
        config: the run's settings.
        checkpoint: final path of the checkpoint (written only for a usable result).
        save: keyword arguments for :func:`isnet.save_checkpoint` besides the model, the path
            and ``metrics`` (which the worker fills in).
        threads: torch threads in the worker.
        device: where the worker trains (``"cpu"``, ``"cuda"``, ``"cuda:N"``); the model and the
            sets arrive on the CPU and move there in the worker.
    """

    model: torch.nn.Module
    train_set: ImageSet
    val_set: ImageSet
    config: TrainConfig
    checkpoint: str
    save: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    device: str = "cpu"


def on_device(image_set: ImageSet, device: torch.device) -> ImageSet:
    """``image_set`` with its tensors on ``device`` (so every batch of it is there too)."""
    return replace(image_set, images=image_set.images.to(device),
                   masks=image_set.masks.to(device), labels=image_set.labels.to(device))


def run_job(job: WorkerJob, reports: Any, stop: Any) -> None:
    """The worker process's entry point: fit, save a usable result, report the end.

    Args:
        job: the work.
        reports: a multiprocessing queue for the reports (see the module).
        stop: a multiprocessing event; once set, ``fit`` ends before its next step.
    """
    torch.set_num_threads(max(1, job.threads))
    try:
        device = torch.device(job.device)
        model = job.model.to(device)
        train_set, val_set = on_device(job.train_set, device), on_device(job.val_set, device)
        reports.put(("ready",))  # started, model and sets in place: the first step comes next
        result = fit(model, train_set, val_set, job.config,
                     on_progress=lambda step, total, metrics: reports.put(
                         ("progress", step, total, _plain(metrics))),
                     should_stop=stop.is_set)
        metrics = {k: v for k, v in (result.history[-1] if result.history else {}).items()
                   if isinstance(v, (int, float))}
        saved = None
        if result.usable:
            saved = str(save_checkpoint(job.checkpoint, result.model.cpu(),
                                        metrics={**metrics, "status": result.status},
                                        **job.save))
        reports.put(("end", {"status": result.status, "advice": result.advice,
                             "steps": result.steps, "seconds": result.seconds,
                             "metrics": metrics, "checkpoint": saved}))
    except Exception as error:  # noqa: BLE001 — reported to the server, which tells the user
        reports.put(("error", f"{type(error).__name__}: {error}"))


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    """Only plain numbers, strings and booleans (what the server shows)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))
            or v is None}


class FitWorker:
    """The server's handle on one worker process.

    Args:
        job: the work (pickled into the new process when :meth:`start` runs).
    """

    def __init__(self, job: WorkerJob) -> None:
        self._reports = _SPAWN.Queue()
        self._stop = _SPAWN.Event()
        self._process = _SPAWN.Process(target=run_job, args=(job, self._reports, self._stop),
                                       name="isnet-fine-tune", daemon=True)

    @property
    def pid(self) -> int | None:
        """The worker's process id (None before :meth:`start`)."""
        return self._process.pid

    def start(self) -> None:
        """Start the process."""
        self._process.start()

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._process.is_alive()

    def next_report(self, timeout: float = 0.2) -> tuple | None:
        """The next report, or None when none came within ``timeout`` seconds."""
        try:
            return self._reports.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        """Ask the worker to end before its next step (nothing is saved for a stopped run)."""
        self._stop.set()

    def exit_code(self) -> int | None:
        """The process's exit code once it ended (negative: killed by that signal)."""
        return self._process.exitcode

    def close(self, grace_s: float = 30.0) -> None:
        """Stop the worker, wait up to ``grace_s`` seconds, then kill it; free its resources."""
        self._stop.set()
        self._process.join(grace_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)
        self._reports.close()
        self._reports.join_thread()
