"""Named training recipes: changes applied to a TrainConfig (``benchmarks.arena --isnet-recipe``).

``"bundled"`` is the recipe of the bundled ISNet (``assets/checkpoints/isnet_densenet121``; the
``isnet_lr_scaled_no_zb_band250_hybrid`` row of ``docs/training-isnet.md``, run 6):

* learning rate η/(1 − P) and clip c·(1 − P): the cross-entropy part of ``(1 − P)·CE + P·L`` then
  takes the step a standard model takes at η, and the largest step stays η·c;
* the ε rule at the input (no z^B), so the black pixels along the object's edge carry no
  relevance the heatmap loss would penalise;
* foreground band [C1, C2] = [1, 250] with the Faster-ISNet "hybrid" foreground term.

``"engine"`` leaves the config as it is (the engine's defaults and the command's options).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from isnet.training.config import HEATMAP_LOSS_METHODS, TrainConfig


def engine_recipe(config: TrainConfig) -> TrainConfig:
    """The config unchanged."""
    return config


def bundled_recipe(config: TrainConfig) -> TrainConfig:
    """The bundled ISNet's recipe applied to ``config`` (methods with a heatmap loss only)."""
    if config.method not in HEATMAP_LOSS_METHODS:
        return config
    keep = 1.0 - config.heat_weight
    clip = None if config.grad_clip_norm is None else config.grad_clip_norm * keep
    return replace(config, learning_rate=config.learning_rate / keep, grad_clip_norm=clip,
                   zb=False, foreground_range=(1.0, 250.0), foreground_form="hybrid")


RECIPES: dict[str, Callable[[TrainConfig], TrainConfig]] = {"engine": engine_recipe,
                                                            "bundled": bundled_recipe}
"""Recipe name → function from a TrainConfig to the TrainConfig to train with."""
