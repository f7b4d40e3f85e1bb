"""``/api/audit``: a set audited with one or two models → a per-image CSV and a JSON summary.

The audit itself is the Audit tab's (:func:`explorer.handlers.audit.run_audit`: the bundled
splits, an uploaded zip, each model at its own size, normalisation and LRP settings). This module
only turns its record into files a notebook reads: ``per_image.csv`` with one row per image and
model (:mod:`explorer.handlers.audit_table`: the model id, the image's index and file, label,
prediction, confidence, share, strategy, marked or clean) and ``summary.json`` (per model:
accuracy, mean and median background share, images above the reliance threshold, per class the
same, and for a half-marked set the marked and the clean images apart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import InputError
from explorer.handlers.audit import BUNDLED, AuditRequest, read_audit, run_audit
from explorer.handlers.audit_conservation import measure
from explorer.handlers.audit_table import COLUMNS, write_per_image_csv
from explorer.handlers.audit_views import ranking
from explorer.state import AppContext
from isnet.analysis.audit_summary import RELIANCE_THRESHOLD
from isnet.io.export import write_json

CSV_COLUMNS = COLUMNS
"""The per-image CSV's header (:data:`explorer.handlers.audit_table.COLUMNS`)."""


def _model_ids(models: list[str] | str | None, ctx: AppContext) -> tuple[str, ...]:
    """Model ids from a list or a comma-separated string (default: the app's default pair)."""
    if models is None or models == "" or models == []:
        return tuple(ctx.default_pair)
    if isinstance(models, str):
        models = [part.strip() for part in models.split(",")]
    return tuple(str(model) for model in models if str(model).strip())


def _source(source: Any) -> tuple[str, tuple[str, ...]]:
    """(Audit source, uploaded paths) for a split name or a zip (path or ``FileData`` dict)."""
    if isinstance(source, str) and source in BUNDLED:
        return source, ()
    path = source.get("path") if isinstance(source, dict) else source
    if not path or not Path(str(path)).is_file():
        raise InputError(f"source must be one of {list(BUNDLED)} or a zip file, "
                         f"not {source!r}.")
    return "upload", (str(path),)


def audit(source: Any = "biased", models: list[str] | str | None = None, masks: str = "set",
          limit: int = 200, *, ctx: AppContext | None = None, session: str | None = None,
          out_dir: str | Path | None = None) -> dict[str, Any]:
    """Audit a set and write ``per_image.csv`` and ``summary.json`` (see the module docstring).

    Args:
        source: a bundled split (``"biased"``, ``"unbiased"``, ``"confounding"``,
            ``"mixed"``) or a zip of class folders (masks ``<name>.mask.png`` optional).
        models: one or two model ids (a list, or ``"isnet,standard"``).
        masks: ``"set"`` (the set's masks), ``"auto"`` (threshold masks) or ``"none"``.
        limit: images taken from a bundled split.
        out_dir: where the two files go (default: the audit's folder in the session).

    Returns:
        The summary (also in ``summary.json``), with ``csv`` and ``json`` paths.

    Raises:
        InputError: unknown source, model or mask mode; an unusable set.
    """
    if ctx is None:
        from explorer.api import default_context

        ctx = default_context()
    kind, paths = _source(source)
    request = AuditRequest(_model_ids(models, ctx), kind, int(limit), paths, masks=masks)
    last = None
    for update in run_audit(ctx, session, request):
        last = update
    if last is None or last.record is None:
        raise InputError(last.status if last else "The audit produced nothing.")
    data = read_audit(last.record)
    folder = Path(out_dir or last.record["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    summaries = [_summary(data, number, model)
                 for number, model in enumerate(last.record["models"])]
    csv_path = write_per_image_csv(data, folder)
    readout = measure(ctx, session, data, [int(i) for i in ranking(data, 0)])
    summary = {"source": kind if kind in BUNDLED else Path(paths[0]).name,
               "masks": last.record["masks"], "images": int(last.record["count"]),
               "classes": list(last.record["class_names"]), "models": summaries,
               "reliance_threshold": RELIANCE_THRESHOLD, "seconds": last.record["seconds"],
               "complete": bool(last.record["complete"]), "notices": list(last.notices),
               "class_match": last.record.get("class_match"), "conservation": readout,
               "csv": str(csv_path), "json": str(folder / "summary.json")}
    write_json(folder / "summary.json", summary, overwrite=True)
    return summary


def _summary(data: Any, number: int, model: dict) -> dict[str, Any]:
    """Accuracy and background share of one model, overall and per class."""
    share, correct = np.asarray(data.share[number], float), data.correct(number)

    def numbers(chosen: np.ndarray) -> dict[str, Any]:
        known = share[chosen][~np.isnan(share[chosen])]
        return {"images": int(chosen.sum()),
                "accuracy": None if correct is None or not chosen.any() else
                float(correct[chosen].mean()),
                "mean_share": float(known.mean()) if known.size else None,
                "median_share": float(np.median(known)) if known.size else None,
                "reliant": int((known > RELIANCE_THRESHOLD).sum())}

    every = np.ones(len(share), bool)
    per_class = {name: numbers(np.asarray(data.labels) == index)
                 for index, name in enumerate(data.record["class_names"])}
    marks = data.marks()
    apart = ({"marked": numbers(marks == 1), "clean": numbers(marks == 0)}
             if (marks == 1).any() and (marks == 0).any() else {})
    return {"id": model["id"], "label": model["label"], **numbers(every), "per_class": per_class,
            **apart}
