"""Plain functions behind the Fine-tune tab: a small image+mask set → a short run → a new model.

:func:`fine_tune` takes a :class:`FineTuneRequest` and is a generator: it runs
:func:`isnet.fit` on a *copy* of the chosen model in a worker thread and yields
:class:`TrainUpdate` objects (progress, live curves) while it runs. Stopping (the Stop button
sets the session's stop event; closing the generator does the same) ends the run between two
steps; nothing is written until the run has finished, and files are written atomically by
:func:`isnet.save_checkpoint`, so a stopped or crashed run never damages a checkpoint saved
before. The set itself comes from :mod:`explorer.handlers.train_data`.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

import isnet
from explorer.errors import InputError
from explorer.handlers.explain import PairView, explain_models
from explorer.handlers.train_data import check_set, samples_set, split, uploaded_set
from explorer.media import plots
from explorer.state import AppContext, ModelEntry, plain_metadata
from isnet import viz

METHOD_LABELS = {"standard": "standard (cross-entropy only)",
                 "selective": "ISNet — selective (one map, fast)",
                 "all": "ISNet — all classes (original, slow)",
                 "stochastic": "ISNet — stochastic (one random map)"}
"""A label for each training method (:data:`isnet.TRAINING_METHODS`), for the dropdown."""


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
    """

    fraction: float
    status: str
    figure: Any = None
    checkpoint: str | None = None
    entry: ModelEntry | None = None
    before_after: PairView | None = None
    history: list[dict] = field(default_factory=list)


def _prepare_model(base: ModelEntry, class_names: list[str]) -> tuple[Any, list[str]]:
    """A trainable copy of the base model, with a new classifier head if the classes differ."""
    model = copy.deepcopy(base.model)
    notices = []
    if list(class_names) != base.class_names:
        head = model.classifier_layer
        name = next((n for n, m in model.named_children() if m is head), None)
        if name is None:
            raise InputError(f"{base.label} cannot learn other classes here (its classifier is "
                             f"not a direct part of the model).")
        setattr(model, name, torch.nn.Linear(head.in_features, len(class_names)))
        model.arch = {**model.arch, "num_classes": len(class_names)}
        notices.append(f"The set's classes differ from {base.label}'s: a new classifier head "
                       f"for {len(class_names)} classes is trained.")
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model.float(), notices


def _config(base: ModelEntry, request: FineTuneRequest, num_classes: int) -> isnet.TrainConfig:
    """The run's TrainConfig (refused settings become InputErrors)."""
    try:
        return isnet.TrainConfig(
            model=base.metadata.get("model_name") or "densenet121", num_classes=num_classes,
            method=request.method, epochs=int(request.epochs),
            batch_size=int(request.batch_size), learning_rate=float(request.learning_rate),
            heat_weight=float(request.heat_weight), decay=float(request.decay),
            seed=int(request.seed), input_size=base.input_size)
    except ValueError as error:
        raise InputError(str(error)) from error


def fine_tune(ctx: AppContext, session: str | None, request: FineTuneRequest,
              stop: threading.Event | None = None) -> Iterator[TrainUpdate]:
    """Fine-tune a copy of ``request.base_id`` and yield progress; the last update carries the
    new model.

    Args:
        stop: set it to stop between steps (the Stop button).

    Raises:
        InputError: bad set, bad settings.
    """
    base = ctx.store.get(request.base_id, session)
    if request.method not in isnet.TRAINING_METHODS:
        raise InputError(f"Unknown training method {request.method!r}; choose one of "
                         f"{list(isnet.TRAINING_METHODS)}.")
    if not 1 <= int(request.epochs) <= ctx.limits.max_epochs:
        raise InputError(f"Epochs must lie between 1 and {ctx.limits.max_epochs}.")
    size = base.input_size
    notices: list[str] = []
    if request.source == "samples":
        image_set = samples_set(ctx, size, base.class_names)
    else:
        image_set, notices = uploaded_set(ctx, session, list(request.paths), size)
    check_set(image_set, ctx.limits.max_train_images)
    train_set, val_set = split(image_set, request.seed)
    model, head_notices = _prepare_model(base, list(image_set.class_names))
    config = _config(base, request, model.num_classes)
    stop = stop or threading.Event()
    reports: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = isnet.fit(model, train_set, val_set, config,
                                          on_progress=lambda s, t, m: reports.put((s, t, m)),
                                          should_stop=stop.is_set)
        except Exception as error:  # noqa: BLE001 — reported to the user below
            outcome["error"] = error

    worker = threading.Thread(target=work, name=f"fine-tune-{session}", daemon=True)
    intro = (f"{len(train_set.labels)} training / {len(val_set.labels)} validation images, "
             f"{len(image_set.class_names)} classes. " + " ".join(notices + head_notices))
    yield TrainUpdate(0.0, f"Starting: {intro}")
    history: list[dict] = []
    worker.start()
    try:
        yield from _monitor(worker, reports, history, intro)
    except GeneratorExit:  # the event was cancelled: stop the worker between two steps
        stop.set()
        worker.join(timeout=60)
        raise
    worker.join()
    if "error" in outcome:
        raise InputError(f"Training failed: {outcome['error']}") from outcome["error"]
    result = outcome["result"]
    if result.status == "stopped":
        yield TrainUpdate(1.0, "Stopped: nothing was saved (earlier checkpoints are untouched).",
                          plots.training_figure(history), history=history)
        return
    yield _finish(ctx, session, base, model, result, config, image_set, val_set, history)


def _monitor(worker: threading.Thread, reports: queue.Queue, history: list[dict],
             intro: str) -> Iterator[TrainUpdate]:
    """Yield an update at most every 0.7 s while the worker runs."""
    last = 0.0
    fraction = 0.0
    while worker.is_alive() or not reports.empty():
        try:
            step, total, metrics = reports.get(timeout=0.2)
        except queue.Empty:
            continue
        fraction = step / max(total, 1)
        history.append({"step": step, **{k: v for k, v in metrics.items()
                                         if isinstance(v, float) and k != "grad_norm"}})
        if time.monotonic() - last > 0.7 or step == total:
            last = time.monotonic()
            status = (f"Step {step}/{total} · epoch {metrics.get('epoch')} · "
                      f"loss {metrics.get('loss', float('nan')):.4f}. {intro}")
            yield TrainUpdate(fraction, status, plots.training_figure(history),
                              history=list(history))


def _finish(ctx: AppContext, session: str | None, base: ModelEntry, model: torch.nn.Module,
            result: Any, config: isnet.TrainConfig, image_set: isnet.ImageSet,
            val_set: isnet.ImageSet, history: list[dict]) -> TrainUpdate:
    """Save the fine-tuned model, register it for this session, explain one image before/after."""
    model_id = ctx.store.new_id("tuned")
    label = f"{base.label} → fine-tuned ({config.method}, {config.epochs} ep) #{model_id[6:]}"
    metrics = {k: v for k, v in (result.history[-1] if result.history else {}).items()
               if isinstance(v, (int, float))}
    path = ctx.session_dir(session) / f"{model_id}.safetensors"
    isnet.save_checkpoint(path, model, model_name=config.model,
                          class_names=list(image_set.class_names),
                          input_size=config.input_size, seed=config.seed,
                          config=config.to_dict(),
                          data={"source": "explorer fine-tune", "images": len(image_set.labels)},
                          metrics={**metrics, "status": result.status},
                          provenance={"base_model": base.label, "tool": "ISNet Explorer"})
    metadata = plain_metadata({"class_names": list(image_set.class_names),
                               "input_size": config.input_size, "model_name": config.model,
                               "family": base.family, "config": config.to_dict(),
                               "metrics": metrics,
                               "provenance": {"base_model": base.label}})
    entry = ctx.store.add(ModelEntry(model_id, label, model.eval(), metadata, owner=session,
                                     path=str(path)))
    image = viz.as_rgb_uint8(val_set.images[0])  # (S, S, 3)
    mask = val_set.masks[0, 0].numpy() > 0
    pair = explain_models(ctx, [base, entry], image, mask) \
        if base.class_names == entry.class_names else None
    done = (f"Done in {result.seconds:.1f} s ({result.steps} steps, {result.status}). "
            f"Saved as **{label}**; it is now in the model lists. "
            + (f"Advice: {result.advice}" if result.advice else ""))
    return TrainUpdate(1.0, done, plots.training_figure(history), str(path), entry, pair, history)
