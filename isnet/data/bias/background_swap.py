"""Background swap: each image keeps its object and takes the background of another image.

Given a batch of images and their foreground masks (1 = object), image ``i`` is given the
background of a *donor* ``j ≠ i`` of the same batch, drawn uniformly at random (seeded
``torch.Generator``) among the images that have a background at all:

* where ``M_i = 1`` (the object): image ``i`` unchanged, bit for bit (as
  :func:`isnet.data.bias.inject_bias` guarantees for its marks);
* where ``M_i = 0`` and ``M_j = 0``: the donor's pixel;
* where ``M_i = 0`` and ``M_j = 1`` (the donor's object would show through): the donor's *mean
  background colour* (per channel, over its ``M_j = 0`` pixels).

Why the mean colour and not a third image: the fill must add no object of its own. On
Fashion-MNIST every object is centred, so a third image's object almost always covers the same
hole (it would need a fourth, and so on), while the donor's mean background colour always exists
and carries no object and no mark shape. On the shortcut data the backgrounds are black apart
from the mark, so the fill is near black and the hole does not stand out.

The label stays image ``i``'s, so a background mark no longer predicts the label: after the
swap, image ``i`` carries the mark of the donor's class (a random class of the batch).

An image with no background pixel (the object fills the frame) cannot take one; it passes
through unchanged and is counted, as is an image for which no other image of the batch has a
background (then no donor exists). Their donor index is −1.

Published counterpart: Xiao, Engstrom, Ilyas and Madry, "Noise or Signal: The Role of Image
Backgrounds in Object Recognition" (2020, arXiv:2006.09994) build ImageNet-9 test variants whose
foreground is pasted onto another image's background: *Mixed-Same* (a background from an image
of the same class) and *Mixed-Rand* (a background from an image of a random class). A donor
drawn from the whole batch is Mixed-Rand's choice; here it is a training augmentation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SwappedBatch:
    """The result of :func:`swap_backgrounds`.

    Attributes:
        images: (B, C, H, W) the swapped images (a new tensor).
        donors: (B,) int64, the image each background came from; −1 = passed through.
        passed_through: how many images kept their own background (no background, or no donor).
    """

    images: Tensor
    donors: Tensor
    passed_through: int


def batch_generator(seed: int, masks: Tensor, salt: int = 0) -> torch.Generator:
    """A CPU generator seeded by the run's ``seed`` and the batch's masks (CRC-32 of their
    bytes), so that a run is reproducible without carrying a generator from step to step.

    Shapes: masks (B, 1, H, W) in {0, 1}. ``salt`` separates draws of one batch (e.g. the
    swap from a stochastic ISNet's class draw).
    """
    fingerprint = zlib.crc32(masks.detach().to("cpu", torch.uint8).contiguous().numpy()
                             .tobytes())
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + fingerprint * 31 + salt)
                                         % 2**63)


def draw_donors(has_background: Tensor, generator: torch.Generator) -> Tensor:
    """For each image, a random other image that has a background, or −1.

    Shapes: has_background (B,) bool → (B,) int64. Image ``i`` gets −1 when it has no
    background itself or when no other image has one.
    """
    size = has_background.shape[0]
    scores = torch.rand(size, size, generator=generator)  # (receiver, donor)
    allowed = has_background[None, :] & ~torch.eye(size, dtype=torch.bool)
    scores = torch.where(allowed, scores, torch.full_like(scores, -1.0))
    best, donors = scores.max(1)
    return torch.where((best >= 0) & has_background, donors, torch.full_like(donors, -1))


def mean_background_colour(images: Tensor, masks: Tensor) -> Tensor:
    """Mean colour of each image's background (0 where it has none).

    Shapes: images (B, C, H, W); masks (B, 1, H, W) in {0, 1} → (B, C, 1, 1).
    """
    background = 1 - masks.to(images.dtype)
    total = (images * background).sum((2, 3), keepdim=True)
    return total / background.sum((2, 3), keepdim=True).clamp_min(1)


def swap_backgrounds(images: Tensor, masks: Tensor, generator: torch.Generator) -> SwappedBatch:
    """Give each image the background of a randomly drawn other image (see module docstring).

    Args:
        images: (B, C, H, W) pixels (not changed in place).
        masks: (B, 1, H, W) foreground masks; > 0.5 counts as object.
        generator: CPU generator that draws the donors (same seed, same donors).
    """
    foreground = masks > 0.5  # (B, 1, H, W)
    has_background = ~foreground.flatten(1).all(1).cpu()  # (B,)
    donors = draw_donors(has_background, generator)
    source = donors.clamp_min(0).to(images.device)
    donor_images, donor_foreground = images[source], foreground[source]
    fill = mean_background_colour(images, foreground)[source]  # (B, C, 1, 1)
    background = torch.where(donor_foreground, fill.expand_as(images), donor_images)
    swapped = torch.where(foreground, images, background)
    kept = (donors < 0).to(images.device)[:, None, None, None]
    swapped = torch.where(kept, images, swapped)
    return SwappedBatch(swapped, donors, int((donors < 0).sum()))
