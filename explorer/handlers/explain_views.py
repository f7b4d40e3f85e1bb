"""What an Explain answer is made of, and the one trip to :mod:`isnet.viz` that draws it.

* :class:`Explanation`: one model's answer as the engine's tensors (what the cache keeps);
* :func:`render`: all of a pair's heatmaps drawn on one shared colour scale, or each on its own
  (:data:`COLOUR_SCALES`), as ``uint8`` pictures;
* :class:`ModelView` and :class:`PairView`: those pictures with the numbers, ready for widgets.

:mod:`explorer.handlers.explain` computes the answers; the Bias lab and the Fine-tune tab draw
theirs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from explorer.entries import ModelEntry
from explorer.media.colour_scale import colour_scale_picture
from explorer.plain_text import plain
from isnet import viz
from isnet.analysis.sanity import untrained_signs
from isnet.lrp.conservation import CONSERVED_TOLERANCE, Conservation

SHARED_SCALE = "shared"
OWN_SCALES = "own"
COLOUR_SCALE_CHOICES = [("shared (compare strengths)", SHARED_SCALE),
                        ("each model its own (compare where)", OWN_SCALES)]
"""(label, id) choices of the colour-scale switch (the labels were the values before)."""
COLOUR_SCALES = (SHARED_SCALE, OWN_SCALES)
"""How the heatmaps are coloured: on one scale (colours compare across models; a weak model's
map can look blank beside a strong one), or each on its own (every map uses the full colour
range; the colours of two models are then not comparable)."""


@dataclass(frozen=True)
class Explanation:
    """One model's answer on one image, still as the engine's tensors (what the cache keeps).

    Attributes:
        probabilities: (K,) float64 class probabilities.
        heatmap: (C, S, S) relevance of the explained class at the model's input size.
        explained: index of the explained class.
        conservation: Σ R against the explained score and what the biases absorbed
            (:class:`isnet.lrp.conservation.Conservation`); None for a native map or a
            difference of two maps.
    """

    probabilities: Tensor
    heatmap: Tensor
    explained: int
    conservation: Conservation | None = None


@dataclass
class ModelView:
    """What one model says about one image, ready for widgets.

    Attributes:
        label: model name.
        top: top-k {class name: probability} (plain floats).
        predicted: name of the top class.
        target: name of the explained class.
        heatmap: (h, w, 3) uint8, the map alone (on ``scale``).
        overlay: (H, W, 3) uint8, the map over the image.
        share: background relevance share in [0, 1], or None without a usable mask.
        probabilities: {class name: probability} for every class.
        relevance: (S, S) float64, the raw relevance map (summed over colour channels) at
            the model's input size — what the exports save.
        input_rule: how the map treats the input layer ("z^B", "ε" or "native map").
        scale: the colour-scale bound this view was drawn with (±scale is fully red / blue).
        untrained: the network looks untrained (BatchNorms at their initial values,
            :func:`isnet.analysis.sanity.untrained_signs`).
        conservation: the conservation readout as plain numbers
            (:meth:`isnet.lrp.conservation.Conservation.as_dict`: Σ R, score, ratio, bias
            share, …), or None where there is none (native maps, differences).
    """

    label: str
    top: dict[str, float]
    predicted: str
    target: str
    heatmap: np.ndarray
    overlay: np.ndarray
    share: float | None
    probabilities: dict[str, float] = field(default_factory=dict)
    relevance: np.ndarray | None = None
    input_rule: str = ""
    scale: float = 0.0
    conservation: dict | None = None
    untrained: bool = False


@dataclass
class PairView:
    """Both models' views, plus what to tell the user.

    Attributes:
        views: one :class:`ModelView` per model (left, right).
        scale: the shared colour-scale bound (relevance ±scale is fully red / blue); None when
            each model is drawn on its own scale (``ModelView.scale``).
        colorbar: (h, w, 3) uint8 colour bar with tick values: of that scale, or in percent of
            each model's own.
        mask_preview: (H, W, 3) uint8, the image with the mask the share used tinted in.
        summary: Markdown table of predictions and shares.
        notices: warnings for the user (empty or full mask).
    """

    views: list[ModelView]
    scale: float | None
    colorbar: np.ndarray
    mask_preview: np.ndarray
    summary: str
    notices: list[str] = field(default_factory=list)

    @property
    def left(self) -> ModelView:
        """The first (left) model's view."""
        return self.views[0]

    @property
    def right(self) -> ModelView:
        """The second (right) model's view."""
        return self.views[-1]


def render(entries: list[ModelEntry], explanations: list[Explanation],
           shares: list[float | None], image: np.ndarray, mask: np.ndarray | None,
           picture: np.ndarray | list[np.ndarray], opacity: float, top_k: int, side: int,
           notices: list[str], true_class: str | None = None,
           rules: list[str] | None = None, own_scales: bool = False) -> PairView:
    """The one trip to :mod:`isnet.viz`: every heatmap on one shared colour scale, or each on
    its own (``own_scales``: the scale of its own map, as :func:`isnet.viz.shared_scale` sets
    it for one map).

    Args:
        picture: the (H, W, 3) uint8 image the overlays are drawn on, or one per model (what
            each model sees: the centre a crop keeps).
        side: heatmaps are enlarged to side × side pixels.
        rules: each model's input-layer rule, for the summary
            (:func:`explorer.handlers.explain.input_rule_name`).
    """
    maps = [viz.relevance_map(e.heatmap) for e in explanations]
    scale = viz.shared_scale(maps)
    scales = [viz.shared_scale([m]) for m in maps] if own_scales else [scale] * len(maps)
    views = []
    rules = rules or [""] * len(entries)
    pictures = picture if isinstance(picture, list) else [picture] * len(entries)
    for entry, answer, relevance, share, rule, own, seen in zip(
            entries, explanations, maps, shares, rules, scales, pictures, strict=True):
        names = entry.class_names
        probabilities = answer.probabilities.tolist()
        views.append(ModelView(
            label=entry.label, top=_top(probabilities, names, top_k),
            predicted=names[int(answer.probabilities.argmax())], target=names[answer.explained],
            heatmap=viz.heatmap_to_rgb(answer.heatmap, own, size=(side, side)),
            overlay=viz.overlay(seen, answer.heatmap, own, opacity), share=share,
            probabilities=dict(zip(names, probabilities, strict=True)),
            relevance=relevance, input_rule=rule, scale=float(own),
            conservation=None if answer.conservation is None else answer.conservation.as_dict(),
            untrained=bool(untrained_signs(entry.model))))
    preview = viz.mask_overlay(image, mask) if mask is not None else image
    shared = None if own_scales else float(scale)
    bar = colour_scale_picture(1.0, relative=True) if own_scales else colour_scale_picture(scale)
    return PairView(views, shared, bar, preview, _summary(views, shared, true_class), notices)


def _top(probabilities: list[float], names: list[str], k: int) -> dict[str, float]:
    order = sorted(range(len(names)), key=lambda i: -probabilities[i])[:max(1, k)]
    return {names[i]: float(probabilities[i]) for i in order}


def _summary(views: list[ModelView], scale: float | None, true_class: str | None = None) -> str:
    """A Markdown table: model, prediction (✓/✗ against a known true class), explained class,
    background share; then the colour scale (shared, or each model's own: ``scale`` None)."""
    lines = ["| model | predicts | explained class | background share | input rule | Σ R / score |",
             "|---|---|---|---|---|---|"]
    for view in views:
        share = "—" if view.share is None else f"{view.share:.1%}"
        mark = ""
        if true_class and true_class in view.probabilities:
            mark = " ✓" if view.predicted == true_class else f" ✗ (true: {plain(true_class)})"
        mark += " ⚠ untrained?" if view.untrained else ""
        lines.append(f"| {plain(view.label)} | {plain(view.predicted)} "
                     f"({view.top[view.predicted]:.0%}){mark} | {plain(view.target)} | {share} "
                     f"| {view.input_rule or '—'} | {conservation_cell(view.conservation)} |")
    if scale is None:
        each = ", ".join(f"{plain(v.label)} ±{v.scale:.3g}" for v in views)
        scales = (f"Each model on its own colour scale: {each} relevance (red = for the class, "
                  f"blue = against); colours do not compare across models.")
    else:
        scales = (f"Shared colour scale: ±{scale:.3g} relevance (red = for the class, "
                  f"blue = against).")
    lines.append(f"\n{scales} z^B credits dark pixels too; the ε-rule gives black pixels no "
                 f"relevance, so compare shares under one rule.")
    lines.extend(conservation_notice(view.label, view.conservation) for view in views
                 if view.conservation is not None and not view.conservation["conserved"])
    return "\n".join(lines)


def conservation_cell(numbers: dict | None) -> str:
    """The summary's cell for one map: ``Σ R / score = ratio (biases absorbed x %)``."""
    if numbers is None:
        return "—"
    return (f"{numbers['relevance_sum']:.3g} / {numbers['score']:.3g} = {numbers['ratio']:.2f} "
            f"(biases {numbers['bias_share']:.0%})")


def conservation_notice(label: str, numbers: dict) -> str:
    """What a map that does not conserve the score means for reading it (one line)."""
    name = plain(label)
    return (f"\n⚠ {name}: the map sums to {numbers['relevance_sum']:.3g} but explains a score of "
            f"{numbers['score']:.3g} (off by more than {CONSERVED_TOLERANCE:.0%}); the walk's "
            f"biases kept {numbers['absorbed_by_bias']:.3g}. Much of the score comes from the "
            f"network's constant terms, not from pixels, so red and blue show only how pixels "
            f"shift it, and a mark can look blue while its class wins. See docs/trust.md "
            f"(\"The Bag case\").")
