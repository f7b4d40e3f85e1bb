"""Plain functions behind the Fine-tune tab: a small image+mask set → a short run → a new model.

:func:`fine_tune` takes a :class:`FineTuneRequest` and is a generator: it runs
:func:`isnet.fit` on a *copy* of the chosen model in a worker process
(:mod:`explorer.handlers.train_worker`) and yields :class:`TrainUpdate` objects (progress, live
curves) while it runs, so the serving process's memory does not grow with each run. Stopping (the
Stop button sets the session's stop event; closing the generator does the same) ends the run
between two steps, or at once while the worker is still starting (it is killed: nothing was
trained); a step that does not end within :data:`STOP_GRACE_S` seconds of the stop is cut short
the same way. An upload is read after the first update (its pixels bounded from the headers,
decoded reduced, resized as the model's evaluation does: torchvision's crop for ImageNet
metadata; the bundled samples the same way, at once), and a stop while it is read ends the
run there. The last update then says "Stopped". Until the first step, the status says what is
happening and for how long (the worker process starts, then runs its first step); every time
reported is counted from the click. A worker that dies unasked is reported as a failure. Only a
completed run with finite weights is saved (atomically, by the worker) and listed; a stopped,
diverged or failed run saves nothing, so no run ever damages a checkpoint saved before. Every
number is used as sent: :class:`isnet.TrainConfig` refuses non-finite or out-of-range settings,
and the message names the setting. The set itself comes from
:mod:`explorer.handlers.train_data`. The run trains on the explorer's device (``app.py
--device``), and every status line names it. The session's record of finished runs
(:func:`new_record`, kept in ``gr.State``) is plain and small.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

import isnet
from explorer.entries import ModelEntry, plain_metadata
from explorer.errors import InputError
from explorer.handlers.explain import explain_models
from explorer.handlers.explain_views import PairView
from explorer.handlers.export import record_figure
from explorer.handlers.train_checks import (
    in_base_classes,
    prepare_model,
    split_notices,
)
from explorer.handlers.train_checks import run_config as _config
from explorer.handlers.train_data import (
    StoppedReading,
    check_set,
    samples_set,
    split,
    uploaded_set,
)
from explorer.handlers.train_worker import FitWorker, WorkerJob
from explorer.media import plots
from explorer.media.tensors import resize_mode
from explorer.plain_text import plain
from explorer.state import AppContext
from isnet import viz
from isnet.devices import device_label

METHOD_LABELS = {"standard": "standard (cross-entropy only)",
                 "selective": "ISNet — selective (one map, fast)",
                 "all": "ISNet — all classes (original, slow)",
                 "stochastic": "ISNet — stochastic (one random map)"}
"""A label for each training method (:data:`isnet.TRAINING_METHODS`), for the dropdown."""

STOP_GRACE_S = 20.0
"""How long a stopped run may take to finish its current step before its worker is killed."""
STARTUP_EVERY_S = 1.0
"""How often the status is renewed (with the time so far) before the first step reports."""
clock = time.monotonic
"""The clock every reported time is read from (tests replace it)."""


@dataclass(frozen=True)
class FineTuneRequest:
    """What the Fine-tune button sends.

    Attributes:
        base_id: the model to start from (a copy is trained).
        source: "samples" (the bundled samples) or "upload" (``paths``).
        paths: uploaded files: one zip, or loose image and mask files.
        method: the training method, one of :data:`isnet.TRAINING_METHODS`.
        epochs: passes over the set, capped by ``Limits.max_epochs``.
        heat_weight: P, the heatmap-loss share of the ISNet loss.
        decay: d, the GWRP decay of the background term.
        learning_rate: SGD learning rate.
        batch_size: images per step.
        seed: seeds the split and the run.
        background_tint: share of training images per step whose background gets a random
            colour (:mod:`isnet.training.augment`; robustness to whole-background changes).
        mask_margin: pixels by which the heatmap loss grows each mask
            (:attr:`isnet.TrainConfig.mask_margin`; tolerance for loose or tight masks).
    """

    base_id: str
    source: str = "samples"
    paths: tuple[str, ...] = ()
    method: str = "selective"
    epochs: int = 2
    heat_weight: float = 0.7
    decay: float = 0.9
    learning_rate: float = 0.01
    batch_size: int = 16
    seed: int = 0
    background_tint: float = 0.0
    mask_margin: int = 0


@dataclass
class TrainUpdate:
    """One progress report of a fine-tune.

    Attributes:
        fraction: progress in [0, 1].
        status: Markdown status line.
        figure: live curves (matplotlib Figure) or None when unchanged.
        checkpoint: path of the saved checkpoint (last update only).
        entry: the new model (last update only).
        before_after: base vs fine-tuned explanation of one validation image (last update only).
        history: the metrics reported so far, one dict per step.
        worker_pid: the process id of the worker training the model (progress updates).
    """

    fraction: float
    status: str
    figure: Any = None
    checkpoint: str | None = None
    entry: ModelEntry | None = None
    before_after: PairView | None = None
    history: list[dict] = field(default_factory=list)
    worker_pid: int | None = None


def fine_tune(ctx: AppContext, session: str | None, request: FineTuneRequest,
              stop: threading.Event | None = None) -> Iterator[TrainUpdate]:
    """Fine-tune a copy of ``request.base_id`` in a worker process and yield progress; the last
    update carries the new model (only when the run completed with finite weights).

    Args:
        stop: set it to stop between steps (the Stop button).

    Raises:
        InputError: bad set, bad settings, or the worker failed or was killed.
    """
    started = clock()  # the click: every time reported counts from here
    base = ctx.store.get(request.base_id, session)
    if request.method not in isnet.TRAINING_METHODS:
        raise InputError(f"Unknown training method {request.method!r}; choose one of "
                         f"{list(isnet.TRAINING_METHODS)}.")
    _config(base, request, len(base.class_names), ctx.limits.max_epochs)  # settings first
    stop = stop or threading.Event()
    if request.source != "samples":  # an upload may take minutes to read: say so first
        yield TrainUpdate(0.0, _starting(started, "reading the uploaded images", ""))
    try:
        image_set, notices = _read_set(ctx, session, request, base, stop)
    except StoppedReading:
        yield _stopped(started, [], "while reading the set; nothing was trained")
        return
    check_set(image_set, ctx.limits.max_train_images)
    train_set, val_set = split(image_set, request.seed)
    notices = split_notices(len(train_set.labels), len(val_set.labels),
                            train_set is val_set) + notices
    model, head_notices = prepare_model(base, list(image_set.class_names))
    config = _config(base, request, model.num_classes, ctx.limits.max_epochs)
    model_id = ctx.store.new_id("tuned")
    path = ctx.session_dir(session) / f"{model_id}.safetensors"
    save = dict(model_name=config.model, class_names=list(image_set.class_names),
                input_size=config.input_size, seed=config.seed, config=config.to_dict(),
                data={"source": "explorer fine-tune", "images": len(image_set.labels)},
                provenance={"base_model": base.label, "tool": "ISNet Explorer"})
    intro = (f"{len(train_set.labels)} training / {len(val_set.labels)} validation images, "
             f"{len(image_set.class_names)} classes, on {device_label(ctx.device)}. "
             + " ".join(notices + head_notices))
    worker = FitWorker(WorkerJob(model, train_set, val_set, config, str(path), save,
                                 threads=torch.get_num_threads(), device=str(ctx.device)))
    del model, train_set  # the worker gets its own copies
    yield TrainUpdate(0.0, _starting(started, "starting a worker process", intro))
    history: list[dict] = []
    ending: dict[str, Any] = {"started": started}
    worker.start()
    try:
        yield from _monitor(worker, stop, history, intro, ending)
    finally:  # finished, stopped, cancelled (GeneratorExit) or failed: the process goes
        worker.close(grace_s=0 if ending.get("kind") == "stopped" else
                     10 if "kind" in ending else 30)
        release_memory()
    yield _outcome(ctx, session, base, model_id, ending, worker.exit_code(), config, image_set,
                   val_set, history)


def _read_set(ctx: AppContext, session: str | None, request: FineTuneRequest, base: ModelEntry,
              stop: threading.Event) -> tuple[isnet.ImageSet, list[str]]:
    """The set at the base model's input size, resized as its evaluation does (torchvision's
    crop for ImageNet metadata, :func:`explorer.media.tensors.resize_mode`), and notices.

    Raises:
        StoppedReading: ``stop`` was set while the upload was read.
        InputError: a bad set.
    """
    size, resize = base.input_size, resize_mode(base.metadata)
    if request.source == "samples":
        return samples_set(ctx, size, base.class_names, resize=resize), []
    image_set, notices = uploaded_set(ctx, session, list(request.paths), size, stop=stop,
                                      resize=resize)
    image_set, matched = in_base_classes(image_set, base, list(request.paths))
    return image_set, matched + notices


def _stopped(started: float, history: list[dict], when: str = "") -> TrainUpdate:
    """The last update of a stopped run (nothing saved)."""
    return TrainUpdate(1.0, f"Stopped after {clock() - started:.1f} s{' ' + when if when else ''}"
                            f": nothing was saved (earlier checkpoints are untouched).",
                       plots.training_figure(history), history=history)


def _starting(started: float, doing: str, intro: str) -> str:
    """The status before the first step: what is happening, and for how long so far."""
    return f"Starting ({clock() - started:.0f} s): {doing}… {intro}"


def _monitor(worker: FitWorker, stop: threading.Event, history: list[dict], intro: str,
             ending: dict[str, Any]) -> Iterator[TrainUpdate]:
    """Relay the worker's reports (an update at most every 0.7 s; before the first step, one
    every :data:`STARTUP_EVERY_S` saying what is happening) until it ends; passes the Stop
    button on. Fills ``ending`` with ``kind`` ("end", "error", or "stopped" when the worker is
    to be killed: stopped before its first step, or its step outlasted :data:`STOP_GRACE_S`),
    ``value`` and ``ready`` (seconds from the click until the worker was ready)."""
    started, last, stopped_at = ending["started"], clock(), None
    doing = "starting a worker process (loading PyTorch and the model)"
    while True:
        if stop.is_set():
            stopped_at = clock() if stopped_at is None else stopped_at
            worker.stop()
            if not history or clock() - stopped_at > STOP_GRACE_S:
                ending.update(kind="stopped", value=None)
                return
        report = worker.next_report(timeout=0.2)
        if report is None:
            if worker.alive():
                if not history and clock() - last >= STARTUP_EVERY_S:
                    last = clock()
                    yield TrainUpdate(0.0, _starting(started, doing, intro),
                                      worker_pid=worker.pid)
                continue
            report = worker.next_report(timeout=1.0)  # the last words of a finished process
            if report is None:
                return  # ended without a word: killed
        if report[0] == "ready":
            ending["ready"] = clock() - started
            doing = "the worker is ready; running the first step"
            continue
        if report[0] != "progress":
            ending.update(kind=report[0], value=report[1])
            return
        _, step, total, metrics = report
        history.append({"step": step, **{k: v for k, v in metrics.items()
                                         if isinstance(v, float) and k != "grad_norm"}})
        if time.monotonic() - last > 0.7 or step == total:
            last = time.monotonic()
            status = (f"Step {step}/{total} · epoch {metrics.get('epoch')} · "
                      f"loss {metrics.get('loss', float('nan')):.4f} · "
                      f"{clock() - started:.0f} s. {intro}")
            yield TrainUpdate(step / max(total, 1), status, plots.training_figure(history),
                              history=list(history), worker_pid=worker.pid)


def release_memory() -> None:
    """Hand memory freed by a run back to the system (glibc keeps freed heap otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _outcome(ctx: AppContext, session: str | None, base: ModelEntry, model_id: str,
             ending: dict[str, Any], exit_code: int | None, config: isnet.TrainConfig,
             image_set: isnet.ImageSet, val_set: isnet.ImageSet,
             history: list[dict]) -> TrainUpdate:
    """The last update: the new model, or why there is none (nothing is listed then).

    Raises:
        InputError: the worker failed or was killed.
    """
    if ending.get("kind") == "stopped":
        return _stopped(ending["started"], history)
    if ending.get("kind") == "error":
        raise InputError(f"Training failed: {ending['value']}. Nothing was saved.")
    if ending.get("kind") != "end":
        raise InputError(f"The fine-tune's worker process ended before finishing (exit code "
                         f"{exit_code}); nothing was saved, earlier checkpoints are untouched.")
    summary = ending["value"]
    figure = plots.training_figure(history)
    if summary["status"] == "stopped":
        return _stopped(ending["started"], history)
    if summary["checkpoint"] is None:  # diverged or failed: never saved, never listed
        return TrainUpdate(1.0, f"**Failed** ({summary['status']}) after {summary['steps']} "
                                f"steps: nothing was saved or listed. {summary['advice'] or ''}",
                           figure, history=history)
    return _finish(ctx, session, base, model_id, {**summary, **ending}, config, image_set,
                   val_set, history)


def _finish(ctx: AppContext, session: str | None, base: ModelEntry, model_id: str,
            summary: dict[str, Any], config: isnet.TrainConfig, image_set: isnet.ImageSet,
            val_set: isnet.ImageSet, history: list[dict]) -> TrainUpdate:
    """Load the saved model, register it for this session, explain one image before/after."""
    label = f"{base.label} → fine-tuned ({config.method}, {config.epochs} ep) #{model_id[6:]}"
    path = summary["checkpoint"]
    model = isnet.load_checkpoint(path).model  # on the CPU; the store moves it to ctx.device
    metadata = plain_metadata({"class_names": list(image_set.class_names),
                               "input_size": config.input_size, "model_name": config.model,
                               "family": base.family, "config": config.to_dict(),
                               "metrics": summary["metrics"],
                               "provenance": {"base_model": base.label}})
    entry = ctx.store.add(ModelEntry(model_id, label, model.eval(), metadata, owner=session,
                                     path=str(path)))
    image = viz.as_rgb_uint8(val_set.images[0])  # (S, S, 3)
    mask = val_set.masks[0, 0].numpy() > 0
    pair = explain_models(ctx, [base, entry], image, mask) \
        if base.class_names == entry.class_names else None
    done = (f"Done in {clock() - summary['started']:.1f} s from the click on "
            f"{device_label(ctx.device)}: start-up {summary.get('ready', 0.0):.1f} s, "
            f"{summary['steps']} steps in {summary['seconds']:.1f} s ({summary['status']}), "
            f"then the before/after view. Saved as **{plain(label)}**; it is now in the model "
            "lists.")
    record_figure(ctx, session, "fine_tune", f"Fine-tune: {label}", plots.training_figure(history),
                  {"metrics": summary["metrics"], "steps": summary["steps"],
                   "images": {"training": len(image_set.labels) - len(val_set.labels),
                              "validation": len(val_set.labels)}},
                  {**config.to_dict(), "base_model": base.label}, [base, entry])  # for the report
    return TrainUpdate(1.0, done, plots.training_figure(history), str(path), entry, pair, history)


def new_record() -> dict:
    """The per-session record kept in ``gr.State``: small and plain (deep-copied per session).

    ``runs`` lists this session's finished fine-tunes as plain dicts (model id, name,
    checkpoint path, training method, epochs, validation metrics); the models themselves live in
    the :class:`explorer.state.ModelStore` under the session's hash.
    """
    return {"runs": []}


def record_run(record: dict | None, entry: ModelEntry, checkpoint: str | None) -> dict:
    """A copy of ``record`` with one more finished run."""
    config = entry.metadata.get("config", {})
    metrics = entry.metadata.get("metrics", {})
    run = {"model_id": entry.model_id, "name": entry.label, "checkpoint": checkpoint,
           "method": entry.method, "epochs": config.get("epochs"),
           "val_accuracy": metrics.get("val_accuracy"),
           "val_background_share": metrics.get("val_background_share")}
    return {**(record or new_record()), "runs": list((record or {}).get("runs", [])) + [run]}


def _rounded(value: Any) -> Any:
    """A float to 3 decimals (``0.16666666666666666`` → 0.167); anything else unchanged."""
    return round(value, 3) if isinstance(value, float) else value


def runs_table(record: dict | None) -> list[list]:
    """Rows for a table of the session's runs: name, method, epochs, accuracy, share (numbers
    rounded to 3 decimals)."""
    return [[r["name"], r["method"], r["epochs"], _rounded(r["val_accuracy"]),
             _rounded(r["val_background_share"])]
            for r in (record or {}).get("runs", [])]
