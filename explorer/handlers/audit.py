"""Plain functions behind the Audit tab: a set of images → every image's heatmap, background
share and prediction, for one or two models.

:func:`run_audit` takes an :class:`AuditRequest` and is a generator: it audits the set in
chunks with :func:`isnet.analysis.audit.audit_images` and yields :class:`AuditUpdate` objects
(progress) between chunks, so the Stop button (or closing the generator) ends it between two
chunks. The results do not stay in memory: the set and every model's maps are written as
``.npy`` files into an ``audit-…`` folder of the session's folder (through
:mod:`isnet.io.atomic`), and the small, plain *audit record* (a dict for ``gr.State``) says where
they are. :mod:`explorer.handlers.audit_views` reads them back for the histogram, the gallery,
strategy discovery and the fine-tuning set. With two models, the first one's results come as
soon as it is done (an *interim* record), so the user reads them while the second one runs.
A folder on this machine (with its own masks, or none) is streamed from disk instead, without a
cap on its size: :mod:`explorer.handlers.audit_stream`. Uploads keep :data:`MAX_IMAGES`.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import isnet
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers.audit_sets import (
    AuditSet,
    at_size,
    bundled_set,
    read_files,
    unpack_upload,
)
from explorer.handlers.lrp_modes import lrp_config
from explorer.media import masking
from explorer.media.tensors import normalise, resize_mode
from explorer.memory import release_memory
from explorer.state import AppContext
from isnet.analysis.audit import AuditResult, audit_images, lrp_explainer
from isnet.analysis.workers import default_workers, ordered_map
from isnet.devices import device_label
from isnet.io.export import write_json, write_npy
from isnet.io.limits import UploadLimits
from isnet.models.layout import in_layout, preferred_layout

BUNDLED = ("biased", "unbiased", "confounding", "mixed")
"""The bundled Fashion-MNIST test splits (see :mod:`isnet.training.experiment`); "mixed" is
half biased, half unbiased: the same test images once with their class mark, once without."""
SOURCES = BUNDLED + ("upload", "folder")
MASK_MODES = ("set", "auto", "none")
"""Where masks come from: the set's own masks, automatic threshold masks, or none at all. An
uploaded set needs its own masks only for "set"; for "auto" and "none" images without a
``.mask.png`` are audited too."""
MAX_IMAGES = 2000
CHUNK = 64
PIXELS_PER_BATCH = 64 * 64 * 64
"""Largest batch in pixels: 64 images at 64 px (a DenseNet121's explanations of them hold
~0.8 GB), so a 224 px model explains 5 images at a time, not 64 (~10 GB)."""


@dataclass(frozen=True)
class AuditRequest:
    """What the Audit button sends.

    Attributes:
        model_ids: one or two models (store ids) to audit.
        source: one of :data:`SOURCES`.
        limit: images taken from a bundled split (1 … :data:`MAX_IMAGES`).
        paths: the uploaded zip (``source="upload"``).
        folder: a folder path on this machine (``source="folder"``; local users only).
        masks: one of :data:`MASK_MODES`.
        batch_size: images per forward pass.
    """

    model_ids: tuple[str, ...]
    source: str = "biased"
    limit: int = 200
    paths: tuple[str, ...] = ()
    folder: str = ""
    masks: str = "set"
    batch_size: int = 64


@dataclass
class AuditUpdate:
    """One progress report of an audit.

    Attributes:
        fraction: progress in [0, 1].
        status: Markdown status line.
        record: the audit record (see :func:`save_audit`): on the last update, and, when two
            models are audited, on the update that finishes the first one (``interim``).
        notices: things the user should know (class sets that differ, skipped files, …).
        interim: the record holds the first model alone, shown while the second one runs;
            the last update's record replaces it.
    """

    fraction: float
    status: str
    record: dict | None = None
    notices: list[str] = field(default_factory=list)
    interim: bool = False


def load_set(ctx: AppContext, session: str | None, request: AuditRequest, entry: ModelEntry,
             local: bool) -> AuditSet:
    """The images to audit at ``entry``'s input size, each named, classes matched to
    ``entry``'s (:mod:`explorer.handlers.audit_sets`).

    Args:
        local: whether the user sits at this machine (only then may ``folder`` be read).

    Raises:
        InputError: unknown source, too many images, nothing uploaded, an unusable set.
    """
    if request.source not in SOURCES:
        raise InputError(f"Unknown image source {request.source!r}; use one of {SOURCES}.")
    size = entry.input_size
    if request.source in BUNDLED:
        if not 1 <= int(request.limit) <= MAX_IMAGES:
            raise InputError(f"Take between 1 and {MAX_IMAGES} images of a bundled split.")
        try:
            chosen = bundled_set(request.source, int(request.limit))
        except (OSError, ValueError) as error:
            raise InputError(f"The bundled test images cannot be read here: {error}") from error
        chosen.images = at_size(chosen.images, size)
        return chosen
    limits = None
    if request.source == "folder":
        if not local:
            raise InputError("Folder paths are read only for a user at this machine; upload a "
                             "zip instead.")
        source = Path(request.folder or "").expanduser()
        if not request.folder or not source.is_dir():
            raise InputError(f"No folder {request.folder!r} on this machine.")
    else:
        if not request.paths:
            raise InputError("Upload a zip of class folders (<class>/<name>.png, masks "
                             "<class>/<name>.mask.png optional).")
        source = unpack_upload(Path(request.paths[0]), ctx.session_dir(session))
        limits = UploadLimits()  # an upload is untrusted: the tighter bounds per file
    hint = (" with automatic masks; with the set's own masks or none, a folder is streamed "
            "from disk without a cap" if request.source == "folder" else "")
    try:
        return read_files(source, size, resize_mode(entry.metadata), entry.class_names,
                          request.masks, MAX_IMAGES, limits)
    except InputError as error:
        raise InputError(f"{error}{hint}" if "at most" in str(error) else str(error)) from error


def auto_masks(images: torch.Tensor) -> torch.Tensor:
    """Threshold masks (:func:`explorer.media.masking.threshold_mask`) for every image.

    Shapes: images (N, 3, H, W) in [0, 1] → (N, 1, H, W) float32 in {0, 1}.
    """
    pixels = (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    masks = np.stack([masking.threshold_mask(p) for p in pixels]).astype(np.float32)
    return torch.from_numpy(masks)[:, None]


def _masks_for(image_set: isnet.ImageSet, mode: str) -> torch.Tensor | None:
    """The masks the audit measures shares against, per :data:`MASK_MODES`."""
    if mode not in MASK_MODES:
        raise InputError(f"Unknown mask choice {mode!r}; use one of {MASK_MODES}.")
    if mode == "none":
        return None
    return image_set.masks.float() if mode == "set" else auto_masks(image_set.images)


def run_audit(ctx: AppContext, session: str | None, request: AuditRequest,
              stop: threading.Event | None = None, local: bool = False,
              workers: int | None = None) -> Iterator[AuditUpdate]:
    """Audit the set with every requested model; yields progress, the last update carries the
    audit record. ``workers``: chunks explained at once (None: :func:`default_workers`).

    Raises:
        InputError: no model, more than two, bad source or set.
    """
    if not 1 <= len(request.model_ids) <= 2:
        raise InputError("Choose one or two models to audit.")
    entries = [ctx.store.get(model_id, session) for model_id in request.model_ids]
    stop = stop or threading.Event()
    if request.source == "folder" and request.masks != "auto" and local:
        from explorer.handlers.audit_stream import run_streamed  # it imports this module

        yield from run_streamed(ctx, session, request, entries, stop)
        return
    start = time.perf_counter()
    chosen = load_set(ctx, session, request, entries[0], local)
    image_set, notices = chosen.images, list(chosen.problems)
    if chosen.match is not None:
        notices = chosen.match.lines() + notices
    masks = _masks_for(image_set, request.masks)
    total = len(image_set) * len(entries)
    yield AuditUpdate(0.0, f"Auditing {len(image_set)} images with {len(entries)} model(s) on "
                      f"{device_label(entries[0].device)}…", notices=notices)
    for entry in entries:
        if list(image_set.class_names) != entry.class_names:
            notices.append(f"{entry.label} knows other classes than the set ("
                           f"{', '.join(entry.class_names[:3])}…): no accuracy; ranked by share.")
    parts: list[list[AuditResult]] = [[] for _ in entries]
    tasks = [(number, first) for number in range(len(entries))
             for first in range(0, len(image_set), CHUNK)]
    audit_chunk = _chunk_auditor(entries, image_set, masks, request)
    workers = workers or default_workers(next(entries[0].model.parameters()).device)
    done, interim = 0, None
    for (number, _), part in zip(tasks, ordered_map(audit_chunk, tasks, workers, stop.is_set),
                            strict=False):  # a stop ends the results early
        parts[number].append(part)
        done += len(part)
        entry, finished = entries[number], sum(map(len, parts[number]))
        status = (f"{entry.label}: {finished}/{len(image_set)} images "
                  f"({time.perf_counter() - start:.1f} s)")
        if number == 0 and len(entries) == 2 and finished == len(image_set):
            interim = save_audit(ctx.session_dir(session), entries[:1], chosen, masks,
                                 [_joined(parts[0])], request, time.perf_counter() - start,
                                 finished)  # the first model's results, while the second runs
            yield AuditUpdate(done / total, f"{status}: its results are below; auditing "
                              f"{entries[1].label}…", interim, interim=True)
            continue
        yield AuditUpdate(done / total, status)
    results = [_joined(model_parts) for model_parts in parts if model_parts]
    del parts, audit_chunk  # the chunks (joined now) and the models' input copies
    count, audited = (min(len(r) for r in results) if results else 0), len(results)
    record = None
    if count:
        seconds = time.perf_counter() - start
        record = save_audit(ctx.session_dir(session), entries[:audited], chosen, masks,
                            results, request, seconds, count)
    del results, chosen, image_set, masks  # on disk now: the big arrays go before the release
    release_memory()  # glibc keeps freed heap otherwise (explorer.memory)
    if record is None:
        yield AuditUpdate(1.0, "Stopped before the first images: nothing to show.")
        return
    if interim is not None:  # the final record holds the first model's results too
        shutil.rmtree(interim["dir"], ignore_errors=True)
    state = "Stopped early" if not record["complete"] else "Done"
    yield AuditUpdate(1.0, f"{state}: {count} images × {audited} model(s) in "
                      f"{seconds:.1f} s on {device_label(entries[0].device)}.", record, notices)


def _chunk_auditor(entries: list[ModelEntry], image_set: isnet.ImageSet,
                   masks: torch.Tensor | None, request: AuditRequest
                   ) -> Callable[[tuple[int, int]], AuditResult]:
    """``audit((model number, first image))``: one chunk of :data:`CHUNK` images audited with
    one model, each model at its own input size, normalisation and LRP settings."""
    inputs, scaled_masks, labels, explainers, models = [], [], [], [], []
    for entry in entries:
        device = next(entry.model.parameters()).device  # each in its fastest layout, once
        models.append(in_layout(entry.model, preferred_layout(entry.model, device)))
        scaled = at_size(isnet.ImageSet(image_set.images, masks if masks is not None else
                                         image_set.masks, image_set.labels,
                                         list(image_set.class_names)), entry.input_size)
        inputs.append(normalise(scaled.images, entry.normalisation))  # as the model expects
        scaled_masks.append(None if masks is None else scaled.masks)
        labels.append(image_set.labels if list(image_set.class_names) == entry.class_names
                      else None)
        explainers.append(lrp_explainer(lrp_config(entry)))  # its ε, z^B bounds and LRP mode

    def audit(task: tuple[int, int]) -> AuditResult:
        number, first = task
        chunk = slice(first, first + CHUNK)
        return audit_images(models[number], inputs[number][chunk],
                            None if scaled_masks[number] is None else scaled_masks[number][chunk],
                            None if labels[number] is None else labels[number][chunk],
                            batch_size=batch_size(request.batch_size,
                                                  entries[number].input_size),
                            explainer=explainers[number])

    return audit


def batch_size(requested: int, input_size: int) -> int:
    """Images per forward pass: the request's, at most :data:`PIXELS_PER_BATCH` pixels."""
    return max(1, min(int(requested), PIXELS_PER_BATCH // (input_size * input_size)))


def _joined(parts: list[AuditResult]) -> AuditResult:
    """One AuditResult from consecutive chunks."""
    if not parts:
        empty = torch.zeros(0)
        return AuditResult(empty.long(), empty, torch.zeros(0, 1, 1), empty, None, False)
    labels = None if parts[0].labels is None else torch.cat([p.labels for p in parts])
    return AuditResult(torch.cat([p.predictions for p in parts]),
                       torch.cat([p.confidence for p in parts]),
                       torch.cat([p.relevance for p in parts]),
                       torch.cat([p.background_share for p in parts]), labels)


def save_audit(folder: Path, entries: list[ModelEntry], chosen: AuditSet,
               masks: torch.Tensor | None, results: list[AuditResult], request: AuditRequest,
               seconds: float, count: int) -> dict:
    """Write the set and every model's results as ``.npy`` files into a fresh ``audit-…``
    folder of ``folder``; return the audit record (plain, small).

    Files: ``images.npy`` (N, H, W, 3) uint8, ``labels.npy`` (N,), ``masks.npy`` (N, H, W)
    bool when masks were used, and per model ``i``: ``relevance_i.npy`` (N, S, S) float32,
    ``predictions_i.npy``, ``confidence_i.npy``, ``share_i.npy`` (NaN without masks);
    ``names.npy`` (N,) str, each image's file (or ``<split> #<index>``), ``marked.npy`` (N,)
    int8 (1 marked, 0 clean, −1 unknown); ``audit.json`` repeats the record, with how the
    set's folders matched the model's classes (``class_match``).
    """
    image_set = chosen.images
    target = folder / f"audit-{time.time_ns()}"
    target.mkdir(parents=True)
    pixels = (image_set.images[:count].clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5)
    write_npy(target / "images.npy", pixels.astype(np.uint8))
    write_npy(target / "labels.npy", image_set.labels[:count].numpy())
    write_npy(target / "names.npy", np.asarray(chosen.names[:count], dtype=str))
    write_npy(target / "marked.npy", chosen.marked[:count])
    if masks is not None:
        write_npy(target / "masks.npy", masks[:count, 0].numpy() > 0.5)
    models = []
    for index, (entry, result) in enumerate(zip(entries, results, strict=True)):
        write_npy(target / f"relevance_{index}.npy", result.relevance[:count].numpy())
        write_npy(target / f"predictions_{index}.npy", result.predictions[:count].numpy())
        write_npy(target / f"confidence_{index}.npy", result.confidence[:count].numpy())
        write_npy(target / f"share_{index}.npy", result.background_share[:count].numpy())
        models.append({"id": entry.model_id, "label": entry.label, "path": entry.path,
                       "class_names": entry.class_names, "epsilon": entry.epsilon,
                       "same_classes": entry.class_names == list(image_set.class_names)})
    record = {"dir": str(target), "count": count, "class_names": list(image_set.class_names),
              "models": models, "source": request.source, "masks": request.masks if masks
              is not None else "none", "limit": int(request.limit), "seconds": round(seconds, 2),
              "complete": all(r.complete for r in results) and count == len(image_set)
              and len(results) == len(request.model_ids),
              "class_match": None if chosen.match is None else chosen.match.record()}
    write_json(target / "audit.json", record)
    return record


@dataclass
class AuditData:
    """An audit read back from its folder (see :func:`save_audit` for the arrays)."""

    record: dict
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    relevance: list[np.ndarray]
    predictions: list[np.ndarray]
    confidence: list[np.ndarray]
    share: list[np.ndarray]
    names: np.ndarray | None = None
    marked: np.ndarray | None = None

    def correct(self, model: int) -> np.ndarray | None:
        """(N,) bool right/wrong of one model, or None when its classes differ from the set's."""
        if not self.record["models"][model]["same_classes"]:
            return None
        return self.predictions[model] == self.labels

    def image_names(self) -> np.ndarray:
        """(N,) str: each image's file name (``"#<index>"`` for an audit that kept none)."""
        if self.names is None:
            return np.array([f"#{i}" for i in range(len(self.labels))])
        return self.names

    def marks(self) -> np.ndarray:
        """(N,) int8: 1 carries the planted mark, 0 clean, −1 unknown."""
        return (np.full(len(self.labels), -1, np.int8) if self.marked is None
                else self.marked)


def read_audit(record: dict | None) -> AuditData:
    """Load an audit record's arrays.

    Raises:
        InputError: no audit yet, or its files are gone (the session ended).
    """
    if not record or not record.get("dir"):
        raise InputError("Run an audit first.")
    if record.get("streamed"):
        from explorer.handlers.audit_stream import read_streamed  # it imports this module

        return read_streamed(record)  # type: ignore[return-value]  # the views take either
    folder = Path(record["dir"])
    try:
        arrays = {name: [np.load(folder / f"{name}_{i}.npy")
                         for i in range(len(record["models"]))]
                  for name in ("relevance", "predictions", "confidence", "share")}
        optional = {name: np.load(folder / f"{name}.npy") if (folder / f"{name}.npy").exists()
                    else None for name in ("masks", "names", "marked")}
        return AuditData(record, np.load(folder / "images.npy"), np.load(folder / "labels.npy"),
                         optional.pop("masks"), **arrays, **optional)
    except OSError as error:
        raise InputError("This audit's files are gone; run the audit again.") from error
