"""Export what a view shows: numbers and settings as JSON, raw heatmaps as ``.npy``, a figure as
PNG, and a self-contained HTML report. Every file goes through :mod:`isnet.io.atomic`.

The JSON is the record a paper or a bug report needs to reproduce a view: the numbers shown, the
settings (LRP configuration, seeds, the explained class) and, for every model, its file name and
SHA-256 (:func:`file_sha256`), so a reader can check they use the same weights.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from isnet.io.atomic import write_atomically

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MB chunks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def plain(value: Any) -> Any:
    """A JSON-ready copy: tensors and arrays become lists, NumPy scalars Python numbers, NaN and
    infinities ``None`` (strict JSON has no NaN), tuples lists, paths strings."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike, record: Mapping[str, Any], overwrite: bool = False) -> Path:
    """Write ``record`` (made :func:`plain`) as indented strict JSON, atomically."""
    text = json.dumps(plain(record), indent=2, allow_nan=False, ensure_ascii=False)
    return write_atomically(path, text.encode("utf-8"), overwrite=overwrite)


def write_npy(path: str | os.PathLike, array: Tensor | np.ndarray,
              overwrite: bool = False, durable: bool = True) -> Path:
    """Write one array (a heatmap tensor, for instance) as ``.npy``, atomically; loads back with
    ``numpy.load(path)`` (no pickles: ``allow_pickle`` is never needed)."""
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return write_atomically(path, buffer.getvalue(), overwrite=overwrite, durable=durable)


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 (H, W) or (H, W, 3) image as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def html_report(title: str, sections: Sequence[Mapping[str, Any]]) -> str:
    """One self-contained HTML page (images inlined as base64; no scripts, no network).

    Args:
        title: the page title.
        sections: each with ``"title"``, optional ``"text"``, optional ``"images"`` (a list of
            ``(caption, uint8 image)``) and optional ``"numbers"`` (a mapping shown as a table).
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "figure{display:inline-block;margin:.5em}img{max-width:320px;image-rendering:"
             "pixelated}table{border-collapse:collapse}td,th{border:1px solid #999;padding:"
             ".2em .5em}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(str(section.get('title', '')))}</h2>")
        if section.get("text"):
            parts.append(f"<p>{html.escape(str(section['text']))}</p>")
        for caption, image in section.get("images", []):
            encoded = base64.b64encode(png_bytes(image)).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,"
                         f"{encoded}'><figcaption>{html.escape(caption)}</figcaption></figure>")
        numbers = section.get("numbers")
        if numbers:
            rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>"
                           f"{html.escape(json.dumps(plain(v)))}</td></tr>"
                           for k, v in numbers.items())
            parts.append(f"<table>{rows}</table>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(path: str | os.PathLike, title: str, sections: Sequence[Mapping[str, Any]],
                 overwrite: bool = False) -> Path:
    """Write :func:`html_report` to ``path``, atomically."""
    return write_atomically(path, html_report(title, sections).encode("utf-8"),
                            overwrite=overwrite)
