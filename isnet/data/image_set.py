"""Images with foreground masks: the ImageSet container and its torch Datasets.

Every loader returns an :class:`ImageSet`: images (N, 3, H, W) float32 in [0, 1], masks
(N, 1, H, W) float32 in {0, 1} (1 = foreground, the object ISNet should look at), labels (N,)
int64 and the class names. Sources: :func:`isnet.data.fashion_mnist.load_fashion_mnist`,
:func:`isnet.data.synthetic.synthetic_shapes` (colour objects on textured backgrounds) and
:func:`isnet.data.folders.load_image_folder` (your own images and masks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset


@dataclass(frozen=True)
class ImageSet:
    """Images, their foreground masks, labels and class names.

    Attributes:
        images: (N, C, H, W) float32 in [0, 1] (C = 3 from every loader here).
        masks: (N, 1, H, W) float32 in {0, 1}, 1 = foreground.
        labels: (N,) int64 in [0, K).
        class_names: K names; ``class_names[labels[i]]`` names image i's class.
    """

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        """Check that the tensors describe the same N images of the same size."""
        images, masks, labels = self.images, self.masks, self.labels
        if images.dim() != 4:
            raise ValueError(f"ImageSet.images must be (N, C, H, W), got {tuple(images.shape)}")
        expected = (images.shape[0], 1, images.shape[2], images.shape[3])
        if tuple(masks.shape) != expected:
            raise ValueError(f"ImageSet.masks must be {expected}, got {tuple(masks.shape)}")
        if tuple(labels.shape) != (images.shape[0],) or labels.dtype != torch.int64:
            raise ValueError(f"ImageSet.labels must be int64 of shape ({images.shape[0]},), got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.class_names)):
            raise ValueError(f"ImageSet.labels must lie in [0, {len(self.class_names)}) "
                             f"(one per class name)")

    def __len__(self) -> int:
        """Number of images N."""
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        """Number of classes K (length of ``class_names``)."""
        return len(self.class_names)

    def subset(self, indices: torch.Tensor | list[int]) -> ImageSet:
        """The images at ``indices`` (LongTensor (M,) or list), same class names."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ImageSet(self.images[index], self.masks[index], self.labels[index],
                        list(self.class_names))

    def to(self, device: torch.device | str) -> ImageSet:
        """The same images, masks and labels on ``device`` (training then runs there)."""
        return ImageSet(self.images.to(device), self.masks.to(device), self.labels.to(device),
                        list(self.class_names))


class ImageMaskDataset(Dataset):
    """A torch Dataset over tensors, yielding ``(image, mask, label)`` triples.

    Args:
        images: (N, C, H, W) float.
        masks: (N, 1, H, W) in {0, 1}.
        labels: (N,) int64.
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> None:
        if not (len(images) == len(masks) == len(labels)):
            raise ValueError(f"images, masks and labels must have the same length, got "
                             f"{len(images)}, {len(masks)}, {len(labels)}")
        if masks.dim() != 4 or masks.shape[1] != 1 or masks.shape[2:] != images.shape[2:]:
            raise ValueError(f"masks must be (N, 1, H, W) matching images {tuple(images.shape)}, "
                             f"got {tuple(masks.shape)}")
        self.images, self.masks, self.labels = images, masks, labels

    @classmethod
    def from_image_set(cls, image_set: ImageSet) -> ImageMaskDataset:
        """Wrap an :class:`ImageSet`."""
        return cls(image_set.images, image_set.masks, image_set.labels)

    def __len__(self) -> int:
        """Number of samples N."""
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``index``: image (C, H, W), mask (1, H, W), label () int64."""
        return self.images[index], self.masks[index], self.labels[index]


def as_dataset(data: Any) -> Dataset:
    """A Dataset of (image, mask, label) from an ``ImageSet``-like object or a Dataset.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(data, Dataset):
        return data
    if all(hasattr(data, name) for name in ("images", "masks", "labels")):
        return TensorDataset(data.images, data.masks, data.labels)
    raise ValueError(f"expected an ImageSet or a Dataset of (image, mask, label), got "
                     f"{type(data).__name__}")
