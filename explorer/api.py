"""The explorer's Python API: plain functions beside the UI's endpoints, for scripts and notebooks.

The UI's endpoints (``/explain``, ``/audit``, …) are its wiring: editor dicts, Markdown numbers,
positional outputs. These take files and short model ids (``"isnet"``, ``"standard"``, a
fine-tuned ``"tuned-…"``; :func:`models` lists them) and give plain JSON and ``.npy`` files:

* :func:`explain` — both models' probabilities, background shares, LRP conservation (Σ R against
  the explained score), the settings used and the heatmaps as ``.npy`` files;
* :func:`models` — the loaded models and their cards;
* :func:`audit` (:mod:`explorer.api_audit`) — a per-image CSV and a JSON summary of a set.

In Python, ``from explorer import api; api.explain("photo.png")`` runs on the bundled models (a
context made once, :func:`default_context`); pass ``ctx=`` for another. A launched app serves the
same functions as ``/api/explain``, ``/api/models`` and ``/api/audit`` (:func:`register`), so
``gradio_client`` gets the JSON and downloads the files::

    client.predict(handle_file("photo.png"), api_name="/api/explain")
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio import FileData

import isnet
from explorer.components import session_of
from explorer.errors import InputError, guarded
from explorer.handlers.explain import (
    PREDICTED,
    SELECTIVE,
    LRPOverrides,
    explain_cached,
    input_rule_name,
    target_index,
)
from explorer.handlers.export import models_of
from explorer.handlers.lrp_modes import resolve
from explorer.handlers.models import model_card
from explorer.media.decode import decode_image, decode_mask
from explorer.media.tensors import mask_tensor, model_input
from explorer.state import AppContext
from isnet.io.export import file_sha256, write_json, write_npy

INPUT_RULES = {None: None, "as trained": None, "zb": True, "epsilon": False}
"""``input_rule`` values: each model's training rule, z^B or the ε-rule at the input layer."""
HEATMAP_AXES = ["channel (the input's R, G, B)", "y", "x"]
"""The axes of each heatmap file: relevance per input channel and pixel, at the model's input
size (sum over the channel axis for one map per pixel)."""

_default: AppContext | None = None


def default_context() -> AppContext:
    """The context of the Python API outside a launched app: the bundled models and samples,
    made on first use (:func:`explorer.app.make_context`)."""
    global _default
    if _default is None:
        from explorer.app import make_context  # the app module builds the UI; only its loader

        _default = make_context()
    return _default


def _path(source: Any) -> str | None:
    """A file path from a path, or from a ``FileData`` dict (what ``gradio_client`` sends)."""
    if source is None or isinstance(source, (str, Path)):
        return None if source in (None, "") else str(source)
    if isinstance(source, dict) and source.get("path"):
        return str(source["path"])
    if isinstance(source, FileData):
        return source.path
    raise InputError(f"Expected a file path, got {type(source).__name__}.")


def file_record(source: Any, name: str | None = None) -> dict[str, Any] | None:
    """File name and SHA-256 of an input file (None for none; an array has no file)."""
    if source is None:
        return None
    if isinstance(source, np.ndarray):
        return {"file": None, "sha256": None, "shape": list(source.shape)}
    path = _path(source)
    original = source.get("orig_name") if isinstance(source, dict) else None
    return {"file": name or original or Path(path).name, "sha256": file_sha256(path)}


def output_folder(ctx: AppContext, session: str | None, kind: str) -> Path:
    """A fresh folder for one call's files, in the session's folder (removed with it)."""
    folder = ctx.session_dir(session) / f"api-{kind}-{time.time_ns()}"
    folder.mkdir(parents=True)
    return folder


def explain(image: Any, mask: Any = None, left: str = "isnet", right: str = "standard",
            target: str | None = None, epsilon: float | None = None,
            input_rule: str | None = None, *, ctx: AppContext | None = None,
            session: str | None = None, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Explain one image with two models (see the module docstring).

    Args:
        image: an image file (PNG, JPEG, …) or an (H, W[, 3]) array.
        mask: its foreground mask (white = object; file or array), or None (no shares).
        left, right: model ids.
        target: None (each model's predicted class), ``"selective"`` (the log-odds of the least
            likely class) or a class name.
        epsilon: ε of the LRP ε-rule (None: each model's training value), 0 … 100.
        input_rule: None or ``"as trained"``, ``"zb"`` or ``"epsilon"``.
        out_dir: where the ``.npy`` files go (default: a fresh folder of the session).

    Returns:
        JSON-ready: ``models`` (``left``/``right``: id, label, probabilities per class,
        predicted and explained class, background share, conservation, settings, heatmap file),
        ``image`` and ``mask`` (file name, SHA-256), ``heatmap_axes``, ``files``.

    Raises:
        InputError: unknown model, class or input rule, ε out of range, unusable files.
    """
    ctx = ctx or default_context()
    if input_rule not in INPUT_RULES:
        raise InputError(f"input_rule must be one of {[k for k in INPUT_RULES if k]}, "
                         f"not {input_rule!r}.")
    if epsilon is not None and not 0 <= float(epsilon) <= 100:
        raise InputError("ε must lie between 0 and 100 (the training value is usually 0.01).")
    pixels = decode_image(image if isinstance(image, np.ndarray) else _path(image),
                          max_side=ctx.limits.max_side).image
    foreground = None
    if mask is not None:
        foreground = decode_mask(mask if isinstance(mask, np.ndarray) else _path(mask),
                                 pixels.shape[:2])
    usable = foreground if foreground is not None and foreground.any() \
        and not foreground.all() else None
    overrides = LRPOverrides(None if epsilon is None else float(epsilon),
                             INPUT_RULES[input_rule])
    chosen = {"selective": SELECTIVE, "predicted": PREDICTED}.get(target or "", target)
    folder = Path(out_dir) if out_dir else output_folder(ctx, session, "explain")
    folder.mkdir(parents=True, exist_ok=True)
    sides = {}
    for side, model_id in (("left", left), ("right", right)):
        entry = ctx.store.get(model_id, session)
        x = model_input(pixels, entry.input_size, entry.normalisation)  # (1, 3, S, S)
        answer = explain_cached(ctx, entry, x, target_index(entry, chosen), overrides)
        heatmap = answer.heatmap.float().cpu().numpy()  # (C, S, S)
        share = None
        if usable is not None:
            share = float(isnet.background_share(
                answer.heatmap[None, None], mask_tensor(usable, entry.input_size).double())[0])
        path = write_npy(folder / f"{side}-{entry.model_id}-heatmap.npy", heatmap,
                         overwrite=True)
        config = overrides.config(entry)
        probabilities = answer.probabilities.tolist()
        sides[side] = {
            "id": entry.model_id, "label": entry.label,
            "probabilities": dict(zip(entry.class_names, probabilities, strict=True)),
            "predicted": entry.class_names[int(np.argmax(probabilities))],
            "explained": entry.class_names[answer.explained], "background_share": share,
            "conservation": None if answer.conservation is None else
            answer.conservation.as_dict(),
            "settings": {"epsilon": float(config.epsilon),
                         "input_rule": input_rule_name(entry, config),
                         "lrp_mode": resolve(entry, None), "target": target or "predicted",
                         "input_size": entry.input_size},
            "heatmap": str(path), "heatmap_shape": list(heatmap.shape)}
    result = {"models": sides, "image": file_record(image), "mask": file_record(mask),
              "mask_used": usable is not None, "heatmap_axes": HEATMAP_AXES,
              "files": [sides["left"]["heatmap"], sides["right"]["heatmap"]]}
    write_json(folder / "explain.json", result, overwrite=True)
    return result


def models(*, ctx: AppContext | None = None, session: str | None = None) -> list[dict[str, Any]]:
    """The models this session may use: id, label, family, training method, classes, input
    size, ε, preprocessing, file, and the Models tab's card (Markdown)."""
    ctx = ctx or default_context()
    entries = ctx.store.visible(session)
    return [{**record, "file": Path(record["file"]).name if record.get("file") else None,
             "classes": list(entry.class_names), "card": model_card(entry)}
            for entry, record in zip(entries, models_of(entries), strict=True)]


def register(ctx: AppContext) -> None:
    """Serve :func:`explain`, :func:`models` and :func:`explorer.api_audit.audit` as
    ``/api/explain``, ``/api/models`` and ``/api/audit`` (call inside the app's ``gr.Blocks``)."""
    from explorer import api_audit

    @guarded
    def api_explain(image: FileData, mask: FileData | None = None, left: str = "isnet",
                    right: str = "standard", target: str | None = None,
                    epsilon: float | None = None, input_rule: str | None = None,
                    request: gr.Request = None) -> tuple[dict, list[FileData]]:
        """Explain an image with two models: JSON (probabilities, background shares,
        conservation, settings, file SHA-256s) and the two heatmaps as .npy files."""
        result = explain(image, mask, left, right, target, epsilon, input_rule, ctx=ctx,
                         session=session_of(request))
        return result, [FileData(path=path, orig_name=Path(path).name)
                        for path in result["files"]]

    @guarded
    def api_models(request: gr.Request = None) -> list[dict]:
        """The models this session may use, with their ids (for the other calls) and cards."""
        return models(ctx=ctx, session=session_of(request))

    @guarded
    def api_audit_call(source: FileData | str = "biased", models: list[str] | str | None = None,
                       masks: str = "set", limit: int = 200,
                       request: gr.Request = None) -> tuple[dict, FileData]:
        """Audit a bundled split (biased, unbiased, confounding, mixed) or an uploaded zip with
        one or two models: a JSON summary and the per-image CSV."""
        summary = api_audit.audit(source, models, masks, limit, ctx=ctx,
                                  session=session_of(request))
        return summary, FileData(path=summary["csv"], orig_name=Path(summary["csv"]).name)

    # 8 explains may run together so that their LRP calls batch (ctx.batcher); its lanes bound
    # the LRP work itself
    gr.api(api_explain, api_name="api/explain", concurrency_id="explain", concurrency_limit=8)
    gr.api(api_models, api_name="api/models", queue=False)
    gr.api(api_audit_call, api_name="api/audit", concurrency_id="audit", concurrency_limit=1)
