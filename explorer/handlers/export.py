"""Export what a view shows, and a report of the whole session.

Each time the Explain, Bias lab, Audit or Arena tab shows a result, :func:`record_view` keeps a
small plain record of it in :attr:`explorer.state.AppContext.views` — its numbers, settings,
models, the pictures shown (as PNG files), a table if the view showed one, and the raw heatmaps
(one ``.npy`` file), all in the session's folder. (The Arena's leaderboard has no heatmaps; its
checkpoints are listed with their hashes.) :func:`export_view` then writes, for the newest view
of a kind:

* ``figure``: a PNG figure of the pictures with captions, the colour scale with tick values and
  the numbers (:func:`explorer.media.audit_plots.view_figure`);
* ``numbers``: a strict JSON file of the numbers and the settings, with every model's file name
  and SHA-256 (:func:`isnet.io.export.file_sha256`);
* ``heatmaps``: the raw relevance maps as ``.npy`` (``numpy.load`` reads them back, no pickles).

:func:`session_report` puts every view of the session into one self-contained HTML file that
opens offline (:func:`isnet.io.export.write_report`). Every file goes through
:mod:`isnet.io.atomic`.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import isnet
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers.lrp_modes import lrp_config
from explorer.handlers.report import report_html
from explorer.media import audit_plots
from explorer.media.stored import stored_npy, stored_png
from explorer.state import AppContext
from isnet.data.transforms import evaluation_record, preprocessing_of
from isnet.io.atomic import write_atomically
from isnet.io.export import file_sha256, plain, write_json, write_npy

VIEW_KINDS = ("explain", "bias", "audit", "strategies", "robustness", "arena", "stress_test",
              "counterfactual", "fine_tune")
"""The views that can be exported (the tab each comes from)."""


@dataclass(frozen=True)
class ExportRequest:
    """What the Export button sends.

    Attributes:
        kind: the view to export, one of :data:`VIEW_KINDS` (its newest record is used).
    """

    kind: str = "explain"


@dataclass
class ExportFiles:
    """The files of one exported view (paths in the session's folder).

    Attributes:
        figure: PNG figure with numbers and colour scale.
        numbers: JSON of the numbers and the settings.
        heatmaps: the raw heatmaps (``.npy``), or None when the view has none.
    """

    figure: str
    numbers: str
    heatmaps: str | None


def _folder(ctx: AppContext, session: str | None) -> Path:
    folder = ctx.session_dir(session) / "views"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def models_of(entries: Sequence[ModelEntry]) -> list[dict]:
    """Label, id, file and training settings of each model (hashes are added on export)."""
    return [{"label": e.label, "id": e.model_id, "file": e.path, "family": e.family,
             "trained_as": e.trained_as, "method": e.method, "epsilon": e.epsilon,
             "seed": e.metadata.get("seed"), "input_size": e.input_size,
             "preprocessing": evaluation_record(preprocessing_of(e.metadata))} for e in entries]


def record_view(ctx: AppContext, session: str | None, kind: str, title: str,
                numbers: Mapping[str, Any], settings: Mapping[str, Any],
                entries: Sequence[ModelEntry], images: Sequence[tuple[str, np.ndarray]],
                heatmaps: np.ndarray | None, scale: float | None = None,
                models: Sequence[Mapping[str, Any]] | None = None,
                table: tuple[Sequence[str], Sequence[Sequence[Any]]] | None = None,
                axes: Sequence[str] | None = None) -> dict:
    """Keep one view of the session: pictures as PNG files, heatmaps as ``.npy``.

    Files are named by their content (:mod:`explorer.media.stored`): recording the same
    pictures again (the same answer shown twice) writes nothing, and views share such files.

    Args:
        kind: one of :data:`VIEW_KINDS`.
        numbers: what the view showed (predictions, shares, …).
        settings: how it was made (LRP settings, explained class, seeds, mask source, …).
        images: (caption, (H, W, 3) uint8) pictures the view showed.
        heatmaps: the raw relevance maps, e.g. (models, S, S) float.
        scale: the shared colour-scale bound of the pictures, if they are heatmaps.
        models: the models as plain records (``label``, ``id``, ``file``, …) instead of
            ``entries`` (for models the session has not loaded, such as the arena's).
        table: (headers, rows) the view showed as a table; the figure draws it.
        axes: what each axis of ``heatmaps`` means (e.g. ``["model: [left, right]", "height",
            "width"]``), written beside the exported ``.npy``.

    Returns:
        The plain view record (also appended to ``ctx.views``).
    """
    stamp = time.time_ns()
    folder = _folder(ctx, session)
    with ctx.views.recording(session):
        pictures = [[caption, stored_png(image, folder)] for caption, image in images]
        heatmap_path = None
        if heatmaps is not None:
            heatmap_path = stored_npy(np.asarray(heatmaps, dtype=np.float32), folder)
        view = {"kind": kind, "title": title, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "stamp": stamp, "numbers": plain(dict(numbers)),
                "settings": plain(dict(settings)),
                "models": [dict(m) for m in models] if models is not None else
                models_of(entries),
                "images": pictures, "heatmaps": heatmap_path,
                "scale": None if scale is None else float(scale),
                "heatmap_axes": None if axes is None else list(axes),
                "table": None if table is None else plain({"headers": list(table[0]),
                                                           "rows": [list(r) for r in table[1]]})}
        dropped = ctx.views.add(session, view)  # views past the log's capacity
        in_use = {path for kept in ctx.views.of(session) for path in _files(kept)}
        for old in dropped:  # their files go, unless a newer view shows the same content
            for path in _files(old) - in_use:
                Path(path).unlink(missing_ok=True)
    return view


def _files(view: Mapping[str, Any]) -> set[str]:
    """The files a view record points to (pictures and heatmaps)."""
    return {path for _, path in view["images"]} | ({view["heatmaps"]} if view["heatmaps"]
                                                     else set())


def latest(ctx: AppContext, session: str | None, kind: str) -> dict:
    """The session's newest view of ``kind``.

    Raises:
        InputError: unknown kind, or nothing of that kind shown yet.
    """
    if kind not in VIEW_KINDS:
        raise InputError(f"Views that can be exported: {', '.join(VIEW_KINDS)} (not {kind!r}).")
    for view in reversed(ctx.views.of(session)):
        if view["kind"] == kind:
            return view
    raise InputError(f"Nothing to export yet: show a result in the {kind} view first.")


def _hashed(models: list[dict]) -> list[dict]:
    """The models with the SHA-256 of their files (None for models without a file)."""
    out = []
    for model in models:
        path = model.get("file")
        digest = file_sha256(path) if path and Path(path).is_file() else None
        out.append({**model, "file": Path(path).name if path else None, "sha256": digest})
    return out


def _picture(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def numbers_record(view: Mapping[str, Any], heatmaps: Mapping[str, Any] | None = None) -> dict:
    """What the JSON export holds: the numbers, the settings, the models with hashes and, when
    exported beside it, the heatmaps' file with its shape and the meaning of each axis."""
    return {"view": view["kind"], "title": view["title"], "time": view["time"],
            "numbers": view["numbers"], "settings": view["settings"],
            **({"table": view["table"]} if view.get("table") else {}),
            "models": _hashed(view["models"]), "colour_scale": view.get("scale"),
            **({"heatmaps": heatmaps} if heatmaps else {}),
            "isnet_version": getattr(isnet, "__version__", None)}


def export_view(ctx: AppContext, session: str | None, request: ExportRequest) -> ExportFiles:
    """Write the figure and the JSON of the newest view of ``request.kind``.

    Raises:
        InputError: nothing of that kind shown yet.
    """
    view = latest(ctx, session, request.kind)
    folder = _folder(ctx, session)
    stem = f"{request.kind}-{view['time'].replace(' ', '-').replace(':', '')}"  # readable
    heatmaps, described = None, None
    if view.get("heatmaps"):
        maps = np.load(view["heatmaps"])
        heatmaps = str(write_npy(folder / f"{stem}-heatmaps.npy", maps, overwrite=True))
        described = {"file": Path(heatmaps).name, "shape": list(maps.shape),
                     "dtype": str(maps.dtype), "axes": view.get("heatmap_axes")
                     or [f"axis {i}" for i in range(maps.ndim)]}
    numbers = write_json(folder / f"{stem}.json", numbers_record(view, described),
                         overwrite=True)
    pictures = [(caption, _picture(path)) for caption, path in view["images"]]
    flat = {**{f"{k}": v for k, v in view["numbers"].items() if not isinstance(v, (list, dict))},
            **_flat_models(view["numbers"])}
    table = view.get("table")
    if table:  # the table carries the per-model numbers
        flat = {k: v for k, v in flat.items() if " · " not in k}
    figure = audit_plots.view_figure(view["title"], pictures, view.get("scale"), flat,
                                     table=(table["headers"], table["rows"]) if table else None)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png = write_atomically(folder / f"{stem}-figure.png", buffer.getvalue(), overwrite=True)
    return ExportFiles(str(png), str(numbers), heatmaps)


def _flat_models(numbers: Mapping[str, Any]) -> dict:
    """Per-model numbers (``numbers["per_model"]``) as ``model · key: value`` lines."""
    flat = {}
    for model, values in (numbers.get("per_model") or {}).items():
        for key, value in (values or {}).items():
            if not isinstance(value, (list, dict)):
                flat[f"{model} · {key}"] = round(value, 4) if isinstance(value, float) else value
    return flat


def session_report(ctx: AppContext, session: str | None) -> str:
    """One offline HTML file with every view of the session: a summary and a table of contents
    at the top, then each view's pictures, tables, numbers and settings, models with hashes
    (:mod:`explorer.handlers.report`).

    Raises:
        InputError: the session has not looked at anything yet.
    """
    views = ctx.views.of(session)
    if not views:
        raise InputError("Nothing to report yet: explain an image, plant a mark or audit a set.")
    sections, models = [], {}
    for view in views:
        hashed = _hashed(view["models"])
        models.update({f"{m['label']} ({m['file'] or 'no file'})": m["sha256"] for m in hashed})
        text = "Models: " + "; ".join(f"{m['label']} ({m['file'] or 'no file'}, sha256 "
                                      f"{(m['sha256'] or '—')[:16]}…)" for m in hashed)
        sections.append((text, [(caption, _picture(path)) for caption, path in view["images"]]))
    path = _folder(ctx, session) / f"session-report-{time.time_ns()}.html"
    page = report_html("ISNet Explorer — session report", views, sections, models)
    return str(write_atomically(path, page.encode("utf-8")))


def record_figure(ctx: AppContext, session: str | None, kind: str, title: str, figure: Any,
                  numbers: Mapping[str, Any], settings: Mapping[str, Any],
                  entries: Sequence[ModelEntry],
                  table: tuple[Sequence[str], Sequence[Sequence[Any]]] | None = None) -> dict:
    """Keep a plot-only view (a stress test's or a counterfactual sweep's curves, a fine-tune's
    losses): the figure as a picture, its numbers and table, for the export and the report."""
    return record_view(ctx, session, kind, title, numbers, settings, entries,
                       [(title, audit_plots.figure_png(figure))], None, table=table)


def explain_numbers(views: Sequence[Any]) -> dict:
    """The numbers of an Explain-like pair of
    :class:`~explorer.handlers.explain_views.ModelView`."""
    return {"per_model": {v.label: {"predicted": v.predicted, "explained_class": v.target,
                                    "background_share": v.share,
                                    "probability": v.probabilities.get(v.predicted),
                                    "colour_scale": v.scale,
                                    "conservation": getattr(v, "conservation", None)}
                          for v in views},
            "probabilities": {v.label: v.probabilities for v in views}}


def pair_heatmaps(views: Sequence[Any]) -> np.ndarray | None:
    """The raw relevance maps of a pair's views as (models, S, S) (None when sizes differ)."""
    maps = [v.relevance for v in views if getattr(v, "relevance", None) is not None]
    if not maps or len({m.shape for m in maps}) != 1:
        return None
    return np.stack(maps)


def lrp_record(configs: Sequence[isnet.LRPConfig]) -> dict[str, list]:
    """The LRP settings each model was explained with, as ``{setting: [one value per model]}``
    (ε, input rule, z^B bounds and bias convention, the authors' block or not)."""
    fields = ("epsilon", "zb", "low", "high", "zb_bias", "reference_quirks")
    return {name: [plain(getattr(c, name)) for c in configs] for name in fields}


def record_pair(ctx: AppContext, session: str | None, kind: str, title: str, pair: Any,
                entries: Sequence[ModelEntry], settings: Mapping[str, Any],
                extra: Sequence[tuple[str, np.ndarray]] = (),
                lrp: Sequence[isnet.LRPConfig] | None = None,
                source: Mapping[str, Any] | None = None) -> dict:
    """Keep an Explain-like view (a :class:`~explorer.handlers.explain_views.PairView`): both
    overlays and heatmaps, the predictions and shares, the raw maps, and the LRP settings
    (``lrp``: one per model; default each model's own, as the view computed them). Maps drawn
    on their own colour scales (``pair.scale`` None) say each scale in their captions.
    ``source``: the image's and mask's file names and SHA-256 (:func:`image_source`), kept in
    the settings. The heatmaps' axes are [left model, right model], height, width."""
    own = pair.scale is None
    images = list(extra) + [(f"{v.label}: {v.target}", v.overlay) for v in pair.views] + \
        [(f"{v.label}: heatmap" + (f" (own scale ±{v.scale:.3g})" if own else ""), v.heatmap)
         for v in pair.views]
    configs = lrp if lrp is not None else [lrp_config(e) for e in entries]
    return record_view(ctx, session, kind, title, explain_numbers(pair.views),
                       {"lrp": lrp_record(configs), **settings,
                        **({"source": dict(source)} if source else {})}, entries, images,
                       pair_heatmaps(pair.views), pair.scale,
                       axes=[f"model: [left, right] = {[v.label for v in pair.views]}",
                             "height (pixels)", "width (pixels)"])


def image_source(image: np.ndarray, mask: np.ndarray | None, image_file: str | None = None,
                 mask_file: str | None = None) -> dict[str, Any]:
    """The explained image and mask as the JSON export records them: file name (when known)
    and the SHA-256 of the file, or, without one, of the pixels (H, W, 3) uint8 / (H, W)."""
    def one(pixels: np.ndarray | None, path: str | None) -> dict[str, Any] | None:
        if pixels is None and path is None:
            return None
        if path and Path(path).is_file():
            return {"file": Path(path).name, "sha256": file_sha256(path)}
        array = np.ascontiguousarray(pixels)
        return {"file": Path(path).name if path else None, "sha256_of_pixels":
                hashlib.sha256(array.tobytes()).hexdigest(), "shape": list(array.shape)}

    return {"image": one(image, image_file), "mask": one(mask, mask_file)}
