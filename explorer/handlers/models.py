"""Plain functions behind the Models tab: load a checkpoint into this session and describe models.

A loaded checkpoint (ours: safetensors with metadata; the ISNet authors' ``torch.save`` or
Lightning dictionaries; a plain state dict of any registered model family, whose architecture
:mod:`isnet.io.architecture` infers) becomes a :class:`explorer.state.ModelEntry` owned by the
uploading session. Unsafe pickles, corrupt files and weights of no known family are refused by
:func:`isnet.load_checkpoint`; the refusal reaches the user as an InputError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from explorer.catalog import entry_from_checkpoint
from explorer.errors import InputError
from explorer.state import AppContext, ModelEntry


def load_model_file(ctx: AppContext, session: str | None, path: str | None,
                    name: str | None = None) -> ModelEntry:
    """Load an uploaded checkpoint as a model of this session.

    Args:
        path: the uploaded file.
        name: optional display name (default: the file name).

    Raises:
        InputError: no file, or not a loadable, safe checkpoint of a known model family.
    """
    if not path:
        raise InputError("No checkpoint uploaded.")
    label = (name or "").strip() or None
    model_id = ctx.store.new_id("loaded")
    try:
        entry = entry_from_checkpoint(path, model_id, owner=session)
    except ValueError as error:  # CheckpointError is a ValueError
        raise InputError(f"{Path(path).name} is not a checkpoint this app can load: "
                         f"{_first_line(error)}") from error
    if label:
        entry.label = label
    elif entry.metadata.get("format_version", 1) == 0:
        entry.label = f"{Path(path).stem} (foreign weights)"
    return ctx.store.add(entry)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return f"`{json.dumps(value, default=str)[:300]}`"
    return str(value)


def _table(title: str, data: dict | None) -> list[str]:
    if not data:
        return [f"**{title}:** not recorded."]
    rows = [f"**{title}**", "", "| | |", "|---|---|"]
    rows += [f"| {key} | {_fmt(value)} |" for key, value in data.items()]
    return rows


def summary_line(entry: ModelEntry) -> str:
    """One line: family, classes, input, trained as, data and bias, test accuracy per split."""
    meta = entry.metadata
    trained = {"isnet": "ISNet", "standard": "standard"}.get(entry.trained_as, "training unknown")
    if entry.method and entry.method != "standard":
        trained += f" ({entry.method})"
    data = meta.get("data") or {}
    bias = data.get("bias") or {}
    data_text = str(data.get("dataset") or data.get("source") or "data not recorded")
    if bias:
        data_text += f", {data.get('train_split', 'biased')} with a {bias.get('kind')} mark"
    test = (meta.get("metrics") or {}).get("test") or {}
    accuracy = " / ".join(f"{split} {values['accuracy']:.0%}" for split, values in test.items()
                          if isinstance(values, dict) and values.get("accuracy") is not None)
    parts = [entry.family, f"{len(entry.class_names)} classes", f"{entry.input_size} px",
             trained, data_text] + ([f"accuracy {accuracy}"] if accuracy else [])
    return " · ".join(parts)


def model_card(entry: ModelEntry) -> str:
    """A Markdown card: a summary line, then (folded away) architecture, classes, input,
    training data and bias, configuration, metrics and provenance."""
    meta = entry.metadata
    parameters = sum(p.numel() for p in entry.model.parameters())
    arch = getattr(entry.model, "arch", {}) or meta.get("architecture", {})
    shape = ", ".join(f"{key.replace('_', ' ')} {tuple(v) if isinstance(v, list) else v}"
                      for key, v in arch.items() if key not in ("num_classes", "in_channels"))
    trained = {"isnet": "ISNet", "standard": "standard"}.get(entry.trained_as, "not recorded")
    lines = [f"### {entry.label}", summary_line(entry), "",
             "<details><summary>Full configuration</summary>", "",
             f"- **Trained as:** {trained}"
             + (f" (training method: {entry.method})" if entry.method else ""),
             f"- **Architecture:** {meta.get('model_name') or 'unnamed'}, {entry.family} family "
             f"({parameters:,} parameters; {shape})",
             f"- **Input:** {entry.input_size}×{entry.input_size} RGB in "
             f"{meta.get('bounds', [0.0, 1.0])}"
             + ("" if meta.get("input_size") else " (size not recorded; 64 assumed)"),
             f"- **Classes ({len(entry.class_names)}):** {', '.join(entry.class_names)}",
             f"- **File:** {Path(entry.path).name if entry.path else 'in memory'}", ""]
    lines += _table("Training data and bias", meta.get("data")) + [""]
    lines += _table("Training configuration", meta.get("config")) + [""]
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if k != "history"}
    lines += _table("Metrics", metrics) + [""]
    lines += _table("Provenance", meta.get("provenance"))
    return "\n".join(lines + ["", "</details>"])


def cards(ctx: AppContext, session: str | None) -> str:
    """Cards of every model this session can use, separated by rules."""
    return "\n\n---\n\n".join(model_card(e) for e in ctx.store.visible(session))


def model_file(ctx: AppContext, session: str | None, model_id: str) -> str | None:
    """Path of the checkpoint file behind a model (for download), or None if it has none."""
    return ctx.store.get(model_id, session).path
