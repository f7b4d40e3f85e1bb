"""Plain functions behind the Fine-tune tab: a small image+mask set → a short run → a new model.

:func:`fine_tune` is a generator: it runs :func:`isnet.train.fit` on a *copy* of the chosen model
in a worker thread and yields :class:`TrainUpdate` objects (progress, live curves) while it runs.
Stopping (the Stop button sets the session's stop event; closing the generator does the same)
ends the run between two steps; nothing is written until the run has finished, and files are
written atomically by :func:`isnet.save_checkpoint`, so a stopped or crashed run never damages
a checkpoint saved before.
"""

from __future__ import annotations

import copy
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer import handlers, plots
from explorer.state import AppContext, ModelEntry, plain_metadata
from explorer.uploads import InputError, decode_image, decode_mask

VARIANT_LABELS = {"standard": "standard DenseNet (cross-entropy only)",
                  "selective": "ISNet — selective (one map, fast)",
                  "all": "ISNet — all classes (original, slow)",
                  "stochastic": "ISNet — stochastic (one random map)"}


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
    """

    fraction: float
    status: str
    figure: Any = None
    checkpoint: str | None = None
    entry: ModelEntry | None = None
    before_after: handlers.PairView | None = None
    history: list[dict] = field(default_factory=list)


def samples_set(ctx: AppContext, size: int, class_names: list[str]):
    """The bundled samples that have a mask and a known class, as an ``isnet`` ImageSet."""
    from isnet.data.image_set import ImageSet

    images, masks, labels = [], [], []
    for sample in ctx.samples:
        if sample.mask_path is None or sample.label not in class_names:
            continue
        image = decode_image(sample.image_path).image
        mask = decode_mask(sample.mask_path, image.shape[:2])
        images.append(handlers.model_tensor(image, size)[0])
        masks.append(handlers.mask_tensor(mask, size)[0])
        labels.append(class_names.index(sample.label))
    if not images:
        raise InputError("No bundled sample has both a mask and a class of this model.")
    return ImageSet(torch.stack(images), torch.stack(masks), torch.tensor(labels),
                    list(class_names))


def uploaded_set(ctx: AppContext, session: str | None, paths: list[str], size: int):
    """An ImageSet (and the importer's problem list) from an uploaded zip of
    ``<class>/<name>.png`` + ``<name>.mask.png`` folders, or from loose files named
    ``<class>_<name>.png`` + ``<class>_<name>.mask.png``.

    Raises:
        InputError: nothing usable, or the folder importer reports only problems.
    """
    try:
        from isnet.data.folders import load_image_folder
    except ImportError as error:
        raise InputError("Importing your own folders is not available in this build; use "
                         "the bundled samples.") from error
    if not paths:
        raise InputError("Upload a zip (or the files of a folder), or choose the samples.")
    if len(paths) == 1 and str(paths[0]).lower().endswith(".zip"):
        source = paths[0]
    else:
        source = _folder_from_loose_files(ctx.session_dir(session) / f"upload-{time.time_ns()}",
                                          paths)
    try:
        image_set, problems = _call_loader(load_image_folder, source, size)
    except ValueError as error:
        raise InputError(f"Cannot use this set: {error}") from error
    return image_set, list(problems)


def _folder_from_loose_files(folder: Path, paths: list[str]) -> Path:
    """Lay loose uploads out as ``folder/<class>/<name>``: the class is the file name's part
    before the first underscore (``cat_01.png`` and ``cat_01.mask.png`` → class ``cat``).

    Raises:
        InputError: a file name without an underscore.
    """
    for path in paths:
        name = Path(path).name
        if "_" not in name.strip("_"):
            raise InputError(f"{name}: loose files must be named <class>_<name>.png with masks "
                             f"<class>_<name>.mask.png (or upload a zip of class folders).")
        target = folder / name.split("_", 1)[0]
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return folder


def _call_loader(loader, source, size: int):
    try:
        return loader(source, size=size)
    except TypeError:  # a loader without a size option
        return loader(source)


def check_set(image_set, limit: int) -> None:
    """Refuse sets a fine-tune cannot learn from (one class, too many images, no foreground)."""
    labels = image_set.labels
    if len(labels) == 0:
        raise InputError("The set is empty.")
    if len(labels) > limit:
        raise InputError(f"The set has {len(labels)} images; the limit here is {limit}.")
    if len(torch.unique(labels)) < 2:
        raise InputError("The set has only one class; a classifier needs at least two.")
    if float(image_set.masks.sum()) == 0:
        raise InputError("Every mask in the set is empty.")


def split(image_set, seed: int = 0, val_fraction: float = 0.2):
    """(train, val) ImageSets; a set of fewer than 5 images is used for both."""
    from isnet.data.image_set import ImageSet

    n = len(image_set.labels)
    if n < 5:
        return image_set, image_set
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = max(1, int(round(n * val_fraction)))

    def take(index):
        return ImageSet(image_set.images[index], image_set.masks[index], image_set.labels[index],
                        list(image_set.class_names))

    return take(order[cut:]), take(order[:cut])


def _prepare_model(base: ModelEntry, class_names: list[str]) -> tuple[Any, list[str]]:
    """A trainable copy of the base model, with a new classifier head if the classes differ."""
    model = copy.deepcopy(base.model)
    notices = []
    if list(class_names) != base.class_names:
        features = model.classifier.in_features
        model.classifier = torch.nn.Linear(features, len(class_names))
        model.arch = {**model.arch, "num_classes": len(class_names)}
        notices.append(f"The set's classes differ from {base.label}'s: a new classifier head "
                       f"for {len(class_names)} classes is trained.")
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model.float(), notices


def fine_tune(ctx: AppContext, session: str | None, base_id: str, source: str,
              paths: list[str] | None, variant: str, epochs: int, heat_weight: float,
              decay: float, learning_rate: float, batch_size: int = 16, seed: int = 0,
              stop: threading.Event | None = None) -> Iterator[TrainUpdate]:
    """Fine-tune a copy of ``base_id`` and yield progress; the last update carries the new model.

    Args:
        source: "samples" (bundled) or "upload" (``paths``: a zip or loose files).
        variant: "standard", "selective", "all" or "stochastic".
        epochs: capped by ``ctx.limits.max_epochs``.
        heat_weight, decay: P and d of the ISNet loss.
        stop: set it to stop between steps (the Stop button).

    Raises:
        InputError: bad set, bad settings.
    """
    from isnet.io.checkpoints import save_checkpoint
    from isnet.training.config import TrainConfig
    from isnet.training.loop import fit

    base = ctx.store.get(base_id, session)
    if variant not in VARIANT_LABELS:
        raise InputError(f"Unknown variant {variant!r}; choose one of {list(VARIANT_LABELS)}.")
    if not 1 <= int(epochs) <= ctx.limits.max_epochs:
        raise InputError(f"Epochs must lie between 1 and {ctx.limits.max_epochs}.")
    size = base.input_size
    notices: list[str] = []
    if source == "samples":
        image_set = samples_set(ctx, size, base.class_names)
    else:
        image_set, notices = uploaded_set(ctx, session, list(paths or []), size)
    check_set(image_set, ctx.limits.max_train_images)
    train_set, val_set = split(image_set, seed)
    model, head_notices = _prepare_model(base, list(image_set.class_names))
    try:
        config = TrainConfig(model=base.metadata.get("model_name") or "densenet121",
                             num_classes=model.num_classes, method=variant, epochs=int(epochs),
                             batch_size=int(batch_size), learning_rate=float(learning_rate),
                             heat_weight=float(heat_weight), decay=float(decay), seed=int(seed),
                             input_size=size)
    except ValueError as error:
        raise InputError(str(error)) from error
    stop = stop or threading.Event()
    reports: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = fit(model, train_set, val_set, config,
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
    yield _finish(ctx, session, base, model, result, config, image_set, val_set, history,
                  save_checkpoint)


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


def _finish(ctx: AppContext, session, base: ModelEntry, model, result, config, image_set,
            val_set, history: list[dict], save_checkpoint) -> TrainUpdate:
    """Save the fine-tuned model, register it for this session, explain one image before/after."""
    model_id = ctx.store.new_id("tuned")
    label = f"{base.label} → fine-tuned ({config.method}, {config.epochs} ep) #{model_id[6:]}"
    metrics = {k: v for k, v in (result.history[-1] if result.history else {}).items()
               if isinstance(v, (int, float))}
    path = ctx.session_dir(session) / f"{model_id}.safetensors"
    save_checkpoint(path, model, model_name=config.model, class_names=list(image_set.class_names),
                    input_size=config.input_size, seed=config.seed, config=config.to_dict(),
                    data={"source": "explorer fine-tune", "images": len(image_set.labels)},
                    metrics={**metrics, "status": result.status},
                    provenance={"base_model": base.label, "tool": "ISNet Explorer"})
    metadata = plain_metadata({"class_names": list(image_set.class_names),
                               "input_size": config.input_size, "model_name": config.model,
                               "variant": "standard" if config.method == "standard" else "isnet",
                               "config": config.to_dict(), "metrics": metrics,
                               "provenance": {"base_model": base.label}})
    entry = ctx.store.add(ModelEntry(model_id, label, model.eval(), metadata, owner=session,
                                     path=str(path)))
    image = (val_set.images[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    mask = val_set.masks[0, 0].numpy() > 0
    pair = handlers.explain_models(ctx, [base, entry], image, mask) \
        if base.class_names == entry.class_names else None
    done = (f"Done in {result.seconds:.1f} s ({result.steps} steps, {result.status}). "
            f"Saved as **{label}**; it is now in the model lists. "
            + (f"Advice: {result.advice}" if result.advice else ""))
    return TrainUpdate(1.0, done, plots.training_figure(history), str(path), entry, pair, history)
