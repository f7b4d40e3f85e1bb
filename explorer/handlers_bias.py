"""Plain functions behind the Bias lab: plant a class mark in the background, sweep it, swap it.

All work happens at the first model's input resolution (the resolution the models were trained
and biased at): the editor's image and mask are resized to it, :func:`isnet.inject_bias` draws
the mark there (never touching the foreground), and both models are asked about the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from explorer import handlers, plots
from explorer.state import AppContext, ModelEntry
from explorer.uploads import InputError
from isnet import viz

POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "random")
SWEEPS = {"opacity": "mark opacity (strength)", "size": "mark size (fraction of the side)"}


@dataclass(frozen=True)
class BiasSettings:
    """The mark, as the widgets describe it.

    Attributes:
        kind: one of ``isnet.data.bias.BIAS_KINDS`` ("shape", "decoy", "text", "tint", "texture").
        mark_class: name of the class the mark stands for.
        position: a corner name or "random".
        size: mark height as a fraction of the image side.
        colour: "#rrggbb" / "rgb(...)" / "rgba(...)", or None for the class's own colour.
        opacity: blend weight in [0, 1].
        seed: random placement and any random choice.
    """

    kind: str = "shape"
    mark_class: str | None = None
    position: str = "top_left"
    size: float = 0.25
    colour: str | None = None
    opacity: float = 1.0
    seed: int = 0


def training_defaults(entry: ModelEntry) -> BiasSettings:
    """The mark the model was trained with (from its checkpoint's ``data.bias``), so the lab
    starts with the shortcut the standard model may have learned; plain defaults otherwise."""
    bias = (entry.metadata.get("data") or {}).get("bias") or {}
    size = bias.get("size", 0.2)
    if isinstance(size, int) and not isinstance(size, bool):
        size = size / entry.input_size  # pixels → fraction of the side
    position = bias.get("corner", "top_left") if bias.get("position", "corner") == "corner" \
        else "random"
    kind = bias.get("kind", "shape")
    return BiasSettings(kind=kind if isinstance(kind, str) else "shape",
                        position=position if position in POSITIONS else "top_left",
                        size=float(min(0.5, max(0.05, size))),
                        opacity=float(bias.get("opacity", 1.0)))


def parse_colour(text: str | None) -> tuple[float, float, float] | None:
    """'#rrggbb', '#rgb', 'rgb(r, g, b)' or 'rgba(r, g, b, a)' → RGB in [0, 1]; None/'' → None.

    Raises:
        InputError: anything else.
    """
    if not text:
        return None
    text = text.strip()
    match = re.fullmatch(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})", text)
    if match:
        digits = match.group(1)
        digits = "".join(c * 2 for c in digits) if len(digits) == 3 else digits
        return tuple(int(digits[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    match = re.fullmatch(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(,\s*[\d.]+\s*)?\)",
                         text)
    if match:
        return tuple(min(255.0, float(match.group(i))) / 255.0 for i in (1, 2, 3))
    raise InputError(f"Cannot read the colour {text!r}; use #rrggbb.")


def _class_index(entry: ModelEntry, name: str | None, what: str) -> int:
    if name in entry.class_names:
        return entry.class_names.index(name)
    raise InputError(f"Choose the {what} among {entry.label}'s classes "
                     f"({', '.join(entry.class_names)}); got {name!r}.")


def _working(image: np.ndarray, mask: np.ndarray | None, size: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Image (S, S, 3) uint8 and mask (S, S) bool at the model resolution; a mask is required."""
    if mask is None or not mask.any():
        raise InputError("The bias lab needs a foreground mask: the mark goes into the "
                         "background. Paint the object or use an automatic mask first.")
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask.astype(np.uint8), (size, size),
                            interpolation=cv2.INTER_NEAREST).astype(bool)
    return small, small_mask


def draw_mark(image: np.ndarray, mask: np.ndarray, true_index: int, mark_index: int,
              num_classes: int, settings: BiasSettings, **overrides: float) -> np.ndarray:
    """Inject the mark of ``mark_index`` into the background of an (S, S, 3) uint8 image.

    Raises:
        InputError: no room in the background, or an invalid setting.
    """
    from isnet.data.bias.inject import inject_bias

    options = {"size": float(settings.size), "opacity": float(settings.opacity),
               "color": parse_colour(settings.colour), "mark_class": int(mark_index)}
    if settings.position == "random":
        options["position"] = "random"
    elif settings.position in POSITIONS:
        options.update(position="corner", corner=settings.position)
    else:
        raise InputError(f"Unknown position {settings.position!r}; use one of {POSITIONS}.")
    options.update(overrides)
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)  # (3, S, S)
    m = torch.from_numpy(mask.astype(np.float32))[None]  # (1, S, S)
    try:
        biased = inject_bias(x, m, int(true_index), num_classes, kind=settings.kind,
                             seed=int(settings.seed), **options).image
    except ValueError as error:  # includes BiasPlacementError ("no room")
        raise InputError(f"Cannot place this mark: {error}") from error
    return viz.as_rgb_uint8(biased)


@dataclass
class BiasView:
    """The biased image, both models on it (one colour scale), and a before/after table."""

    biased: np.ndarray
    pair: handlers.PairView
    comparison: str


def _setup(ctx: AppContext, session: str | None, value: dict | None, left_id: str,
           right_id: str, true_class: str | None, settings: BiasSettings,
           record: dict | None = None, mode: str = "add to mask"):
    image, mask = handlers.read_editor(value, record, mode)
    entries = [ctx.store.get(left_id, session), ctx.store.get(right_id, session)]
    reference = entries[0]
    if entries[1].class_names != reference.class_names:
        raise InputError("The bias lab needs two models with the same classes.")
    small, small_mask = _working(image, mask, reference.input_size)
    true_index = _class_index(reference, true_class, "image's true class")
    mark_index = _class_index(reference, settings.mark_class, "mark's class")
    return entries, small, small_mask, true_index, mark_index


def inject(ctx: AppContext, session: str | None, value: dict | None, left_id: str, right_id: str,
           true_class: str | None, settings: BiasSettings, opacity: float = 0.6,
           top_k: int = 3, record: dict | None = None, mode: str = "add to mask") -> BiasView:
    """The Inject button: draw the mark, explain both models on the biased image."""
    entries, small, small_mask, true_index, mark_index = _setup(
        ctx, session, value, left_id, right_id, true_class, settings, record, mode)
    biased = draw_mark(small, small_mask, true_index, mark_index, len(entries[0].class_names),
                       settings)
    side = ctx.limits.display_side
    display = cv2.resize(biased, (side, side), interpolation=cv2.INTER_NEAREST)
    pair = handlers.explain_models(ctx, entries, biased, small_mask, handlers.PREDICTED,
                                   opacity, top_k, display=display)
    before = handlers.predict_models(entries, [small])[:, 0]  # (models, K)
    after = np.array([[v.probabilities[n] for n in entries[0].class_names] for v in pair.views])
    names = entries[0].class_names
    return BiasView(display, pair, _comparison(entries, names, true_index, mark_index, before,
                                               after))


def _comparison(entries: list[ModelEntry], names: list[str], true_index: int, mark_index: int,
                before: np.ndarray, after: np.ndarray) -> str:
    """Markdown: per model, P(true) and P(mark class) and the prediction, before → after."""
    columns = [true_index] if mark_index == true_index else [true_index, mark_index]
    header = " | ".join(f"P({names[c]})" for c in columns)
    lines = [f"| model | {header} | prediction |", "|---" * (len(columns) + 2) + "|"]
    for entry, b, a in zip(entries, before, after):
        cells = " | ".join(f"{b[c]:.0%} → {a[c]:.0%}" for c in columns)
        lines.append(f"| {entry.label} | {cells} | "
                     f"{names[int(b.argmax())]} → {names[int(a.argmax())]} |")
    note = ("The mark agrees with the true class." if mark_index == true_index else
            f"Counterfactual: the mark of '{names[mark_index]}' on an image of "
            f"'{names[true_index]}'.")
    return "\n".join(lines) + f"\n\n{note} Before → after adding the mark."


def stress_test(ctx: AppContext, session: str | None, value: dict | None, left_id: str,
                right_id: str, true_class: str | None, settings: BiasSettings,
                sweep: str = "opacity", steps: int = 6, record: dict | None = None,
                mode: str = "add to mask"):
    """Sweep the mark's opacity or size; plot both models' P(true class) (and P(mark class)).

    Returns:
        (matplotlib Figure, rows [[value, P_true model 1, P_true model 2, …]], notices).
    """
    if sweep not in SWEEPS:
        raise InputError(f"Sweep 'opacity' or 'size', not {sweep!r}.")
    steps = int(np.clip(steps, 2, 12))
    entries, small, small_mask, true_index, mark_index = _setup(
        ctx, session, value, left_id, right_id, true_class, settings, record, mode)
    values = np.linspace(0.0, 1.0, steps) if sweep == "opacity" else np.linspace(0.08, 0.4, steps)
    kept, images, notices = [], [], []
    for v in values:
        try:
            images.append(draw_mark(small, small_mask, true_index, mark_index,
                                    len(entries[0].class_names), settings, **{sweep: float(v)}))
            kept.append(float(v))
        except InputError:
            notices.append(f"No room for a mark of size {v:.2f}; skipped.")
    if not images:
        raise InputError("The mark fits nowhere in this image's background at any size.")
    probabilities = handlers.predict_models(entries, images)  # (models, values, K)
    curves = {e.label: [float(p) for p in probabilities[i, :, true_index]]
              for i, e in enumerate(entries)}
    marks = {e.label: [float(p) for p in probabilities[i, :, mark_index]]
             for i, e in enumerate(entries)}
    names = entries[0].class_names
    figure = plots.stress_test_figure(kept, curves, SWEEPS[sweep], names[true_index],
                                      names[mark_index], marks)
    rows = [[round(v, 4)] + [round(curves[e.label][i], 4) for e in entries]
            for i, v in enumerate(kept)]
    return figure, rows, notices


def counterfactual(ctx: AppContext, session: str | None, value: dict | None, left_id: str,
                   right_id: str, true_class: str | None, settings: BiasSettings,
                   record: dict | None = None, mode: str = "add to mask"):
    """The mark of every class A on this image of class B: how often does each model follow it?

    Returns:
        (matplotlib Figure, Markdown summary).
    """
    probe = BiasSettings(**{**settings.__dict__, "mark_class": true_class})
    entries, small, small_mask, true_index, _ = _setup(ctx, session, value, left_id, right_id,
                                                       true_class, probe, record, mode)
    names = entries[0].class_names
    images = [draw_mark(small, small_mask, true_index, a, len(names), settings)
              for a in range(len(names))]
    probabilities = handlers.predict_models(entries, images)  # (models, A, K)
    follow = {e.label: [float(probabilities[i, a, a]) for a in range(len(names))]
              for i, e in enumerate(entries)}
    figure = plots.counterfactual_figure(names, follow, names[true_index])
    lines = ["| model | predictions flipped to the mark's class | mean P(mark's class) |",
             "|---|---|---|"]
    others = [a for a in range(len(names)) if a != true_index]
    for i, entry in enumerate(entries):
        flips = sum(int(probabilities[i, a].argmax() == a) for a in others)
        mean = np.mean([probabilities[i, a, a] for a in others]) if others else 0.0
        lines.append(f"| {entry.label} | {flips} of {len(others)} | {mean:.0%} |")
    return figure, "\n".join(lines)
