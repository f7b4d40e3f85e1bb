"""ImageNet preprocessing for 1000-class torchvision weights, from what ships inside torchvision.

A state dict with 1000 logits is almost always an ImageNet classifier. torchvision's weight enums
(``ResNet50_Weights.IMAGENET1K_V1`` …) carry, without any download, the 1000 class names
(``meta["categories"]``) and the evaluation transform: resize to 256, centre crop to 224,
normalise with per-channel mean and standard deviation. The z^B rule needs the range of the
*normalised* input, so the bounds are computed per channel from that normalisation:
``low = (0 − mean) / std``, ``high = (1 − mean) / std``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGENET_CLASSES = 1000
"""Number of logits of an ImageNet-1k classifier."""

_FALLBACK = "resnet50"  # every torchvision ImageNet-1k weight enum has the same categories


@dataclass(frozen=True)
class ImageNetPreprocessing:
    """Class names, input size, normalisation and z^B bounds of an ImageNet-1k model.

    Attributes:
        class_names: the 1000 ImageNet class names, in logit order.
        input_size: side of the (centre-cropped) input in pixels.
        resize_size: shorter side images are resized to before cropping.
        mean, std: per-channel normalisation ``(x − mean) / std`` of [0, 1] pixels (RGB).
        weights: the torchvision weights enum entry these facts come from.
    """

    class_names: tuple[str, ...]
    input_size: int
    resize_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: str

    @property
    def low(self) -> tuple[float, ...]:
        """Lowest normalised value per channel: ``(0 − mean) / std``."""
        return tuple(-m / s for m, s in zip(self.mean, self.std, strict=True))

    @property
    def high(self) -> tuple[float, ...]:
        """Highest normalised value per channel: ``(1 − mean) / std``."""
        return tuple((1 - m) / s for m, s in zip(self.mean, self.std, strict=True))

    def metadata(self) -> dict[str, Any]:
        """The checkpoint-metadata fields this fills (see :mod:`isnet.io.checkpoints`)."""
        return {"class_names": list(self.class_names), "input_size": self.input_size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                "bounds": [list(self.low), list(self.high)]}


def imagenet_preprocessing(model_name: str | None = None) -> ImageNetPreprocessing:
    """ImageNet-1k preprocessing for a torchvision model name (e.g. ``"resnet50"``).

    Names torchvision does not know (``None``, ``"tiny_resnet"``, a custom architecture) get the
    standard ImageNet facts, which every torchvision ImageNet-1k weight shares. Nothing is
    downloaded: the facts are constants inside torchvision.
    """
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(model_name or _FALLBACK)
    except ValueError:
        enum = get_model_weights(_FALLBACK)
    weights = getattr(enum, "IMAGENET1K_V1", None) or enum.DEFAULT
    transform = weights.transforms()
    return ImageNetPreprocessing(
        class_names=tuple(weights.meta["categories"]), input_size=int(transform.crop_size[0]),
        resize_size=int(transform.resize_size[0]), mean=tuple(float(m) for m in transform.mean),
        std=tuple(float(s) for s in transform.std), weights=f"{enum.__name__}.{weights.name}")
