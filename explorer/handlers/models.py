"""Plain functions behind the Models tab: load a checkpoint into this session, override what the
file does not say, and describe models.

A loaded checkpoint (ours: safetensors with metadata; the ISNet authors' ``torch.save`` or
Lightning dictionaries; a plain state dict of any registered model family — DenseNet, ResNet,
VGG — whose architecture :mod:`isnet.io.architecture` infers) becomes a
:class:`explorer.state.ModelEntry` owned by the loading session. A 1000-class torchvision dict
arrives with ImageNet's class names, 224 px input, mean/std normalisation and per-channel z^B
bounds (:mod:`isnet.io.imagenet`); :class:`Overrides` replace any of them. Unsafe pickles,
corrupt files and weights of no known family are refused by :func:`isnet.load_checkpoint`; the
refusal reaches the user as an InputError.

A file comes as an upload, or — only when the app runs locally and is not shared
(``Limits.local_paths``) — as a path on disk, so that big files are not copied.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.catalog import ASSETS, bundled_checkpoints, entry_from_checkpoint
from explorer.entries import SHARED, ModelEntry
from explorer.errors import InputError
from explorer.handlers.lrp_modes import mode_note
from explorer.limits import size_bytes
from explorer.plain_text import plain
from explorer.state import AppContext
from isnet.analysis.sanity import untrained_signs
from isnet.data.transforms import evaluation_record, normalised_bounds, preprocessing_of
from isnet.devices import device_label
from isnet.io.limits import CheckpointLimits

MAX_CLASS_FILE_BYTES = 1 << 20
MAX_DISPLAY_NAME = 120
"""Longest display name of a loaded model (it is repeated in every card and report)."""
SIZE_RANGE = (8, 1024)
SHOWN_CLASSES = 20
TRAINED_AS = {"isnet": "ISNet", "standard": "standard", "comparison": "comparison method"}
"""How a model was trained (``ModelEntry.trained_as``), in words for its card."""


@dataclass(frozen=True)
class Overrides:
    """What the user says about a model when its file does not say it (or says it wrongly).

    Attributes:
        input_size: side length in pixels (None: keep).
        mean, std: per-channel normalisation as text ("0.485, 0.456, 0.406"); both empty: keep;
            "none" in both: raw [0, 1] pixels.
        class_file: a text file with one class name per line (None: keep).
    """

    input_size: int | None = None
    mean: str = ""
    std: str = ""
    class_file: str | None = None


@dataclass(frozen=True)
class LoadRequest:
    """What the Load button sends.

    Attributes:
        upload: the uploaded file (Gradio's temporary path), or None.
        disk_path: a path on this machine (accepted only when the app is local and not shared).
        name: optional display name (default: the file name).
        overrides: input size, normalisation and class names to apply after loading.
        bundled: the file name of a bundled checkpoint
            (:func:`explorer.catalog.bundled_checkpoints`), allowed in shared apps too.
    """

    upload: str | None = None
    disk_path: str | None = None
    name: str | None = None
    overrides: Overrides = Overrides()
    bundled: str | None = None


def load_model(ctx: AppContext, session: str | None, request: LoadRequest) -> ModelEntry:
    """Load a checkpoint (upload or path on disk) as a model of this session.

    Raises:
        InputError: no file, a path on disk while the app is shared, too large, not a loadable
            safe checkpoint of a known model family, or an override that does not fit.
    """
    if len((request.name or "").strip()) > MAX_DISPLAY_NAME:
        raise InputError(f"A display name is at most {MAX_DISPLAY_NAME} characters; this one "
                         f"has {len(request.name.strip()):,}.")
    path = _source(ctx, request)
    limit = size_bytes(ctx.limits.max_checkpoint_size)
    try:
        entry = entry_from_checkpoint(path, ctx.store.new_id("loaded"), owner=session,
                                      limits=CheckpointLimits(max_file_bytes=limit))
    except ValueError as error:  # CheckpointError is a ValueError
        raise InputError(f"{Path(path).name} is not a checkpoint this app can load: "
                         f"{_first_line(error)}") from error
    label = (request.name or "").strip()
    if label:
        entry.label = label
    elif entry.metadata.get("format_version", 1) == 0:
        entry.label = f"{Path(path).stem} ({entry.metadata.get('model_name') or entry.family}" \
                      f", foreign weights)"
    _apply(entry, request.overrides)
    return ctx.store.add(entry)


def load_model_file(ctx: AppContext, session: str | None, path: str | None,
                    name: str | None = None) -> ModelEntry:
    """Load an uploaded checkpoint as a model of this session (see :func:`load_model`)."""
    return load_model(ctx, session, LoadRequest(upload=path, name=name))


def _source(ctx: AppContext, request: LoadRequest) -> str:
    disk = (request.disk_path or "").strip()
    if request.upload:
        return request.upload
    if request.bundled:
        folder = ctx.bundled_dir or ASSETS / "checkpoints"
        if request.bundled not in bundled_checkpoints(folder):
            raise InputError(f"{request.bundled} is not a bundled checkpoint; choose one of: "
                             f"{', '.join(bundled_checkpoints(folder)) or 'none is bundled'}.")
        return str(folder / request.bundled)
    if not disk:
        raise InputError("No checkpoint uploaded (and no bundled file or path on disk given).")
    if not ctx.limits.local_paths:
        raise InputError("Paths on disk are accepted only when the app runs locally and is not "
                         "shared; upload the file instead.")
    path = Path(disk).expanduser()
    if not path.is_file():
        raise InputError(f"{path.name or disk} is not a file on this machine.")
    return str(path)


def override_model(ctx: AppContext, session: str | None, model_id: str,
                   overrides: Overrides) -> ModelEntry:
    """Apply ``overrides`` to one of this session's models (bundled models stay as they are).

    Raises:
        InputError: a shared model, or an override that does not fit the model.
    """
    entry = ctx.store.get(model_id, session)
    if entry.owner is SHARED:
        raise InputError(f"{entry.label} is shared by every user; load your own copy of its "
                         "file to change its input size, normalisation or classes.")
    _apply(entry, overrides)  # cached heatmaps are keyed by the (resized, normalised) input
    return entry


def _apply(entry: ModelEntry, overrides: Overrides) -> None:
    """Check every override first, then change the entry's metadata (all or nothing)."""
    changes: dict[str, Any] = {}
    if overrides.input_size:
        size = int(overrides.input_size)
        if not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
            raise InputError(f"Input size {size} px is outside {SIZE_RANGE[0]}–{SIZE_RANGE[1]}.")
        changes["input_size"] = size
    if (overrides.mean or "").strip() or (overrides.std or "").strip():
        changes.update(_normalisation(entry, overrides.mean, overrides.std))
    if overrides.class_file:
        changes["class_names"] = read_class_names(overrides.class_file, entry.model.num_classes)
    if changes:
        entry.metadata.update(changes)
        entry.metadata.setdefault("overrides", [])
        entry.metadata["overrides"] = sorted(set(entry.metadata["overrides"]) | set(changes))


def _normalisation(entry: ModelEntry, mean_text: str, std_text: str) -> dict[str, Any]:
    if (mean_text or "").strip().lower() == "none" and (std_text or "").strip().lower() == "none":
        return {"normalisation": {"mean": None, "std": None}, "bounds": [0.0, 1.0]}
    channels = int((getattr(entry.model, "arch", {}) or {}).get("in_channels", 3))
    mean, std = _floats(mean_text, "mean", channels), _floats(std_text, "std", channels)
    if min(std) <= 0:
        raise InputError("Every standard deviation must be positive.")
    low, high = normalised_bounds(mean, std)
    return {"normalisation": {"mean": mean, "std": std}, "bounds": [low, high]}


def _floats(text: str, what: str, channels: int) -> list[float]:
    parts = [p for p in (text or "").replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"The {what} must be numbers separated by commas, e.g. "
                         f"0.485, 0.456, 0.406.") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"The {what} must be finite numbers (not NaN or infinity).")
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise InputError(f"The {what} needs one value per input channel ({channels}); got "
                         f"{len(values)}.")
    return values


def read_class_names(path: str, num_classes: int) -> list[str]:
    """Class names from a text file, one per line (blank lines skipped).

    Raises:
        InputError: unreadable, too large, or not one name per logit.
    """
    source = Path(path)
    if source.stat().st_size > MAX_CLASS_FILE_BYTES:
        raise InputError(f"{source.name} is larger than 1 MB; a class-name file holds one short "
                         "name per line.")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{source.name} is not a UTF-8 text file ({type(error).__name__}).") \
            from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != num_classes:
        raise InputError(f"{source.name} lists {len(names)} class names; the model has "
                         f"{num_classes} outputs (one name per line, in logit order).")
    return names


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return plain(json.dumps(value, default=str)[:300])
    return plain(value)


def _table(title: str, data: dict | None) -> list[str]:
    if not data:
        return [f"**{title}:** not recorded."]
    rows = [f"**{title}**", "", "| | |", "|---|---|"]
    rows += [f"| {plain(key)} | {_fmt(value)} |" for key, value in data.items()]
    return rows


def _numbers(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return "(" + ", ".join(f"{float(v):.3g}" for v in values) + ")"
    return f"{float(values):.3g}"


def input_lines(entry: ModelEntry) -> list[str]:
    """Card lines about what the model sees: size, normalisation, z^B bounds, classes."""
    meta = entry.metadata
    overridden = set(meta.get("overrides") or [])
    mark = {key: " *(overridden)*" if key in overridden else "" for key in
            ("input_size", "normalisation", "class_names")}
    norm = entry.normalisation
    low, high = entry.bounds
    names = entry.class_names
    more = len(names) - SHOWN_CLASSES
    shown = ", ".join(plain(name) for name in names[:SHOWN_CLASSES]) + (
        f", … ({more} more)" if more > 0 else "")
    return [f"- **Input:** {entry.input_size}×{entry.input_size} RGB{mark['input_size']}"
            + ("" if meta.get("input_size") else " (size not recorded; 64 assumed)"),
            "- **Normalisation:** " + ("none (pixels in [0, 1])" if norm is None else
                                       f"mean {_numbers(norm[0])}, std {_numbers(norm[1])}")
            + mark["normalisation"],
            f"- **Preprocessing:** "
            f"{plain(evaluation_record(preprocessing_of(entry.metadata))['text'])}",
            f"- **z^B bounds:** low {_numbers(low)}, high {_numbers(high)}",
            f"- **Classes ({len(names)}):** {shown}{mark['class_names']}"]


def summary_line(entry: ModelEntry) -> str:
    """One line: family, classes, input, trained as, data and bias, test accuracy per split."""
    meta = entry.metadata
    trained = TRAINED_AS.get(entry.trained_as, "training unknown")
    if entry.method and entry.method != "standard":
        trained += f" ({plain(entry.method)})"
    data = meta.get("data") or {}
    bias = data.get("bias") or {}
    data_text = plain(data.get("dataset") or data.get("source") or "data not recorded")
    if bias:
        data_text += (f", {plain(data.get('train_split', 'biased'))} with a "
                      f"{plain(bias.get('kind'))} mark")
    test = (meta.get("metrics") or {}).get("test") or {}
    accuracy = " / ".join(f"{plain(split)} {values['accuracy']:.0%}"
                          for split, values in test.items()
                          if isinstance(values, dict) and values.get("accuracy") is not None)
    parts = [plain(entry.family), f"{len(entry.class_names)} classes", f"{entry.input_size} px",
             trained, data_text] + ([f"accuracy {accuracy}"] if accuracy else [])
    return " · ".join(parts)


def robustness_line(entry: ModelEntry) -> list[str]:
    """A card line with the accuracy drop under unseen background changes, when recorded
    (:mod:`isnet.training.robustness`); none otherwise."""
    robustness = (entry.metadata.get("metrics") or {}).get("robustness") or {}
    drops = [f"{plain(kind)} {values['drop_points']:.1f}" for kind, values in robustness.items()
             if isinstance(values, dict) and isinstance(values.get("drop_points"), (int, float))]
    if not drops:
        return []
    return ["- **Unseen background changes** (accuracy drop in points, each kind planted with "
            "a random class into clean test images): " + " · ".join(drops)]


def untrained_line(entry: ModelEntry) -> list[str]:
    """A warning line when the network looks untrained
    (:func:`isnet.analysis.sanity.untrained_signs`); none otherwise."""
    signs = untrained_signs(entry.model)
    if not signs:
        return []
    return ["", f"⚠ **Untrained?** {'; '.join(signs)}. Its maps will look plausible (edges) "
            "without meaning anything: run the model-randomisation test "
            "(`python -m isnet.sanity CHECKPOINT IMAGE`)."]


def model_card(entry: ModelEntry) -> str:
    """A Markdown card: family and architecture, the device it runs on, input (size,
    normalisation, z^B bounds), classes, LRP mode, training data and bias, metrics and
    provenance."""
    meta = entry.metadata
    parameters = sum(p.numel() for p in entry.model.parameters())
    arch = getattr(entry.model, "arch", {}) or meta.get("architecture", {})
    shape = ", ".join(plain(f"{key.replace('_', ' ')} {tuple(v) if isinstance(v, list) else v}")
                      for key, v in arch.items() if key not in ("num_classes", "in_channels"))
    trained = TRAINED_AS.get(entry.trained_as, "not recorded")
    lines = [f"### {plain(entry.label)}", summary_line(entry), *untrained_line(entry), "",
             f"- **Family:** {plain(entry.family)}", f"- **Runs on:** {device_label(entry.device)}",
             *input_lines(entry),
             f"- **LRP:** {mode_note(entry)}", *robustness_line(entry), "",
             "<details><summary>Full configuration</summary>", "",
             f"- **Trained as:** {trained}"
             + (f" (training method: {plain(entry.method)})" if entry.method else ""),
             f"- **Architecture:** {plain(meta.get('model_name') or 'unnamed')} "
             f"({parameters:,} parameters; {shape})",
             f"- **File:** {plain(Path(entry.path).name) if entry.path else 'in memory'}", ""]
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
