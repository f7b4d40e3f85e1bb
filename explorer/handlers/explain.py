"""The Explain button's work, straight down and back once: widgets → engine → viz → widgets.

:func:`explain` takes an :class:`ExplainRequest` and returns a :class:`PairView`:

1. the editor's image and mask become tensors at each model's input size, normalised with each
   model's own mean and std (:mod:`explorer.media.tensors`);
2. :func:`isnet.explain` gives logits and heatmaps; the heatmaps stay tensors (cached per model,
   image, class and ε in :class:`Explanation`), and :func:`isnet.background_share` measures them
   against the mask;
3. :func:`explorer.handlers.explain_views.render` hands all heatmaps to :mod:`isnet.viz` once,
   which draws them on one shared colour scale (or each on its own) as ``uint8`` images.

The whole answer is cached too (:attr:`explorer.state.AppContext.answers`, keyed by the image's
and the mask's content, both models and every setting): asking again for the same view (two
users on one sample, a reloaded page, a script) returns the same pictures without drawing them
again.

Plain Python comes out: ``uint8`` arrays, ``float`` (never NumPy scalars or tensors), dicts of
``str → float``. Bad input raises :class:`explorer.errors.InputError` with a message for the
user; notices that should not stop the work are returned in ``notices``. The Bias lab and the
Fine-tune tab reuse :func:`explain_models` and :func:`predict_models`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

import isnet
from explorer.caches import image_digest
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers import domain
from explorer.handlers.explain_views import (
    COLOUR_SCALE_CHOICES,
    COLOUR_SCALES,
    OWN_SCALES,
    SHARED_SCALE,
    Explanation,
    PairView,
    render,
)
from explorer.handlers.lrp_modes import (
    AUTHORS,
    CORRECTED,
    DIFFERENCE,
    lrp_config,
    model_maps,
    resolve,
)
from explorer.handlers.spellings import current_spelling, old_labels
from explorer.media import masking
from explorer.media.editor import EditorInput
from explorer.media.tensors import (
    display_image,
    mask_tensor,
    model_input,
    model_view,
    resize_mode,
)
from explorer.plain_text import plain
from explorer.state import AppContext
from isnet.devices import device_label
from isnet.lrp.registry import is_lrp_ready

PREDICTED = "predicted"
"""Explain each model's own top class."""
SELECTIVE = "selective"
"""Explain the way Selective ISNet trains: the softmax log-odds of the lowest logit."""
TARGET_CHOICES = [("predicted class", PREDICTED),
                  ("selective (log-odds of the least likely class)", SELECTIVE)]
"""(label, id) choices of the explain-class dropdown before the model's classes."""
OLD_SPELLINGS = {**old_labels(TARGET_CHOICES), **old_labels(COLOUR_SCALE_CHOICES)}
"""Old labels of the explain class and the colour scale, still accepted for one release."""


@dataclass(frozen=True)
class ExplainRequest:
    """What the Explain button sends.

    Attributes:
        editor: the image and its foreground mask, as the mask editor holds them.
        left_id, right_id: the two models to compare (store ids).
        target: a class name, or :data:`PREDICTED` for each model's own top class.
        opacity: overlay opacity in [0, 1].
        top_k: predictions listed per model.
        epsilon: ε of the LRP ε-rule (None: each model's training value).
        zb: the z^B rule at the input layer (None: each model's training setting).
        true_class: the image's true class, when known (right/wrong marks, domain notice).
        lrp_mode: which LRP (:data:`explorer.handlers.lrp_modes.LRP_MODES`; None: each model's
            own).
        colour_scale: :data:`SHARED_SCALE` or :data:`OWN_SCALES`.
    """

    editor: EditorInput
    left_id: str
    right_id: str
    target: str | None = PREDICTED
    opacity: float = 0.6
    top_k: int = 3
    epsilon: float | None = None
    zb: bool | None = None
    true_class: str | None = None
    lrp_mode: str | None = None
    colour_scale: str = SHARED_SCALE


EPSILON_RANGE = (0.0, 100.0)
"""The ε values the explorer accepts (the training value is usually 0.01)."""


def epsilon_problem(epsilon: float | str | None) -> str | None:
    """What is wrong with an ε typed by the user, in words that say how to fix it; None when it
    can be used (None itself: each model's training value)."""
    if epsilon is None or epsilon == "":
        return None
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        return f"ε must be a number, not {epsilon!r}."
    low, high = EPSILON_RANGE
    if not low <= value <= high:  # NaN fails too
        return (f"ε must lie in [{low:g}, {high:g}], not {value:g} (it cannot be negative); "
                f"try 0.01, the usual training value.")
    return None


def explain(ctx: AppContext, session: str | None, request: ExplainRequest) -> PairView:
    """The Explain button: both chosen models on the editor's image and mask.

    Raises:
        InputError: no image, unknown model, a class the model does not have, bad mask.
    """
    request = replace(request, target=current_spelling(request.target, OLD_SPELLINGS,
                                                       "the explain class"),
                      colour_scale=current_spelling(request.colour_scale, OLD_SPELLINGS,
                                                    "the colour scale"))
    image, mask = request.editor.read()
    entries = [ctx.store.get(request.left_id, session), ctx.store.get(request.right_id, session)]
    problem = epsilon_problem(request.epsilon)
    if problem is not None:
        raise InputError(problem)
    if request.colour_scale not in COLOUR_SCALES:
        raise InputError(f"Unknown colour scale {request.colour_scale!r}; choose one of "
                         f"{', '.join(map(repr, COLOUR_SCALES))}.")
    key = answer_key(ctx, entries, image, mask, request)
    pair = ctx.answers.get(key)
    if pair is None:
        overrides = LRPOverrides(request.epsilon, request.zb, request.lrp_mode)
        pair = explain_models(ctx, entries, image, mask, request.target, float(request.opacity),
                              int(request.top_k), lrp=overrides, true_class=request.true_class,
                              own_scales=request.colour_scale == OWN_SCALES)
        pair.notices.extend(domain.notices(entries, image, request.true_class))
        if entries[0] is entries[1]:
            pair.notices.append(f"Both sides show the same model ({plain(entries[0].label)}): pick "
                                "another model on one side to compare two.")
        ctx.answers.put(key, pair)
    return replace(pair, notices=list(pair.notices))  # callers may add notices to their copy


def answer_key(ctx: AppContext, entries: Sequence[ModelEntry], image: np.ndarray,
               mask: np.ndarray | None, request: ExplainRequest) -> tuple:
    """What an Explain answer depends on: both models, the image's and the mask's content and
    every setting of the request (the editor value itself is left out: it is the image and the
    mask). A model counts by id, object, label and metadata, so neither a replaced model nor
    one whose input size, normalisation or class names were overridden in place is mistaken
    for what it was."""
    content = image_digest(image) + ("" if mask is None else image_digest(mask))
    settings = (request.target, float(request.opacity), int(request.top_k), request.epsilon,
                request.zb, request.true_class, request.lrp_mode, request.colour_scale,
                ctx.limits.display_side)
    models = [(e.model_id, id(e.model), e.label,
               hashlib.sha1(repr(sorted(e.metadata.items())).encode()).hexdigest())
              for e in entries]
    return ("answer", *models, content, settings)


@dataclass(frozen=True)
class LRPOverrides:
    """LRP settings chosen in the UI (None keeps the model's training value; ``mode`` None: the
    model's own LRP mode, see :mod:`explorer.handlers.lrp_modes`)."""

    epsilon: float | None = None
    zb: bool | None = None
    mode: str | None = None

    def config(self, entry: ModelEntry, mode: str | None = None) -> isnet.LRPConfig:
        """The LRP configuration for one model: its training settings and z^B bounds, its own
        LRP mode (or ``mode``, or this choice), then these overrides."""
        return lrp_config(entry, mode or self.mode, self.epsilon, self.zb)


def explain_models(ctx: AppContext, entries: Sequence[ModelEntry], image: np.ndarray,
                   mask: np.ndarray | None, target: str | None = PREDICTED,
                   opacity: float = 0.6, top_k: int = 3,
                   display: np.ndarray | None = None, lrp: LRPOverrides | None = None,
                   true_class: str | None = None, own_scales: bool = False,
                   at_input: bool = False) -> PairView:
    """Explain ``image`` with every model in ``entries`` and draw all maps on one scale (or,
    with ``own_scales``, each on its own).

    Args:
        entries: usually two (left, right).
        image: (H, W, 3) uint8; resized to each model's input size.
        mask: (H, W) bool foreground, or None.
        target: a class name, or :data:`PREDICTED` for each model's own top class.
        opacity: overlay opacity in [0, 1].
        top_k: predictions listed per model.
        display: the picture to draw overlays on (default: ``image``, fitted for display).
        lrp: LRP settings chosen in the UI (default: each model's training settings).
        true_class: the image's true class, for right/wrong marks in the summary.
        own_scales: draw each map on its own colour scale (:data:`OWN_SCALES`).
        at_input: ``image`` is already what the models see (S × S, cropped where they crop,
            as the Bias lab draws on it): only resized, never cropped again.

    Each overlay is drawn on what its model sees: the whole picture, or the centre its crop
    keeps (:func:`explorer.media.tensors.resize_mode`). The summary ends with the device the
    models ran on (``app.py --device``).
    """
    _, warning = masking.describe_mask(mask)
    usable = mask if mask is not None and mask.any() and not mask.all() else None
    lrp = lrp or LRPOverrides()
    explanations, shares, rules, pictures = [], [], [], []
    for entry in entries:
        resize = "squeeze" if at_input else resize_mode(entry.metadata)
        x = model_input(image, entry.input_size, entry.normalisation, resize)  # (1, 3, S, S)
        answer = explain_cached(ctx, entry, x, target_index(entry, target), lrp)
        rules.append(input_rule_name(entry, lrp.config(entry)))
        explanations.append(answer)
        difference = resolve(entry, lrp.mode) == DIFFERENCE
        shares.append(None if usable is None or difference else
                      _share(answer.heatmap, mask_tensor(usable, entry.input_size, resize)))
        seen = model_view(image if display is None else display, entry.input_size, resize)
        pictures.append(display_image(seen, ctx.limits.display_side * 2))
    pair = render(list(entries), explanations, shares, image, usable, pictures, opacity, top_k,
                  ctx.limits.display_side, [warning] if warning else [], true_class, rules,
                  own_scales)
    devices = sorted({device_label(entry.device) for entry in entries})
    return replace(pair, summary=f"{pair.summary} Computed on {' and '.join(devices)}.")


def input_rule_name(entry: ModelEntry, config: isnet.LRPConfig) -> str:
    """How a model's map treats the input layer, for the summary: "z^B", "ε", or "native map"
    for a network explained by its own map."""
    if not is_lrp_ready(entry.model):
        return "native map"
    return "z^B" if config.zb else "ε"


def explain_cached(ctx: AppContext, entry: ModelEntry, x: Tensor, target: int | str | None,
                   lrp: isnet.LRPConfig | LRPOverrides | None = None) -> Explanation:
    """:func:`engine_explain`, cached per model, image, class and LRP settings (the opacity
    slider and the class list do not rerun LRP). With UI overrides whose mode is the
    difference, the heatmap is corrected − authors'."""
    if isinstance(lrp, LRPOverrides) and resolve(entry, lrp.mode) == DIFFERENCE:
        corrected = explain_cached(ctx, entry, x, target, lrp.config(entry, CORRECTED))
        authors = explain_cached(ctx, entry, x, target, lrp.config(entry, AUTHORS))
        return Explanation(corrected.probabilities, corrected.heatmap - authors.heatmap,
                           corrected.explained)  # a difference has no score to conserve
    if isinstance(lrp, LRPOverrides):
        lrp = lrp.config(entry)
    lrp = lrp or lrp_config(entry)
    key = (entry.model_id, id(entry.model), image_digest(x.numpy()), target, repr(lrp))
    cached = ctx.cache.get(key)
    if cached is None:
        cached = engine_explain(entry, x, target, lrp, maps=ctx.batcher.model_maps)
        ctx.cache.put(key, cached)
    return cached


def engine_explain(entry: ModelEntry, x: Tensor, target: int | str | None,
                   lrp: isnet.LRPConfig | None = None, maps=model_maps) -> Explanation:
    """One model's probabilities and heatmap (:func:`explorer.handlers.lrp_modes.model_maps`:
    LRP through :func:`isnet.explain`, or the native map of a network without an LRP walk).

    Args:
        target: a class index, None (the top class) or ``"selective"`` (the log-odds of the
            least likely class, as Selective ISNet trains).
        lrp: LRP settings (default: the model's own,
            :func:`explorer.handlers.lrp_modes.lrp_config`: its training ε, its z^B bounds,
            the corrected or the authors' block).
        maps: what computes them (:meth:`explorer.batching.MicroBatcher.model_maps` batches
            requests that arrive together, with the same answers).

    Shapes:
        x: (1, 3, S, S), normalised as the model expects.
    """
    logits, heatmaps, conservation = maps(entry, x, target, lrp or lrp_config(entry))
    probabilities = torch.softmax(logits.double(), dim=1)[0]  # (K,)
    if target is None:
        explained = int(probabilities.argmax())
    elif isinstance(target, str):
        explained = int(probabilities.argmin())
    else:
        explained = int(target)
    return Explanation(probabilities, heatmaps[0, 0].double(), explained,  # heatmap (C, S, S)
                       conservation)


def target_index(entry: ModelEntry, target: str | None) -> int | str | None:
    """Class index for a class name (None = the predicted class, "selective" = Selective
    ISNet's map)."""
    target = current_spelling(target, OLD_SPELLINGS, "the explain class")
    if not target or target == PREDICTED:
        return None
    if target == SELECTIVE:
        return "selective"
    names = entry.class_names
    if target in names:
        return names.index(target)
    raise InputError(f"{entry.label} has no class {target!r}; its classes are "
                     f"{', '.join(names)}.")


def _share(heatmap: Tensor, mask: Tensor) -> float:
    """Background share of one (C, S, S) heatmap against a (1, 1, S, S) mask."""
    return round(float(isnet.background_share(heatmap[None, None], mask.double())[0]), 4)


def predict_models(entries: Sequence[ModelEntry], images: Sequence[np.ndarray],
                   at_input: bool = False) -> np.ndarray:
    """Class probabilities of every model for every image, without heatmaps (``at_input``: the
    images are already what the models see, see :func:`explain_models`).

    Returns:
        float64 array (models, images, K) — all models must share K (computed on each model's
        device, returned from the CPU).
    """
    out = []
    for entry in entries:
        resize = "squeeze" if at_input else resize_mode(entry.metadata)
        batch = torch.cat([model_input(img, entry.input_size, entry.normalisation, resize)
                           for img in images]).to(entry.device)
        with torch.no_grad():
            out.append(torch.softmax(entry.model(batch).double(), dim=1).cpu().numpy())
    return np.stack(out)


def class_choices(ctx: AppContext, session: str | None,
                  model_id: str) -> list[tuple[str, str]]:
    """The explain-class dropdown's (label, id) choices for a model: "predicted class", the
    selective map, then its classes (each its own label)."""
    return TARGET_CHOICES + [(name, name) for name in ctx.store.get(model_id, session).class_names]
