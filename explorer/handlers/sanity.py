"""The Models tab's sanity check: does a model's map depend on its learned weights?

:func:`randomisation_test` runs the cascading model-randomisation test of Adebayo et al. (2018)
(:func:`isnet.analysis.sanity.model_randomisation`) on one model and one image (a bundled sample
or the Explain tab's picture): the weighted layers are re-initialised from the classifier down,
stage by stage, and the map of the image is recomputed and compared with the trained model's
(Spearman rank correlation of ``|R|`` and SSIM). It returns the similarity per stage as a
figure and says whether the maps depend on the weights: they do when, with every weighted layer
random, the rank correlation has fallen below :data:`DEPENDS_BELOW`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.errors import InputError
from explorer.handlers.image import load_sample
from explorer.handlers.lrp_modes import lrp_config
from explorer.handlers.spellings import current_spelling, old_labels
from explorer.media.editor import EditorInput
from explorer.media.plots import randomisation_figure
from explorer.media.tensors import model_input, resize_mode
from explorer.plain_text import plain
from explorer.state import AppContext
from isnet.analysis.sanity import RandomisationStage, model_randomisation, untrained_signs
from isnet.lrp.registry import is_lrp_ready

DEPENDS_BELOW = 0.5
"""Spearman rank correlation of the fully randomised model's map with the trained one's below
which the maps are said to depend on the learned weights."""
STAGES = 5
"""Cascade steps (each re-initialises about a fifth of the weighted layers, top first)."""
EXPLAIN_IMAGE = "explain"
"""The image choice (its id) that takes the Explain tab's picture instead of a bundled
sample."""
EXPLAIN_IMAGE_CHOICE = ("(the Explain tab's image)", EXPLAIN_IMAGE)
"""(label, id) of that choice; the label was its value before, still accepted for a release."""


@dataclass
class RandomisationView:
    """What the Models tab shows of the test.

    Attributes:
        stages: the engine's result, stage 0 (the trained model) first.
        figure: Spearman and SSIM per stage (a matplotlib Figure).
        depends: whether the maps depend on the learned weights.
        summary: Markdown: the verdict, the untrained flag, a table of stages.
    """

    stages: list[RandomisationStage]
    figure: object
    depends: bool
    summary: str


def randomisation_test(ctx: AppContext, session: str | None, model_id: str | None,
                       image: np.ndarray | None, stages: int = STAGES) -> RandomisationView:
    """The cascading randomisation test of one model on one (H, W, 3) uint8 image.

    Raises:
        InputError: no model or image, or a model explained by its own map (no LRP walk).
    """
    if not model_id:
        raise InputError("Choose a model for the randomisation test.")
    if image is None:
        raise InputError("No image: choose a sample, or load an image in the Explain tab.")
    entry = ctx.store.get(model_id, session)
    if not is_lrp_ready(entry.model):
        raise InputError(f"{entry.label} is explained by its own map, not LRP; the "
                         f"randomisation test needs an LRP walk.")
    x = model_input(image, entry.input_size, entry.normalisation,
                    resize_mode(entry.metadata)).to(entry.device)
    results = model_randomisation(entry.model, x, lrp=lrp_config(entry), stages=stages)
    final = results[-1].spearman
    depends = final < DEPENDS_BELOW
    verdict = (f"**The maps depend on the learned weights**: with every layer random, the map's "
               f"rank correlation with {plain(entry.label)}'s falls to {final:.2f}."
               if depends else
               f"⚠ **The maps barely depend on the learned weights**: with every layer random, "
               f"the map still correlates {final:.2f} with {plain(entry.label)}'s (Spearman ≥ "
               f"{DEPENDS_BELOW}). They explain the image more than the model (Adebayo et al., "
               f"2018); do not read them as the model's reasons.")
    signs = untrained_signs(entry.model)
    lines = [verdict] + ([f"⚠ Untrained? {'; '.join(signs)}."] if signs else []) + [
        "", "| stage | layers made random | Spearman of |R| | SSIM |", "|---:|---|---:|---:|"]
    for stage in results:
        layers = ", ".join(stage.layers[:2]) + (" …" if len(stage.layers) > 2 else "")
        lines.append(f"| {stage.stage} | {layers or '— (trained)'} | {stage.spearman:.3f} | "
                     f"{stage.ssim:.3f} |")
    return RandomisationView(results, randomisation_figure(
        [s.spearman for s in results], [s.ssim for s in results], entry.label), depends,
        "\n".join(lines))


def chosen_image(ctx: AppContext, choice: str | None, editor: EditorInput | None) -> np.ndarray:
    """The test's image: a bundled sample by name, or (:data:`EXPLAIN_IMAGE`) the Explain
    tab's picture; (H, W, 3) uint8.

    Raises:
        InputError: no choice, an unknown sample, or an empty Explain tab.
    """
    if not choice:
        raise InputError("Choose a sample, or the Explain tab's image.")
    choice = current_spelling(choice, old_labels([EXPLAIN_IMAGE_CHOICE]), "the test image")
    if choice == EXPLAIN_IMAGE:
        if editor is None:
            raise InputError("No image in the Explain tab yet.")
        return editor.read()[0]
    return load_sample(ctx, choice).image
