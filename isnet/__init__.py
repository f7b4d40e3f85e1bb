"""ISNet engine: LRP heatmaps inside the autograd graph, the heatmap loss, data and training.

The engine never imports Gradio. The public API below is deliberately small; everything else is
importable from its sub-package (see README.md, "Where each idea lives"):

* :mod:`isnet.models` — model families and their registry;
* :mod:`isnet.lrp` — LRP rules, canonisation, what to explain, one walk per family;
* :mod:`isnet.loss`, :mod:`isnet.wrapper` — the heatmap loss and the ISNet wrapper;
* :mod:`isnet.data` — images with masks, datasets, synthetic background bias;
* :mod:`isnet.training` — configuration, loop, Lightning, evaluation, the bundled experiment;
* :mod:`isnet.io` — checkpoints and foreign weight layouts;
* :mod:`isnet.viz` — heatmaps to colours.
"""

__version__ = "0.2.0"

from isnet.data import ImageSet, load_fashion_mnist
from isnet.data.bias import BIAS_KINDS, BiasConfig, inject_bias, make_split
from isnet.io.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from isnet.io.foreign import load_reference_state_dict
from isnet.loss import background_share, heatmap_loss, isnet_loss
from isnet.lrp import EXPLAIN_MODES, LRPConfig
from isnet.models import MODEL_NAMES, create_model
from isnet.models.densenet import densenet121
from isnet.training.config import TRAINING_METHODS, TrainConfig
from isnet.training.evaluate import measure
from isnet.training.loop import fit, seed_everything
from isnet.wrapper import ISNet, explain

__all__ = [
    # models and LRP
    "MODEL_NAMES", "create_model", "densenet121", "ISNet", "explain", "LRPConfig",
    "EXPLAIN_MODES",
    # the loss
    "heatmap_loss", "isnet_loss", "background_share",
    # data and bias
    "ImageSet", "load_fashion_mnist", "BIAS_KINDS", "BiasConfig", "inject_bias", "make_split",
    # training
    "TRAINING_METHODS", "TrainConfig", "fit", "measure", "seed_everything",
    # checkpoints and foreign weights
    "load_checkpoint", "save_checkpoint", "CheckpointError", "load_reference_state_dict",
]
