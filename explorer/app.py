"""``build_demo()``: the ISNet Explorer as a ``gr.Blocks``, composed from one builder per tab.

Nothing happens at import time. Models are loaded when :func:`build_demo` runs: the ones given
(tests inject tiny models), else ``--checkpoint`` files, else the bundled checkpoints, else
untrained demo models with a visible notice. They all run on one device (``app.py --device``),
which the :class:`explorer.state.AppContext` carries to every handler.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer import api, catalog
from explorer.components import session_of
from explorer.entries import ModelEntry, plain_metadata
from explorer.handlers.explain import LRPOverrides, engine_explain, explain_cached
from explorer.limits import Limits
from explorer.media.budget import DecodeBudget, guard_large_files
from explorer.media.editor import EditorInput
from explorer.media.tensors import model_input, resize_mode
from explorer.memory import release_after
from explorer.queues import limit_long_jobs
from explorer.sessions import WORK_PREFIX, sweep_leftovers
from explorer.state import AppContext
from explorer.store import ModelStore
from explorer.tabs import arena as arena_tab
from explorer.tabs import audit as audit_tab
from explorer.tabs import bias as bias_tab
from explorer.tabs import explain as explain_tab
from explorer.tabs import export as export_tab
from explorer.tabs import models as models_tab
from explorer.tabs import train as train_tab
from isnet.devices import choose_device
from isnet.io.leftovers import sweep_partial_files

logger = logging.getLogger(__name__)

TITLE = "ISNet Explorer"
INTRO = ("Look at an image through two models' eyes. **ISNet** (Bassi et al., *Nature "
         "Communications* 15, 291, 2024) trains a classifier with a loss on its LRP heatmaps "
         "so that relevance stays on the object; the **standard** model may learn background "
         "shortcuts instead. Red = evidence for the class, blue = against; both heatmaps share "
         "one colour scale.")


def temp_root() -> Path:
    """Gradio's temp folder (``GRADIO_TEMP_DIR``, else ``<system temp>/gradio``), created."""
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    root.mkdir(parents=True, exist_ok=True)
    return root


def default_work_dir(leftover_age_s: float = 600.0) -> Path:
    """A fresh per-process folder ``isnet-explorer-<pid>-<random>`` for fine-tuned checkpoints
    and unpacked uploads, inside Gradio's temp folder (so Gradio may serve files from it for
    download). Work folders of earlier processes that are no longer running, and partial files
    of interrupted saves, are swept first (:func:`explorer.sessions.sweep_leftovers`)."""
    root = temp_root()
    sweep_leftovers(root, older_than_s=leftover_age_s)
    return Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=root))


def _entries(models: Mapping[str, Any] | Sequence[ModelEntry]) -> list[ModelEntry]:
    """Accept ModelEntry objects, or {label: (model, metadata)} with metadata holding
    ``class_names``, ``input_size`` and optionally ``config.method`` (the training method) or
    ``trained_as`` ("isnet" / "standard")."""
    if isinstance(models, Mapping):
        entries = []
        for index, (label, (model, metadata)) in enumerate(models.items()):
            model_id = ("standard", "isnet")[index] if index < 2 else f"model-{index}"
            entries.append(ModelEntry(model_id, label, model.eval(), plain_metadata(metadata)))
        return entries
    return list(models)


def make_context(models: Mapping[str, Any] | Sequence[ModelEntry] | None = None,
                 checkpoints: Sequence[str] | None = None, samples_dir: str | Path | None = None,
                 masks_dir: str | Path | None = None, work_dir: str | Path | None = None,
                 limits: Limits | None = None, arena_dir: str | Path | None = None,
                 device: str | torch.device = "cpu") -> AppContext:
    """Load the models and samples and build the handlers' shared :class:`AppContext`.

    Raises:
        ValueError: fewer than two models, or a ``device`` this machine does not have
            (:func:`isnet.devices.choose_device`).
    """
    store = ModelStore(choose_device(device))  # a missing GPU fails before any model loads
    notice = ""
    if models is not None:
        entries = _entries(models)
    else:
        entries, notice = catalog.default_models(checkpoints)
    if len(entries) < 2:
        raise ValueError("the explorer compares two models; got fewer")
    for entry in entries:
        store.add(entry)
    images = Path(samples_dir) if samples_dir else catalog.ASSETS / "images"
    masks = Path(masks_dir) if masks_dir else images.parent / "masks"
    samples = catalog.find_samples(images, masks, entries[0].class_names)
    limits = limits or Limits()
    if work_dir:  # a chosen folder: partial files and idle sessions of earlier runs go
        folder = Path(work_dir)
        sweep_partial_files(folder, limits.leftover_age_s, recursive=True)
    else:
        folder = default_work_dir(limits.leftover_age_s)
    ctx = AppContext(store, samples, folder, limits=limits, notice=notice,
                     default_pair=(entries[0].model_id, entries[1].model_id),
                     arena_dir=Path(arena_dir) if arena_dir else None)
    ctx.sessions.sweep()
    return ctx


def explain_input(image: np.ndarray, entry: ModelEntry) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, S, S): the tensor Explain gives this model (its resize or
    torchvision's crop, :func:`explorer.media.tensors.resize_mode`, then its normalisation)."""
    return model_input(image, entry.input_size, entry.normalisation, resize_mode(entry.metadata))


def warm_up(ctx: AppContext) -> None:
    """Run both default models once on a blank image (allocators, kernels, lazy imports), so
    the first real Explain is as fast as the later ones; then fill the heatmap cache with both
    default models' maps of every bundled sample (``app.py`` calls it before it serves).

    The samples are what every visitor clicks first. Their maps cost ~0.3 s of CPU per sample
    and answer; cached, an Explain of a sample only draws (~0.03 s), with or without a mask,
    at any opacity. A sample that fails is logged and skipped: it must not stop the start-up.
    """
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 255
    entries = [ctx.store.get(model_id, None) for model_id in ctx.default_pair]
    for entry in entries:  # each model's input as Explain prepares it (crop, normalisation)
        engine_explain(entry, explain_input(image, entry), None)
    for sample in ctx.samples:
        try:
            with Image.open(sample.image_path) as opened:  # as the editor's upload decodes it
                pixels = np.array(opened)
            picture, _ = EditorInput({"background": pixels, "layers": [],
                                      "composite": None}).read()
            for entry in entries:
                explain_cached(ctx, entry, explain_input(picture, entry), None, LRPOverrides())
        except Exception as error:  # noqa: BLE001 — a bad sample must not stop the start-up
            logger.warning("warm-up skipped sample %s: %s", sample.name, error)


def build_demo(models: Mapping[str, Any] | Sequence[ModelEntry] | None = None,
               checkpoints: Sequence[str] | None = None, samples_dir: str | Path | None = None,
               masks_dir: str | Path | None = None, work_dir: str | Path | None = None,
               limits: Limits | None = None, arena_dir: str | Path | None = None,
               device: str | torch.device = "cpu") -> gr.Blocks:
    """Build the explorer.

    Args:
        models: models to compare instead of the bundled ones — ``{label: (model, metadata)}``
            (the first is "standard", the second "isnet") or a list of ``ModelEntry``.
        checkpoints: (standard, ISNet) checkpoint paths, used when ``models`` is None.
        samples_dir / masks_dir: sample images and their masks (default ``assets/``).
        work_dir: where fine-tuned checkpoints go (default: a fresh folder in Gradio's temp dir).
        limits: size limits (upload size, image side, fine-tuning caps).
        arena_dir: the results folder the Arena tab shows first (default
            ``results/arena-h200-full``).
        device: where the models run: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or
            ``"auto"`` (:func:`isnet.devices.choose_device`; ``app.py --device`` passes it).

    Returns:
        The ``gr.Blocks``; launch it with ``max_file_size=ctx.limits.upload_limit`` (app.py does).

    Raises:
        ValueError: a checkpoint that cannot be used, or a device this machine does not have.
    """
    ctx = make_context(models, checkpoints, samples_dir, masks_dir, work_dir, limits, arena_dir,
                       device)
    with gr.Blocks(title=TITLE, delete_cache=(900, 3600)) as demo:
        gr.Markdown(f"## {TITLE}\n{INTRO}")
        if ctx.notice:
            gr.Markdown(ctx.notice, elem_id="notice")
        with gr.Tabs() as tabs:
            with gr.Tab("Explain", id="explain"):
                widgets = explain_tab.build(ctx)
            with gr.Tab("Bias lab", id="bias"):
                bias_tab.build(ctx, widgets)
            with gr.Tab("Audit", id="audit"):
                audit = audit_tab.build(ctx, widgets, tabs)
            with gr.Tab("Fine-tune", id="train"):
                train_tab.build(ctx, widgets)
            with gr.Tab("Models", id="models"):
                models_tab.build(ctx, widgets)
            with gr.Tab("Arena", id="arena") as arena:
                arena_tab.build(ctx, widgets, arena)
        export_tab.build(ctx)
        audit_tab.hand_to_fine_tune(demo, audit)
        api.register(ctx)  # /api/explain, /api/models, /api/audit

        def session_disconnected(request: gr.Request) -> None:
            """Gradio fires unload whenever the heartbeat stream breaks (a network blip, a
            client's read timeout): keep the session's work for a reconnect; the janitor
            removes it after ``Limits.session_ttl_s`` seconds with no activity."""
            ctx.sessions.disconnected(session_of(request))

        demo.unload(session_disconnected)
    limit_long_jobs(demo)  # one fine-tune and one audit per session; never a full queue
    release_after(demo)  # audits, fine-tunes, loads hand their memory back (explorer.memory)
    ctx.sessions.start_thread()
    demo.explorer_context = ctx  # for launchers and tests (limits, notice, device); not handlers
    guard_large_files(demo, DecodeBudget())  # this app's large decodes at once (media.budget)
    return demo
