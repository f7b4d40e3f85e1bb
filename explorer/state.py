"""The app context: the one object handed to every handler (no module-level globals).

* :class:`AppContext` — the model store, the caches, the samples, the per-session view log, the
  session janitor, the Explain micro-batcher and the size limits
  (:class:`explorer.limits.Limits`), built once by :func:`explorer.app.build_demo`.
* :class:`Sample` — a bundled sample image.

The parts live in their own modules: the models in :mod:`explorer.entries` and
:mod:`explorer.store`, the caches in :mod:`explorer.caches`, the log of views in
:mod:`explorer.view_log`. Their public names are importable from here as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from explorer.batching import MicroBatcher
from explorer.caches import HeatmapCache, image_digest
from explorer.entries import SHARED, ModelEntry, plain_metadata, trained_as, training_method
from explorer.errors import InputError
from explorer.limits import Limits
from explorer.sessions import SessionJanitor
from explorer.store import ModelStore
from explorer.view_log import ViewLog

__all__ = ["SHARED", "AppContext", "HeatmapCache", "Limits", "ModelEntry", "ModelStore", "Sample",
           "ViewLog", "image_digest", "plain_metadata", "trained_as", "training_method"]


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
        batcher: gathers Explain requests that arrive together into one LRP call per model
            (:mod:`explorer.batching`; ``MicroBatcher(max_batch=1)``: one call per request).
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
    batcher: MicroBatcher = field(default_factory=MicroBatcher)

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
