"""Model families (LRP-ready classifiers, and the arena's U-Net and ViT baselines) and the
registry that builds them by name.

One file per family; importing it registers its names (see :mod:`isnet.models.registry`).
"""

from isnet.models import densenet, ham, resnet, sononet, unet, vgg, vit
from isnet.models.registry import create_model, family_of, model_names, register_model

MODEL_NAMES: tuple[str, ...] = model_names()
"""Every registered model name (``create_model`` accepts each)."""

__all__ = ["MODEL_NAMES", "create_model", "densenet", "family_of", "ham", "model_names",
           "register_model", "resnet", "sononet", "unet", "vgg", "vit"]
