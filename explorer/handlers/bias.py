"""Plain functions behind the Bias lab: plant a class mark in the background, sweep it, swap it.

All work happens at the first model's input resolution (the resolution the models were trained
and biased at): the editor's image and mask are resized to it, :func:`isnet.inject_bias` draws
the mark there (never touching the foreground), and both models are asked about the result.
Each button sends a :class:`BiasRequest` and gets a named result back (:class:`BiasView`,
:class:`StressTestResult`, :class:`CounterfactualResult`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import isnet
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers.explain import PREDICTED, explain_models, predict_models
from explorer.handlers.explain_views import PairView
from explorer.media import plots
from explorer.media.editor import EditorInput
from explorer.media.tensors import enlarge, resize_image, resize_mask, resize_mode
from explorer.plain_text import plain
from explorer.state import AppContext
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


@dataclass(frozen=True)
class BiasRequest:
    """What the Bias lab's buttons send.

    Attributes:
        editor: the Explain tab's image and foreground mask.
        left_id, right_id: the two models (they must share their classes).
        true_class: the image's true class name (class B).
        mark: the mark to draw (class A and how it looks).
        opacity: heatmap overlay opacity in [0, 1].
        top_k: predictions listed per model.
    """

    editor: EditorInput
    left_id: str
    right_id: str
    true_class: str | None
    mark: BiasSettings
    opacity: float = 0.6
    top_k: int = 3


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


def at_model_resolution(image: np.ndarray, mask: np.ndarray | None, size: int,
                        resize: str = "squeeze") -> tuple[np.ndarray, np.ndarray]:
    """Image (S, S, 3) uint8 and mask (S, S) bool at the model resolution (cropped where the
    model crops, ``resize``); a mask is required."""
    if mask is None or not mask.any():
        raise InputError("The bias lab needs a foreground mask: the mark goes into the "
                         "background. Paint the object or use an automatic mask first.")
    return resize_image(image, size, resize), resize_mask(mask, size, resize)


def draw_mark(image: np.ndarray, mask: np.ndarray, true_index: int, mark_index: int,
              num_classes: int, settings: BiasSettings, **overrides: float) -> np.ndarray:
    """Inject the mark of ``mark_index`` into the background of an (S, S, 3) uint8 image.

    Raises:
        InputError: no room in the background, or an invalid setting.
    """
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
        biased = isnet.inject_bias(x, m, int(true_index), num_classes, settings.kind,
                                   seed=int(settings.seed), **options).image
    except ValueError as error:  # includes BiasPlacementError ("no room")
        raise InputError(f"Cannot place this mark: {error}") from error
    return viz.as_rgb_uint8(biased)


@dataclass
class BiasView:
    """What the Inject button shows.

    Attributes:
        biased: (D, D, 3) uint8, the biased image at model resolution enlarged for display.
        pair: both models explained on the biased image (one colour scale).
        comparison: Markdown table, P(true class) and P(mark class) before → after.
    """

    biased: np.ndarray
    pair: PairView
    comparison: str


@dataclass
class StressTestResult:
    """The stress test's plot, table and notices.

    Attributes:
        figure: matplotlib Figure, P(true class) (and P(mark class)) against the swept value.
        rows: [[value, P_true model 1, P_true model 2, …]] (plain floats).
        notices: skipped values (no room for the mark).
    """

    figure: Any
    rows: list[list[float]]
    notices: list[str] = field(default_factory=list)


@dataclass
class CounterfactualResult:
    """The counterfactual's plot and summary table (Markdown)."""

    figure: Any
    summary: str


@dataclass(frozen=True)
class _Bench:
    """The models and the image at model resolution, with the class indices resolved."""

    entries: list[ModelEntry]
    image: np.ndarray
    mask: np.ndarray
    true_index: int
    mark_index: int

    @property
    def names(self) -> list[str]:
        return self.entries[0].class_names

    def draw(self, mark: BiasSettings, mark_index: int | None = None,
             **overrides: float) -> np.ndarray:
        """The image with ``mark`` (of class ``mark_index``, default the request's) drawn in."""
        index = self.mark_index if mark_index is None else mark_index
        return draw_mark(self.image, self.mask, self.true_index, index, len(self.names), mark,
                         **overrides)


def _bench(ctx: AppContext, session: str | None, request: BiasRequest) -> _Bench:
    image, mask = request.editor.read()
    entries = [ctx.store.get(request.left_id, session), ctx.store.get(request.right_id, session)]
    reference = entries[0]
    if entries[1].class_names != reference.class_names:
        raise InputError("The bias lab needs two models with the same classes.")
    small, small_mask = at_model_resolution(image, mask, reference.input_size,
                                            resize_mode(reference.metadata))
    return _Bench(entries, small, small_mask,
                  _class_index(reference, request.true_class, "image's true class"),
                  _class_index(reference, request.mark.mark_class, "mark's class"))


def inject(ctx: AppContext, session: str | None, request: BiasRequest) -> BiasView:
    """The Inject button: draw the mark, explain both models on the biased image."""
    bench = _bench(ctx, session, request)
    biased = bench.draw(request.mark)
    display = enlarge(biased, ctx.limits.display_side)
    pair = explain_models(ctx, bench.entries, biased, bench.mask, PREDICTED,
                          float(request.opacity), int(request.top_k), display=display,
                          at_input=True)
    before = predict_models(bench.entries, [bench.image], at_input=True)[:, 0]  # (models, K)
    after = np.array([[v.probabilities[n] for n in bench.names] for v in pair.views])
    return BiasView(display, pair, _comparison(bench.entries, bench.names, bench.true_index,
                                               bench.mark_index, before, after))


def _comparison(entries: list[ModelEntry], names: list[str], true_index: int, mark_index: int,
                before: np.ndarray, after: np.ndarray) -> str:
    """Markdown: per model, P(true) and P(mark class) and the prediction, before → after."""
    columns = [true_index] if mark_index == true_index else [true_index, mark_index]
    header = " | ".join(f"P({plain(names[c])})" for c in columns)
    lines = [f"| model | {header} | prediction |", "|---" * (len(columns) + 2) + "|"]
    for entry, b, a in zip(entries, before, after, strict=True):
        cells = " | ".join(f"{b[c]:.0%} → {a[c]:.0%}" for c in columns)
        lines.append(f"| {plain(entry.label)} | {cells} | "
                     f"{plain(names[int(b.argmax())])} → {plain(names[int(a.argmax())])} |")
    note = ("The mark agrees with the true class." if mark_index == true_index else
            f"Confounding mark: the mark of '{plain(names[mark_index])}' on an image of "
            f"'{plain(names[true_index])}'.")
    return "\n".join(lines) + f"\n\n{note} Before → after adding the mark."


def stress_test(ctx: AppContext, session: str | None, request: BiasRequest,
                sweep: str = "opacity", steps: int = 6) -> StressTestResult:
    """Sweep the mark's opacity or size; plot both models' P(true class) (and P(mark class)).

    Args:
        sweep: "opacity" or "size" (see :data:`SWEEPS`).
        steps: values tried, 2 to 12.
    """
    if sweep not in SWEEPS:
        raise InputError(f"Sweep 'opacity' or 'size', not {sweep!r}.")
    steps = int(np.clip(steps, 2, 12))
    bench = _bench(ctx, session, request)
    values = np.linspace(0.0, 1.0, steps) if sweep == "opacity" else np.linspace(0.08, 0.4, steps)
    kept, images, notices = [], [], []
    for v in values:
        try:
            images.append(bench.draw(request.mark, **{sweep: float(v)}))
            kept.append(float(v))
        except InputError:
            notices.append(f"No room for a mark of size {v:.2f}; skipped.")
    if not images:
        raise InputError("The mark fits nowhere in this image's background at any size.")
    probabilities = predict_models(bench.entries, images, at_input=True)  # (models, values, K)
    labels = [e.label for e in bench.entries]
    curves = {label: [float(p) for p in probabilities[i, :, bench.true_index]]
              for i, label in enumerate(labels)}
    marks = {label: [float(p) for p in probabilities[i, :, bench.mark_index]]
             for i, label in enumerate(labels)}
    figure = plots.stress_test_figure(kept, curves, SWEEPS[sweep], bench.names[bench.true_index],
                                      bench.names[bench.mark_index], marks)
    rows = [[round(v, 4)] + [round(curves[label][i], 4) for label in labels]
            for i, v in enumerate(kept)]
    return StressTestResult(figure, rows, notices)


def counterfactual(ctx: AppContext, session: str | None,
                   request: BiasRequest) -> CounterfactualResult:
    """The mark of every class A on this image of class B: how often does each model follow it?

    The request's mark class is ignored (every class's mark is tried).
    """
    probe = dataclasses.replace(request, mark=dataclasses.replace(
        request.mark, mark_class=request.true_class))
    bench = _bench(ctx, session, probe)
    names = bench.names
    images = [bench.draw(request.mark, a) for a in range(len(names))]
    probabilities = predict_models(bench.entries, images, at_input=True)  # (models, A, K)
    follow = {e.label: [float(probabilities[i, a, a]) for a in range(len(names))]
              for i, e in enumerate(bench.entries)}
    figure = plots.counterfactual_figure(names, follow, names[bench.true_index])
    lines = ["| model | predictions flipped to the mark's class | mean P(mark's class) |",
             "|---|---|---|"]
    others = [a for a in range(len(names)) if a != bench.true_index]
    for i, entry in enumerate(bench.entries):
        flips = sum(int(probabilities[i, a].argmax() == a) for a in others)
        mean = np.mean([probabilities[i, a, a] for a in others]) if others else 0.0
        lines.append(f"| {plain(entry.label)} | {flips} of {len(others)} | {mean:.0%} |")
    return CounterfactualResult(figure, "\n".join(lines))
