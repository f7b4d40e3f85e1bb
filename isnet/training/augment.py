"""Background tint augmentation: whole-background colour changes with no link to the label.

Why (``docs/training-isnet.md``, findings 5 and 6): LRP credits relevance to inputs in
proportion to their contributions ``x_i·w_ij``. A uniform background colour acts differently: it
shifts every pre-activation whose receptive field touches the background, and so decides which
ReLUs fire and which max-pool inputs win. LRP passes that relevance on to the object, so the
ISNet heatmap loss never sees it: an ISNet trained on the corner mark lost 57 points to planted
background tints and 33 to textures, and one trained on a tint shortcut learned it completely.
Training images whose backgrounds are re-coloured at random (no class link) teach the network
that the background colour carries nothing. In the recipe study, a fixed half of the training
images tinted in the class colours of random classes (the colours the test then plants) brought
those drops to 5.2 and 7.5 points (the texture never seen). This per-batch form with colours
drawn uniformly from the RGB cube, at 0.5, helped much less: 42.7 and 30.7 points (15 epochs on
the bundled experiment, 67.5 / 66.8 / 66.8 % accuracy, background share 0.28).

:func:`tint_backgrounds` is the per-batch form used by :func:`isnet.fit` and the Lightning module
when ``TrainConfig.background_tint`` > 0: each image of a batch is chosen with that probability
and its background (mask 0) replaced by one colour drawn uniformly from [0, 1] per channel. The
object (mask 1) is never changed, nor are the masks and labels. The draw is seeded by
``(seed, step)``, so a run is reproducible and no generator state has to be carried around.
"""

from __future__ import annotations

import torch
from torch import Tensor


def tint_backgrounds(images: Tensor, masks: Tensor, fraction: float, seed: int,
                     step: int) -> Tensor:
    """Replace the background of a seeded ``fraction`` of the images by a random colour.

    Args:
        images: (B, C, H, W) in [0, 1] (not changed in place).
        masks: (B, 1, H, W), 1 = foreground (soft masks blend: ``x·m + colour·(1 − m)``).
        fraction: probability in [0, 1] that an image is tinted.
        seed: the run's seed.
        step: the training step (with ``seed``, fixes which images and which colours).

    Returns:
        A new (B, C, H, W) tensor (``images`` itself when ``fraction`` is 0).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    if fraction == 0.0:
        return images
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % 2**63)
    batch, channels = images.shape[:2]
    chosen = torch.rand(batch, generator=generator) < fraction  # (B,)
    colours = torch.rand(batch, channels, generator=generator)  # (B, C)
    chosen = chosen.to(images.device)
    colours = colours.to(images.device, images.dtype)[:, :, None, None]  # (B, C, 1, 1)
    foreground = masks.to(images.dtype)
    tinted = images * foreground + colours * (1 - foreground)
    return torch.where(chosen[:, None, None, None], tinted, images)
