"""What outlives one event: the process-level model store, the heatmap cache and the app context.

* :class:`ModelEntry` — one model the explorer can compare: a read-only ``eval()`` network of any
  registered family plus the metadata the UI needs (class names, input size, training method,
  training facts).
* :class:`ModelStore` — every model of the process, keyed by id, each moved to the one device the
  explorer runs on (``app.py --device``). Bundled models are shared by all sessions; a model a
  user loads or fine-tunes belongs to that user's session only (its ``owner`` is the session
  key) and is dropped when the session idles past its time to live. Nothing here is in
  ``gr.State``: a ``gr.State`` value is deep-copied per session, and models are too big for it.
* :class:`HeatmapCache` — a small LRU of explanation results (and of whole Explain answers), so
  moving the opacity slider or switching tabs reruns nothing.
* :class:`AppContext` — the one object handed to every handler (no module-level globals);
  its size limits are :class:`explorer.limits.Limits`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import isnet
from explorer.errors import InputError
from explorer.limits import Limits
from explorer.sessions import SessionJanitor
from isnet.models import family_of
from isnet.training.config import HEATMAP_LOSS_METHODS

SHARED = None  # owner of bundled models


@dataclass
class ModelEntry:
    """A model the explorer can use, and what the UI shows about it.

    Attributes:
        model_id: unique key in the store (also the dropdown value).
        label: human-readable name (shown in dropdowns and cards).
        model: an LRP-ready network (any registered family) in ``eval()`` mode, on the store's
            device once added; never trained in place.
        metadata: checkpoint metadata (``class_names``, ``input_size``, ``config``, ``data``,
            ``metrics``, ``provenance``, …) — see :mod:`isnet.io.checkpoints`.
        owner: the session hash that may use it, or None for everyone.
        path: the checkpoint file it came from or was saved to, if any.
    """

    model_id: str
    label: str
    model: Any
    metadata: dict
    owner: str | None = SHARED
    path: str | None = None

    @property
    def class_names(self) -> list[str]:
        """One name per logit (falls back to "0", "1", …)."""
        names = self.metadata.get("class_names")
        return list(names) if names else [str(i) for i in range(self.model.num_classes)]

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (inputs follow it; results come back to the CPU)."""
        return next(self.model.parameters(), torch.empty(0)).device

    @property
    def input_size(self) -> int:
        """Side length in pixels the model expects (64 when the checkpoint does not say)."""
        return int(self.metadata.get("input_size") or 64)

    @property
    def method(self) -> str | None:
        """The training method (``TrainConfig.method``), or None when not recorded."""
        return training_method(self.metadata)

    @property
    def trained_as(self) -> str:
        """"isnet", "standard", "comparison" or "unknown" (see :func:`trained_as`)."""
        return trained_as(self.metadata)

    @property
    def family(self) -> str:
        """The model family ("densenet", …) from the checkpoint, else from the model name."""
        if self.metadata.get("family"):
            return str(self.metadata["family"])
        try:
            return family_of(str(self.metadata.get("model_name")))
        except ValueError:
            return "unknown"

    @property
    def normalisation(self) -> tuple[list[float], list[float]] | None:
        """(mean, std) per channel the model's inputs are normalised with, or None for raw
        [0, 1] pixels."""
        norm = self.metadata.get("normalisation") or {}
        mean, std = norm.get("mean"), norm.get("std")
        if mean is None or std is None:
            return None
        return [float(m) for m in mean], [float(s) for s in std]

    @property
    def bounds(self) -> tuple[Any, Any]:
        """(low, high) of the z^B rule: floats, or one value per channel of the normalised
        input ((0 − mean) / std, (1 − mean) / std)."""
        low, high = self.metadata.get("bounds") or (0.0, 1.0)
        return low, high

    @property
    def lrp_mode(self) -> str:
        """"corrected" or "authors" (the LRP block as published): the model's default."""
        return "authors" if self.metadata.get("lrp_mode") == "authors" else "corrected"

    @property
    def epsilon(self) -> float:
        """ε of the LRP ε-rule the model was trained with (the LRP default when not recorded)."""
        value = (self.metadata.get("config") or {}).get("epsilon")
        return float(value) if value is not None else isnet.LRPConfig().epsilon


def training_method(metadata: Mapping[str, Any]) -> str | None:
    """The training method recorded in checkpoint metadata (``config.method``), or None.

    Version 0.1 checkpoints call it ``config.variant`` (as :meth:`isnet.TrainConfig.from_dict`
    reads it too).
    """
    config = metadata.get("config") or {}
    for key in ("method", "variant"):
        if config.get(key):
            return str(config[key])
    return None


def trained_as(metadata: Mapping[str, Any]) -> str:
    """"isnet", "standard" or "comparison": how a model was trained, from its metadata.

    An explicit ``trained_as`` (e.g. the untrained demo pair) wins; then the training method:
    "standard", an ISNet (the heatmap loss on LRP or on gradient×input) or another arena method
    ("comparison"); then, for foreign files, whether "isnet" appears in their provenance.
    """
    explicit = metadata.get("trained_as")
    if explicit in ("isnet", "standard"):
        return str(explicit)
    method = training_method(metadata)
    if method:
        if method == "standard":
            return "standard"
        return "isnet" if method in HEATMAP_LOSS_METHODS else "comparison"
    sections = [metadata.get(k) for k in ("config", "provenance") if metadata.get(k)]
    if not sections:
        return "unknown"
    return "isnet" if "isnet" in json.dumps(sections, default=str).lower() else "standard"


class ModelStore:
    """Thread-safe map of model id → :class:`ModelEntry`, with per-session visibility.

    Args:
        device: where every added model runs (:func:`isnet.devices.choose_device` resolves it).
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._entries: OrderedDict[str, ModelEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = 0
        self.on_use: Callable[[str | None], None] | None = None
        """Called with the session whenever it uses one of its own models (keeps it alive)."""

    def add(self, entry: ModelEntry) -> ModelEntry:
        """Move ``entry``'s model to the store's device, register ``entry`` (replacing one with
        the same id) and return it."""
        entry.model = entry.model.to(self.device)
        with self._lock:
            self._entries[entry.model_id] = entry
        if entry.owner is not SHARED and self.on_use is not None:
            self.on_use(entry.owner)  # a session's new model keeps it alive, even unused
        return entry

    def owner_of(self, model_id: str | None) -> str | None:
        """The session that owns a model (None: shared, or no such model)."""
        with self._lock:
            entry = self._entries.get(model_id or "")
        return entry.owner if entry is not None else None

    def new_id(self, prefix: str) -> str:
        """A fresh, unused model id starting with ``prefix``."""
        with self._lock:
            self._counter += 1
            return f"{prefix}-{self._counter}"

    def get(self, model_id: str | None, session: str | None) -> ModelEntry:
        """The entry ``model_id`` if this session may use it.

        Raises:
            InputError: unknown id, or a model of another session.
        """
        with self._lock:
            entry = self._entries.get(model_id or "")
        if entry is None or (entry.owner is not SHARED and entry.owner != session):
            raise InputError(f"No model called {model_id!r} in this session; pick one from the "
                             f"list (fine-tuned and loaded models last only for your session).")
        if entry.owner is not SHARED and self.on_use is not None:
            self.on_use(session)
        return entry

    def visible(self, session: str | None) -> list[ModelEntry]:
        """Entries this session may use: shared ones first, then its own, in insertion order."""
        with self._lock:
            entries = list(self._entries.values())
        return [e for e in entries if e.owner is SHARED] + \
               [e for e in entries if e.owner is not SHARED and e.owner == session]

    def choices(self, session: str | None) -> list[tuple[str, str]]:
        """(label, id) pairs for a dropdown."""
        return [(e.label, e.model_id) for e in self.visible(session)]

    def drop_model(self, model_id: str | None) -> bool:
        """Forget one session-owned model (shared models stay); whether one was dropped."""
        with self._lock:
            entry = self._entries.get(model_id or "")
            if entry is None or entry.owner is SHARED:
                return False
            del self._entries[model_id]
        return True

    def drop_session(self, session: str | None) -> int:
        """Forget every model owned by ``session``; returns how many were dropped."""
        with self._lock:
            doomed = [k for k, e in self._entries.items() if e.owner is not SHARED
                      and e.owner == session]
            for key in doomed:
                del self._entries[key]
        return len(doomed)


def image_digest(*arrays: np.ndarray) -> str:
    """A short content hash of arrays (shape, dtype and bytes), for cache keys."""
    digest = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class HeatmapCache:
    """Thread-safe LRU: explanation results keyed by (model id, image digest, target, LRP
    settings), or whole Explain answers (:func:`explorer.handlers.explain.answer_key`)."""

    def __init__(self, capacity: int = 64) -> None:
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        """The cached value for ``key`` (refreshing its recency), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: tuple, value: Any) -> None:
        """Store ``value``; the least recently used item goes when over capacity."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


class ViewLog:
    """What each session looked at (newest last, at most ``capacity`` per session): small plain
    dicts written by :mod:`explorer.handlers.export` for the export buttons and the report."""

    def __init__(self, capacity: int = 40) -> None:
        self._views: dict[str, list[dict]] = {}
        self._capacity = capacity
        self._lock = threading.Lock()
        self._writers: dict[str, threading.Lock] = {}

    def recording(self, session: str | None) -> threading.Lock:
        """The session's writer lock: hold it while writing a view's files and adding the view,
        so that files shared between views (named by content) are never removed by a
        concurrent event of the same session that drops an older view."""
        with self._lock:
            return self._writers.setdefault(session or "anonymous", threading.Lock())

    def add(self, session: str | None, view: dict) -> list[dict]:
        """Append ``view`` to the session's list; returns the oldest views dropped to stay
        within capacity (their files may be deleted)."""
        with self._lock:
            views = self._views.setdefault(session or "anonymous", [])
            views.append(view)
            dropped = views[:-self._capacity]
            del views[:-self._capacity]
        return dropped

    def of(self, session: str | None) -> list[dict]:
        """The session's views, oldest first (a copy)."""
        with self._lock:
            return list(self._views.get(session or "anonymous", []))

    def drop(self, session: str | None) -> None:
        """Forget a session's views."""
        with self._lock:
            self._views.pop(session or "anonymous", None)
            self._writers.pop(session or "anonymous", None)


@dataclass(frozen=True)
class Sample:
    """A bundled sample: image file, mask file (or None) and true class name (or None)."""

    name: str
    image_path: str
    mask_path: str | None
    label: str | None


@dataclass
class AppContext:
    """Everything the handlers share across events and sessions (built once by build_demo).

    Attributes:
        store: the models (and :attr:`device`, the one device they all run on).
        samples: bundled sample images.
        work_dir: where fine-tuned checkpoints and unpacked uploads go (one folder per session).
        cache: explanation cache (engine results: probabilities and heatmaps per model).
        answers: whole Explain answers (pictures included) per image, mask, models and
            settings; few, as each holds a handful of display-sized pictures.
        limits: size limits.
        notice: a banner for the UI (e.g. "untrained demo models"), empty when all is well.
        default_pair: the two model ids compared by default (standard, ISNet).
        views: what each session looked at (for exports and the session report).
        sessions: removes each session's models and files once it idles past its TTL (made here).
        arena_dir: the arena's results folder shown first (None: ``results/arena-h200-full``).
        bundled_dir: the bundled checkpoints offered in the Models tab (None:
            ``assets/checkpoints``).
    """

    store: ModelStore
    samples: list[Sample]
    work_dir: Path
    cache: HeatmapCache = field(default_factory=HeatmapCache)
    answers: HeatmapCache = field(default_factory=lambda: HeatmapCache(capacity=16))
    limits: Limits = field(default_factory=Limits)
    notice: str = ""
    default_pair: tuple[str, str] = ("", "")
    views: ViewLog = field(default_factory=ViewLog)
    sessions: SessionJanitor | None = None
    arena_dir: Path | None = None
    bundled_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.sessions is None:
            self.sessions = SessionJanitor(self.store, self.work_dir, self.limits.session_ttl_s)
        self.store.on_use, self.sessions.on_forget = self.sessions.touch, self.views.drop

    @property
    def device(self) -> torch.device:
        """The device every model of the store runs on (``app.py --device``)."""
        return self.store.device

    def session_dir(self, session: str | None) -> Path:
        """This session's private folder under ``work_dir`` (created on demand; using it keeps
        the session alive for another ``Limits.session_ttl_s`` seconds)."""
        self.sessions.touch(session)
        folder = self.work_dir / self.sessions.folder_name(session)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def sample(self, name: str) -> Sample:
        """The sample called ``name``.

        Raises:
            InputError: no such sample.
        """
        for sample in self.samples:
            if sample.name == name:
                return sample
        raise InputError(f"No sample called {name!r}.")


def plain_metadata(metadata: Mapping[str, Any] | None) -> dict:
    """A shallow copy of checkpoint metadata with the keys the UI relies on filled in."""
    data = dict(metadata or {})
    data.setdefault("config", {})
    data.setdefault("data", {})
    data.setdefault("metrics", {})
    data.setdefault("provenance", {})
    return data
