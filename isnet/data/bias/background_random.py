"""Random backgrounds: each image keeps its object and gets random content around it.

For every image of a batch one of four kinds of content is drawn (uniformly, seeded
``torch.Generator``) and written where its mask is 0; the object (mask 1) is kept bit for bit:

* ``"noise"``: every background pixel and channel uniform in [0, 1];
* ``"tint"``: one colour, uniform in the RGB cube, over the whole background;
* ``"texture"``: a smooth random pattern: a 4 × 4 grid of random colours, bilinearly enlarged
  to the image (blotches, not the stripes the robustness test plants);
* ``"other"``: another image's background (:func:`isnet.data.bias.background_swap.
  swap_backgrounds`, holes filled with the donor's mean background colour).

None of the content depends on the label, so no background feature predicts it. The tints cover
every colour, so the robustness test's class-colour tints (:mod:`isnet.training.robustness`) are
no longer wholly unseen; its stripe textures and local marks are.

Images without background (or without a donor, for ``"other"``) pass through unchanged and are
counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from isnet.data.bias.background_swap import swap_backgrounds

RANDOM_KINDS: tuple[str, ...] = ("noise", "tint", "texture", "other")
"""The kinds of random background content, in the order of :attr:`RandomisedBatch.kinds`."""

TEXTURE_GRID = 4
"""Side of the grid of random colours a texture is enlarged from."""


@dataclass(frozen=True)
class RandomisedBatch:
    """The result of :func:`randomise_backgrounds`.

    Attributes:
        images: (B, C, H, W) the new images.
        kinds: (B,) int64 index into :data:`RANDOM_KINDS` of each image's content.
        passed_through: images left unchanged (no background, or no donor for ``"other"``).
    """

    images: Tensor
    kinds: Tensor
    passed_through: int


def random_contents(shape: torch.Size, generator: torch.Generator) -> list[Tensor]:
    """Noise, tint and texture backgrounds for a batch, each (B, C, H, W) on the CPU."""
    batch, channels, height, width = shape
    noise = torch.rand(batch, channels, height, width, generator=generator)
    tint = torch.rand(batch, channels, 1, 1, generator=generator).expand(shape)
    grid = torch.rand(batch, channels, TEXTURE_GRID, TEXTURE_GRID, generator=generator)
    texture = F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
    return [noise, tint, texture]


def randomise_backgrounds(images: Tensor, masks: Tensor,
                          generator: torch.Generator) -> RandomisedBatch:
    """Replace each image's background by content of a randomly drawn kind (module docstring).

    Args:
        images: (B, C, H, W) pixels in [0, 1] (not changed in place).
        masks: (B, 1, H, W) foreground masks; > 0.5 counts as object.
        generator: CPU generator (same seed, same kinds and contents).
    """
    kinds = torch.randint(len(RANDOM_KINDS), (images.shape[0],), generator=generator)
    contents = [c.to(images.device, images.dtype)
                for c in random_contents(images.shape, generator)]
    swapped = swap_backgrounds(images, masks, generator)
    foreground = masks > 0.5
    choice = kinds.to(images.device)[:, None, None, None]
    background = torch.where(choice == 0, contents[0],
                             torch.where(choice == 1, contents[1], contents[2]))
    result = torch.where(foreground, images, background)
    result = torch.where(choice == 3, swapped.images, result)
    no_background = foreground.flatten(1).all(1).cpu()
    kept = no_background | ((kinds == 3) & (swapped.donors < 0))
    return RandomisedBatch(result, kinds, int(kept.sum()))
