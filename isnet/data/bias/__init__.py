"""Synthetic background shortcuts: what a mark looks like (config), how each kind is drawn
(marks), planting it in one image (inject) and the paper's three test conditions (splits)."""

from isnet.data.bias.config import (
                                    BIAS_KINDS,
                                    CORNERS,
                                    BiasConfig,
                                    BiasPlacementError,
                                    BiasResult,
)
from isnet.data.bias.inject import confounding_class, inject_bias
from isnet.data.bias.splits import SPLITS, BiasedSplit, make_split

__all__ = ["BIAS_KINDS", "CORNERS", "SPLITS", "BiasConfig", "BiasPlacementError", "BiasResult",
           "BiasedSplit", "confounding_class", "inject_bias", "make_split"]
