"""An audit as a per-image table: every row leads back to a file.

One row per image and model: the model's id, the image's index in the audit, its file (or
``<split> #<index>`` for a bundled image), its true class, the prediction and its confidence,
the background share, the strategy it fell into (when strategies were found for its class:
``<class> strategy <k>``) and whether it carries the planted mark (``marked``, ``clean``, or
empty when unknown). :func:`write_per_image_csv` writes it next to the audit's arrays; the
Audit tab offers it for download and ``/api/audit`` returns it.

Strategies found in the Audit tab are kept in the audit's folder (``strategies.json``,
:func:`save_strategies`), so a new audit starts without them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from isnet.io.atomic import write_atomically
from isnet.io.export import write_json

COLUMNS = ["model", "index", "file", "label", "prediction", "confidence", "background_share",
           "correct", "strategy", "marked"]
"""The per-image CSV's header (``background_share``, ``correct``, ``strategy`` and ``marked``
empty where unknown)."""
MARK_WORDS = {1: "marked", 0: "clean", -1: ""}
STRATEGIES_FILE = "strategies.json"


def save_strategies(record: dict, model: int, class_name: str,
                    members: list[list[int]]) -> None:
    """Remember one class's strategies for one model in the audit's folder (the newest search
    of a class replaces the last one)."""
    path = Path(record["dir"]) / STRATEGIES_FILE
    found = _read_strategies(path)
    found.setdefault(str(model), {})[class_name] = [list(map(int, m)) for m in members]
    write_json(path, found, overwrite=True)


def _read_strategies(path: Path) -> dict[str, dict[str, list[list[int]]]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def strategy_of(record: dict, model: int) -> dict[int, str]:
    """Image index → ``"<class> strategy <k>"`` for the images whose class was clustered."""
    found = _read_strategies(Path(record["dir"]) / STRATEGIES_FILE).get(str(model), {})
    return {int(index): f"{class_name} strategy {number + 1}"
            for class_name, groups in found.items()
            for number, group in enumerate(groups) for index in group}


def per_image_rows(data: Any) -> list[list[Any]]:
    """The header and one row per image and model (see the module docstring); ``data`` is an
    :class:`~explorer.handlers.audit.AuditData` or a streamed audit."""
    classes = data.record["class_names"]
    names, marks = data.image_names(), data.marks()
    rows: list[list[Any]] = [list(COLUMNS)]
    for number, model in enumerate(data.record["models"]):
        correct, strategies = data.correct(number), strategy_of(data.record, number)
        model_classes = model["class_names"]
        for index in range(int(data.record["count"])):
            share = float(data.share[number][index])
            rows.append([model["id"], index, str(names[index]),
                         classes[int(data.labels[index])],
                         model_classes[int(data.predictions[number][index])],
                         f"{float(data.confidence[number][index]):.6f}",
                         "" if np.isnan(share) else f"{share:.6f}",
                         "" if correct is None else int(correct[index]),
                         strategies.get(index, ""), MARK_WORDS[int(marks[index])]])
    return rows


def csv_bytes(rows: list[list[Any]]) -> bytes:
    """Rows as UTF-8 CSV."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


def write_per_image_csv(data: Any, folder: str | Path | None = None) -> Path:
    """Write ``per_image.csv`` (into the audit's folder unless told); returns its path."""
    target = Path(folder or data.record["dir"]) / "per_image.csv"
    return write_atomically(target, csv_bytes(per_image_rows(data)), overwrite=True)
