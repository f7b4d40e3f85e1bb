"""The process-level model store: every model of the process, keyed by id.

Each model is moved to the one device the explorer runs on (``app.py --device``). Bundled models
are shared by all sessions; a model a user loads or fine-tunes belongs to that user's session only
(its ``owner`` is the session key) and is dropped when the session idles past its time to live.
Nothing here is in ``gr.State``: a ``gr.State`` value is deep-copied per session, and models are
too big for it.

A model loaded from a file that a model in the store came from (a bundled checkpoint loaded
again and again through the raw API) shares that model's weights
(:mod:`explorer.weight_sharing`): the store keeps one copy of each file's tensors, read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import torch

from explorer.entries import SHARED, ModelEntry
from explorer.errors import InputError
from explorer.weight_sharing import file_identity, share_weights
from isnet.compilation import compile_explain


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
        self.compile: str | None = None
        """``torch.compile`` mode of every added model's LRP walk (``app.py --compile``)."""

    def add(self, entry: ModelEntry) -> ModelEntry:
        """Move ``entry``'s model to the store's device, register ``entry`` (replacing one with
        the same id) and return it. A model from the same file as one in the store shares its
        weights (see the module docstring)."""
        entry.model = entry.model.to(self.device)
        self._share_with_same_file(entry)
        if self.compile is not None:
            compile_explain(entry.model, self.compile)
        with self._lock:
            self._entries[entry.model_id] = entry
        if entry.owner is not SHARED and self.on_use is not None:
            self.on_use(entry.owner)  # a session's new model keeps it alive, even unused
        return entry

    def _share_with_same_file(self, entry: ModelEntry) -> bool:
        """Point ``entry``'s weights at those of a stored model from the same file, if any
        holds equal tensors; whether it did."""
        identity = file_identity(entry.path)
        if identity is None:
            return False
        with self._lock:
            others = [e for e in self._entries.values() if e is not entry and e.path]
        return any(file_identity(other.path) == identity
                   and share_weights(entry.model, other.model) for other in others)

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
