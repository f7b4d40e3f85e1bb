"""ISNet engine: LRP heatmaps inside the autograd graph, the heatmap loss, data and training.

The engine never imports Gradio. See README.md ("Where each idea lives") for the layout.
"""

__version__ = "0.1.0"

# --- engine: models, LRP, the ISNet wrapper, the heatmap loss (owner: engine) ---
from isnet.heatmap_loss import (LossTerms, background_share, global_weighted_rank_pooling,
                                heatmap_loss, isnet_loss)
from isnet.isnet_model import ISNet, explain
from isnet.lrp import LRPConfig
from isnet.models import (MODEL_NAMES, DenseNet, create_model, densenet121, densenet161,
                          densenet169, densenet201, tiny_densenet)
from isnet.reference_weights import load_reference_state_dict, load_weights, model_for_state_dict
from isnet.targets import EXPLAIN_MODES

# --- data: bias injection and datasets (owner: data) ---
from isnet.bias import (BIAS_KINDS, BiasConfig, BiasPlacementError, BiasResult, apply_bias,
                        confounding_class, inject_bias)
from isnet.data import FASHION_MNIST_CLASSES, ImageMaskDataset, ImageSet, load_fashion_mnist
from isnet.datasets_folder import load_image_folder, save_image_folder
from isnet.splits import SPLITS, BiasedSplit, make_split, make_split_result
from isnet.synthetic import OBJECT_NAMES, synthetic_shapes

# --- training: loops, checkpoints, evaluation (owner: training) ---
from isnet.checkpoints import (CheckpointError, LoadedCheckpoint, list_checkpoints,
                               load_checkpoint, read_metadata, save_checkpoint)
from isnet.evaluate import evaluate_checkpoint, measure
from isnet.train import FitResult, TrainConfig, fit, seed_everything, train_step
