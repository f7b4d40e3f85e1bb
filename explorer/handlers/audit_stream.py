"""The Audit tab's streamed path: a folder on this machine, of any size, audited from disk.

:func:`run_streamed` opens the folder with :func:`isnet.data.dataset_splits.open_evaluation`
(any layout of :mod:`isnet.data.layouts`; masks optional) and audits it with
:func:`isnet.analysis.stream_audit.audit_stream`, one model after the other, on the explorer's
device; the engine runs in a thread and its per-batch progress comes back as
:class:`~explorer.handlers.audit.AuditUpdate` objects, so Stop and progress work as for an upload.
No image stays in memory: per image only its prediction, confidence, background share and a
16 px normalised heatmap are kept, plus the full picture and heatmap of the :data:`KEEP_TOP`
most background-reliant images of each model. They are written as ``.npy`` files into an
``audit-…`` folder of the session with the folder's file list, and :func:`read_streamed` reads
them back as a :class:`StreamedData`, which the views in :mod:`explorer.handlers.audit_views`
use like an in-memory audit: an image that was not kept is re-read from the folder, by its
path, when it is shown (:meth:`StreamedData.image`), with its 16 px heatmap over it.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

import isnet
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers.audit import AuditRequest, AuditUpdate, batch_size
from explorer.handlers.lrp_modes import lrp_config
from explorer.state import AppContext
from isnet.analysis.audit import lrp_explainer
from isnet.analysis.stream_audit import StreamAudit, audit_stream
from isnet.data.catalogue import Catalogue
from isnet.data.dataset_splits import open_evaluation
from isnet.data.folders import save_image_folder
from isnet.data.layouts.class_matching import match_classes, read_mapping
from isnet.data.streaming import Skipped, StreamingDataset
from isnet.data.transforms import Preprocessing, preprocessing_of
from isnet.devices import device_label
from isnet.io.export import write_json, write_npy

KEEP_TOP = 24
"""Full pictures and heatmaps kept per model: the gallery's most background-reliant images."""
MAP_SIZE = 16
SPRAY_LIMIT = 500
"""Most heatmaps one strategy search clusters (a seeded sample of a larger class)."""
FINE_TUNE_LIMIT = 2000
"""Most images a fine-tuning set from a streamed audit takes (the most reliant first)."""


def stream_workers(device: torch.device) -> int:
    """Decoding processes: none on the CPU (the explanations use its cores), a few beside an
    accelerator."""
    return 0 if device.type == "cpu" else 4


def _preprocessing(entry: ModelEntry) -> Preprocessing:
    """The model's input size and normalisation, as the rest of the explorer reads them, and
    its resize (:func:`isnet.data.transforms.preprocessing_of`: torchvision's resize-256 and
    centre-crop-224 for ImageNet weights, what a run recorded, else the squeeze), as Explain
    and ``python -m isnet.audit`` prepare its images."""
    norm = entry.normalisation
    return Preprocessing(size=entry.input_size, mean=tuple(norm[0]) if norm else None,
                         std=tuple(norm[1]) if norm else None,
                         resize=preprocessing_of(dict(entry.metadata)).resize)


def open_folder(folder: str, entry: ModelEntry, masks: str
                ) -> tuple[Catalogue, list[str], list[str]]:
    """The folder's files in the first model's classes (or, when it has none of them, the
    folder's own), its listing problems and notices. ``masks="none"`` drops the mask files.

    Raises:
        InputError: no such folder, or nothing usable in it.
    """
    source = Path(folder or "").expanduser()
    if not folder or not source.exists():
        raise InputError(f"No folder {folder!r} on this machine.")
    notices = []
    try:
        dataset, problems = open_evaluation(source, _preprocessing(entry), entry.class_names)
    except ValueError:
        try:
            dataset, problems = open_evaluation(source, _preprocessing(entry))
        except ValueError as error:
            raise InputError(f"Cannot use this folder: {error}") from error
    catalogue = dataset.catalogue
    if catalogue.layout == "class-folders" and catalogue.class_names == entry.class_names:
        folders = sorted({str(name).split("/")[0] for name in catalogue.images}
                         | {line.split("/")[0] for line in problems
                            if "is not one of the model's classes" in line})
        match = match_classes(folders, entry.class_names, read_mapping(source))
        if any(folder != name for folder, name in match.matched.items()) or match.unmatched:
            notices += match.lines()  # which folder became which class, which did not
    if masks == "none":
        catalogue = replace(catalogue, masks=np.full(len(catalogue), "", dtype=str))
    elif catalogue.masked < len(catalogue):
        notices.append(f"{len(catalogue) - catalogue.masked} of {len(catalogue)} images have no "
                       "mask file: they are audited without a background share.")
    if problems:
        notices.append(f"{len(problems)} file(s) left out while listing, e.g. "
                       f"{'; '.join(problems[:3])}.")
    return catalogue, problems, notices


def run_streamed(ctx: AppContext, session: str | None, request: AuditRequest,
                 entries: list[ModelEntry], stop: threading.Event) -> Iterator[AuditUpdate]:
    """Audit a local folder with every model, streamed (see the module docstring); yields
    progress, the last update carries the record (a two-model audit's first model comes
    early, as an interim record)."""
    start = time.perf_counter()
    catalogue, _, notices = open_folder(request.folder, entries[0], request.masks)
    for entry in entries:
        if entry.class_names != list(catalogue.class_names):
            notices.append(f"{entry.label} knows other classes than the set ("
                           f"{', '.join(entry.class_names[:3])}…): no accuracy; ranked by share.")
    count = len(catalogue)
    yield AuditUpdate(0.0, f"Streaming {count} images from the folder with {len(entries)} "
                      f"model(s) on {device_label(entries[0].device)}…", notices=notices)
    audits: list[StreamAudit] = []
    interim = None
    for number, entry in enumerate(entries):
        if stop.is_set():
            break
        with closing(_audit_in_thread(entry, catalogue, request, stop)) as steps:
            for done, audit in steps:  # closing it (the page went away) stops the thread
                if audit is None:
                    yield AuditUpdate((number * count + done) / (count * len(entries)),
                                      f"{entry.label}: {done}/{count} images "
                                      f"({time.perf_counter() - start:.1f} s)")
                else:
                    audits.append(audit)
        if number == 0 and len(entries) == 2 and audits[0].complete and len(audits[0]):
            interim = save_streamed(ctx.session_dir(session), entries[:1], catalogue, audits,
                                    request, time.perf_counter() - start, False)
            yield AuditUpdate(0.5, f"{entry.label}: done; its results are below; auditing "
                              f"{entries[1].label}…", interim, interim=True)
    audits = audits[:1] + [a for a in audits[1:] if len(a)]
    if not audits or len(audits[0]) == 0:
        yield AuditUpdate(1.0, "Stopped before the first images: nothing to show.")
        return
    seconds = time.perf_counter() - start
    complete = all(a.complete for a in audits) and len(audits) == len(entries)
    record = save_streamed(ctx.session_dir(session), entries[:len(audits)], catalogue, audits,
                           request, seconds, complete)
    if interim is not None:
        shutil.rmtree(interim["dir"], ignore_errors=True)
    skipped = sorted({name for a in audits for name in a.skipped})
    if skipped:
        reasons = {name: why for a in audits for name, why in a.skipped.items()}
        examples = "; ".join(f"{name}: {reasons[name]}" for name in skipped[:3])
        notices = notices + [f"{len(skipped)} file(s) could not be read, e.g. {examples}."]
    state = "Done" if complete else "Stopped early"
    yield AuditUpdate(1.0, f"{state}: {record['count']} images × {len(audits)} model(s) in "
                      f"{seconds:.1f} s on {device_label(entries[0].device)}, streamed from "
                      "disk.", record, notices)


def _audit_in_thread(entry: ModelEntry, catalogue: Catalogue, request: AuditRequest,
                     stop: threading.Event
                     ) -> Generator[tuple[int, StreamAudit | None], None, None]:
    """Run :func:`audit_stream` for one model in a thread; yields ``(done, None)`` per batch and
    finally ``(done, audit)``. Closing the generator stops the thread after its batch."""
    events: queue.Queue = queue.Queue()
    halt = threading.Event()
    result: dict = {}
    norm = entry.normalisation
    dataset = StreamingDataset(catalogue, _preprocessing(entry).evaluation())

    def work() -> None:
        try:
            result["audit"] = audit_stream(
                entry.model, dataset, batch_size(request.batch_size, entry.input_size),
                stream_workers(entry.device), lrp_explainer(lrp_config(entry)), MAP_SIZE,
                KEEP_TOP, mean=tuple(norm[0]) if norm else None,
                std=tuple(norm[1]) if norm else None,
                on_progress=lambda done, total: events.put(done),
                should_stop=lambda: stop.is_set() or halt.is_set())
        except BaseException as error:  # handed to the generator, raised there
            result["error"] = error
        finally:
            events.put(None)

    thread = threading.Thread(target=work, name="streamed-audit", daemon=True)
    thread.start()
    try:
        done, finished = 0, False
        while not finished:
            latest = [events.get()]
            while not events.empty():  # only the newest progress is worth a UI update
                latest.append(events.get_nowait())
            finished = latest[-1] is None
            numbers = [d for d in latest if d is not None]
            if numbers:
                done = numbers[-1]
                yield done, None
        thread.join()
        if "error" in result:
            raise result["error"]
        yield done, result["audit"]
    finally:
        halt.set()
        thread.join()


def save_streamed(folder: Path, entries: list[ModelEntry], catalogue: Catalogue,
                  audits: list[StreamAudit], request: AuditRequest, seconds: float,
                  complete: bool) -> dict:
    """Write the audits into a fresh ``audit-…`` folder of ``folder``; return the record.

    Files: the folder's list (``files_images.npy``, ``files_masks.npy``, ``files_names.npy``,
    str), ``entries.npy`` (N,) each audited image's entry in that list, ``labels.npy`` (N,);
    per model ``i``: ``predictions_i``, ``confidence_i``, ``share_i`` (NaN without a mask),
    ``maps_i`` (N, 16, 16) float16, and its kept images: ``top_positions_i`` (k,) positions
    in the N, ``top_pictures_i`` (k, S, S, 3) uint8, ``top_relevance_i`` (k, S, S),
    ``top_masks_i`` (k, S, S) bool. Only images every model audited are kept.
    """
    common = audits[0].indices
    for audit in audits[1:]:
        common = np.intersect1d(common, audit.indices)
    target = folder / f"audit-{time.time_ns()}"
    target.mkdir(parents=True)
    for name in ("images", "masks", "names"):
        write_npy(target / f"files_{name}.npy", np.asarray(getattr(catalogue, name), dtype=str))
    write_npy(target / "entries.npy", common)
    audited = set(common.tolist())
    models = []
    for index, (entry, audit) in enumerate(zip(entries, audits, strict=True)):
        keep = np.isin(audit.indices, common)
        if index == 0:
            write_npy(target / "labels.npy", audit.labels[keep])
        for name, array in (("predictions", audit.predictions), ("confidence", audit.confidence),
                            ("share", audit.background_share), ("maps", audit.maps)):
            write_npy(target / f"{name}_{index}.npy", array[keep])
        top = [t for t in audit.top if t.index in audited]
        size = entry.input_size
        write_npy(target / f"top_positions_{index}.npy",
                  np.searchsorted(common, [t.index for t in top]).astype(np.int64))
        for name, shape, dtype, part in (("pictures", (size, size, 3), np.uint8, "picture"),
                                         ("relevance", (size, size), np.float32, "relevance"),
                                         ("masks", (size, size), bool, "mask")):
            stacked = (np.stack([getattr(t, part) for t in top]) if top
                       else np.zeros((0, *shape), dtype))
            write_npy(target / f"top_{name}_{index}.npy", stacked.astype(dtype))
        models.append({"id": entry.model_id, "label": entry.label, "path": entry.path,
                       "class_names": entry.class_names, "epsilon": entry.epsilon,
                       "same_classes": entry.class_names == list(catalogue.class_names)})
    record = {"dir": str(target), "count": len(common), "class_names": list(catalogue.class_names),
              "models": models, "source": "folder", "masks": request.masks, "limit": 0,
              "seconds": round(seconds, 2), "complete": bool(complete), "streamed": True,
              "root": str(catalogue.root), "layout": catalogue.layout,
              "size": entries[0].input_size, "files": len(catalogue),
              "resize": _preprocessing(entries[0]).resize}
    write_json(target / "audit.json", record)
    return record


@dataclass
class StreamedData:
    """A streamed audit read back (see :func:`save_streamed`); N = images audited.

    Offers what the views read of an in-memory :class:`~explorer.handlers.audit.AuditData`
    (``record``, ``labels``, ``predictions``, ``confidence``, ``share``, :meth:`correct`), and
    instead of every image and full heatmap: ``maps`` (per model, (N, 16, 16), memory-mapped),
    ``top`` (per model, its kept images) and :meth:`image` (any image, re-read from disk).
    """

    record: dict
    labels: np.ndarray
    entries: np.ndarray
    files: dict[str, np.ndarray]
    predictions: list[np.ndarray]
    confidence: list[np.ndarray]
    share: list[np.ndarray]
    maps: list[np.ndarray]
    top: list[dict[str, np.ndarray]]
    streamed: bool = True

    def correct(self, model: int) -> np.ndarray | None:
        """(N,) bool right/wrong of one model, or None when its classes differ from the set's."""
        if not self.record["models"][model]["same_classes"]:
            return None
        return self.predictions[model] == self.labels

    def image_names(self) -> np.ndarray:
        """(N,) str: each audited image's file, as the folder's listing names it."""
        return np.asarray(self.files["names"])[self.entries]

    def marks(self) -> np.ndarray:
        """(N,) int8, all −1: whether a file carries a planted mark is not known."""
        return np.full(len(self.labels), -1, np.int8)

    def kept(self, index: int, model: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(picture, full heatmap, mask) when ``model`` kept image ``index``, else None."""
        found = np.flatnonzero(self.top[model]["positions"] == index)
        if not len(found):
            return None
        row = int(found[0])
        return (self.top[model]["pictures"][row], self.top[model]["relevance"][row],
                self.top[model]["masks"][row])

    def has_mask(self, indices: np.ndarray) -> np.ndarray:
        """(len(indices),) bool: whether these images have a mask file (and masks were used)."""
        if self.record["masks"] == "none":
            return np.zeros(len(indices), bool)
        return self.files["masks"][self.entries[indices]] != ""

    def images(self, indices: list[int] | np.ndarray, size: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Images ``indices`` re-read from the folder at ``size`` (default: the first model's
        input size), raw pixels: ((B, 3, S, S) in [0, 1], (B, 1, S, S) masks, (B,) has mask).

        Raises:
            InputError: a file that can no longer be read (changed or removed since).
        """
        files = self.files
        catalogue = Catalogue(Path(self.record["root"]), self.record["layout"], files["images"],
                              files["masks"] if self.record["masks"] != "none"
                              else np.full(len(files["images"]), "", dtype=str),
                              np.zeros(len(files["images"]), np.int64),
                              list(self.record["class_names"]),
                              np.full(len(files["images"]), "", dtype=str), files["names"])
        dataset = StreamingDataset(catalogue, Preprocessing(  # cut as the first model saw it
            size=int(size or self.record["size"]),
            resize=self.record.get("resize", "squeeze")).evaluation())
        pictures, masks, has_mask = [], [], []
        for index in indices:
            item = dataset[int(self.entries[int(index)])]
            if isinstance(item, Skipped):
                raise InputError(f"{item.name} can no longer be read: {item.reason}. Run the "
                                 "audit again.")
            pictures.append(item[0])
            masks.append(item[1])
            has_mask.append(bool(item[4]))
        return torch.stack(pictures), torch.stack(masks), np.asarray(has_mask)

    def image(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """One image as the first model saw it: (S, S, 3) uint8 and its (S, S) bool mask (None
        without one) — kept by the audit, or re-read from the folder."""
        kept = self.kept(index, 0)
        if kept is not None:
            return kept[0], kept[2] if self.has_mask(np.array([index]))[0] else None
        pictures, masks, has_mask = self.images([index])
        picture = (pictures[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        return picture, masks[0, 0].numpy() > 0.5 if has_mask[0] else None


def read_streamed(record: dict) -> StreamedData:
    """Load a streamed audit's arrays (the large ones memory-mapped).

    Raises:
        InputError: its files are gone (the session ended).
    """
    folder = Path(record["dir"])
    count = len(record["models"])

    def load(name: str, mmap: bool = False) -> np.ndarray:
        return np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None)

    try:
        files = {name: load(f"files_{name}", True) for name in ("images", "masks", "names")}
        per_model = {name: [load(f"{name}_{i}", name == "maps") for i in range(count)]
                     for name in ("predictions", "confidence", "share", "maps")}
        top = [{name: load(f"top_{name}_{i}") for name in ("positions", "pictures", "relevance",
                                                           "masks")} for i in range(count)]
        return StreamedData(record, load("labels"), load("entries"), files,
                            per_model["predictions"], per_model["confidence"],
                            per_model["share"], per_model["maps"], top)
    except OSError as error:
        raise InputError("This audit's files are gone; run the audit again.") from error


def write_fine_tune_tree(data: StreamedData, indices: np.ndarray, tree: Path,
                         chunk: int = 64) -> list[Path]:
    """Write images ``indices`` (re-read from the folder with their masks, at the first model's
    input size) into ``tree`` in the folder layout, ``chunk`` images at a time (one
    ``part-<k>/`` subfolder each); returns the image paths written."""
    written = []
    for part, first in enumerate(range(0, len(indices), chunk)):
        chosen = indices[first:first + chunk]
        pictures, masks, _ = data.images(chosen)
        chunk_set = isnet.ImageSet(pictures, masks, torch.from_numpy(data.labels[chosen]).long(),
                                   list(data.record["class_names"]))
        written += save_image_folder(chunk_set, tree / f"part-{part}")
    return written
