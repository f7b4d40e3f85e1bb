"""Synthetic background bias: a class-correlated mark drawn only outside the foreground mask.

ISNet's experiments plant a *shortcut* in the background of every training image: a small mark
that predicts the class in training and lies at test time (biased, unbiased and confounding
test sets; see :mod:`isnet.data.bias.splits`). This module draws that mark.

Guarantee: **no foreground pixel ever changes**. The blend is computed only where ``mask == 0``
and the result is taken from the input wherever ``mask == 1``, bit for bit.

Kinds (what encodes the class; drawings in :mod:`isnet.data.bias.marks`):

* ``"shape"``: a geometric mark whose type and/or colour encode the class (``encode``);
* ``"decoy"``: a square patch whose grey level encodes the class (Decoy-MNIST);
* ``"text"``: a letter or short word per class (like hospital marks on X-rays);
* ``"tint"``: the whole background blended towards the class colour;
* ``"texture"``: class-specific stripes (angle) over the whole background.

Placement of the first three (``position``): ``"corner"`` puts the mark as close to the named
corner as the background allows; ``"random"`` picks uniformly among all places where it fits.
A place fits when the mark plus ``margin`` pixels on every side lies inside the image and wholly
in the background. When nothing fits (or, for tint and texture, there is no background at all)
the image has *no room*: with ``on_no_room="error"`` a :class:`BiasPlacementError` is raised;
with ``on_no_room="skip"`` the image is returned unchanged and flagged ``skipped``.

Randomness (which class a mark shows when ``strength < 1``, random places) comes from a NumPy
generator seeded by the caller: the same seed gives byte-identical images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from isnet.data.bias import marks
from isnet.data.bias.config import (
    REGION_KINDS,
    BiasConfig,
    BiasPlacementError,
    BiasResult,
)


def confounding_class(label: int | torch.Tensor, num_classes: int) -> int | torch.Tensor:
    """The class whose mark a *confounding* image shows: a fixed permutation without fixed points.

    The permutation is the cyclic shift ``c -> (c + 1) mod K``, so the mark never matches the
    label and every class's mark is still used exactly once.

    Args:
        label: Class index, or a LongTensor (N,) of them, in [0, K).
        num_classes: K >= 2.

    Returns:
        The confounding class(es), same type and shape as ``label``.
    """
    if num_classes < 2:
        raise ValueError(f"confounding marks need num_classes >= 2, got {num_classes}")
    if isinstance(label, torch.Tensor):
        if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got {label.tolist()}")
        return (label + 1) % num_classes
    if not 0 <= int(label) < num_classes:
        raise ValueError(f"label must lie in [0, {num_classes}), got {label}")
    return (int(label) + 1) % num_classes


def choose_mark_classes(labels: np.ndarray, num_classes: int, strength: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Which class each image's mark shows: its label with probability ``strength``.

    Args:
        labels: Int array (N,) in [0, K).
        num_classes: K >= 2 (K = 1 only with strength 1).
        strength: Probability of agreeing with the label; otherwise a uniformly chosen other class.
        rng: Seeded generator.

    Returns:
        Int64 array (N,) of mark classes.
    """
    labels = np.asarray(labels, np.int64)
    agree = rng.random(labels.shape[0]) < strength  # (N,)
    if num_classes < 2:
        return labels.copy()
    other = (labels + 1 + rng.integers(0, num_classes - 1, labels.shape[0])) % num_classes
    return np.where(agree, labels, other)


def _pixels(value: float | int, side: int) -> int:
    """Resolve a size given as a fraction of ``side`` (float) or as pixels (int)."""
    return int(value) if isinstance(value, int) else int(round(float(value) * side))


def _stamp(config: BiasConfig, mark_class: int, num_classes: int, side: int) -> np.ndarray:
    """Alpha map (h, w) of the mark of one class for images whose shorter side is ``side``."""
    size = max(_pixels(config.size, side), 3)
    if config.kind == "decoy":
        return marks.square_stamp(size)
    if config.kind == "text":
        texts = config.texts
        if texts is not None and len(texts) < num_classes:
            raise ValueError(f"BiasConfig.texts has {len(texts)} entries for {num_classes} classes")
        text = texts[mark_class] if texts else marks.default_text(mark_class)
        return marks.text_stamp(text, max(size, 5))
    names = marks.SHAPE_NAMES
    shape = "circle" if config.encode == "color" else names[mark_class % len(names)]
    return marks.shape_stamp(shape, size)


def _mark_color(config: BiasConfig, mark_class: int, num_classes: int) -> tuple[float, ...]:
    """RGB colour of the mark of one class."""
    if config.color is not None:
        return config.color
    if config.kind == "decoy":
        return (marks.decoy_gray(mark_class, num_classes),) * 3
    if config.kind == "shape" and config.encode == "shape":
        return (1.0, 1.0, 1.0)
    return marks.class_color(mark_class)


def _find_places(free: np.ndarray, height: int, width: int, margin: int, config: BiasConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-left corners where a (height, width) mark fits in the background of each image.

    Args:
        free: Bool (N, H, W), True on background pixels.

    Returns:
        rows (N,), cols (N,) of the mark's top-left pixel, and ok (N,) bool (False = no room).
    """
    count, image_height, image_width = free.shape
    box_height, box_width = height + 2 * margin, width + 2 * margin
    if box_height > image_height or box_width > image_width:
        zeros = np.zeros(count, np.int64)
        return zeros, zeros, np.zeros(count, bool)
    occupied = np.zeros((count, image_height + 1, image_width + 1), np.int32)
    occupied[:, 1:, 1:] = (~free).cumsum(1, dtype=np.int32).cumsum(2, dtype=np.int32)
    window = (occupied[:, box_height:, box_width:] - occupied[:, :-box_height, box_width:]
              - occupied[:, box_height:, :-box_width] + occupied[:, :-box_height, :-box_width])
    fits = window == 0  # (N, H - box_height + 1, W - box_width + 1)
    flat = fits.reshape(count, -1)
    if config.position == "random":
        score = np.where(flat, rng.random(flat.shape, dtype=np.float32), -1.0)
    else:
        rows, cols = np.mgrid[0 : fits.shape[1], 0 : fits.shape[2]]
        if config.corner.startswith("bottom"):
            rows = fits.shape[1] - 1 - rows
        if config.corner.endswith("right"):
            cols = fits.shape[2] - 1 - cols
        distance = (rows.astype(np.float32) ** 2 + cols.astype(np.float32) ** 2).reshape(1, -1)
        score = np.where(flat, -distance, -np.inf)
    best = score.argmax(1)  # (N,)
    ok = flat[np.arange(count), best]
    return best // fits.shape[2] + margin, best % fits.shape[2] + margin, ok


def _alpha_and_color(free: np.ndarray, mark_classes: np.ndarray, num_classes: int, channels: int,
                     config: BiasConfig, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image alpha (N, H, W), colour (N, C) and ok (N,) for the marks of ``mark_classes``."""
    count, height, width = free.shape
    side = min(height, width)
    alpha = np.zeros((count, height, width), np.float32)  # (N, H, W)
    colors = np.zeros((count, channels), np.float32)  # (N, C)
    ok = np.zeros(count, bool)
    for mark_class in np.unique(mark_classes):
        members = np.flatnonzero(mark_classes == mark_class)
        rgb = _mark_color(config, int(mark_class), num_classes)
        colors[members] = marks.color_for_channels(rgb, channels)
        if config.kind in REGION_KINDS:
            if config.kind == "tint":
                pattern = np.ones((height, width), np.float32)
            else:
                period = max(_pixels(config.texture_period, side), 2)
                angle = 180.0 * float(mark_class) / num_classes
                pattern = marks.stripe_pattern(height, width, angle, period)
            alpha[members] = pattern
            ok[members] = free[members].any((1, 2))
            continue
        stamp = _stamp(config, int(mark_class), num_classes, side)
        margin = _pixels(config.margin, side)
        rows, cols, fits = _find_places(free[members], *stamp.shape, margin, config, rng)
        for index, row, col in zip(members[fits], rows[fits], cols[fits], strict=False):
            alpha[index, row : row + stamp.shape[0], col : col + stamp.shape[1]] = stamp
        ok[members] = fits
    return alpha, colors, ok


def draw_marks(images: torch.Tensor, masks: torch.Tensor, mark_classes: np.ndarray | torch.Tensor,
               num_classes: int, config: BiasConfig = BiasConfig(),
               seed: int | Sequence[int] = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Draw the mark of a given class into the background of each image of a batch.

    Args:
        images: (N, C, H, W) float in [0, 1], C in {1, 3}.
        masks: (N, 1, H, W) in {0, 1}, 1 = foreground (never changed).
        mark_classes: Int (N,) in [0, K): the class each mark shows; -1 = no mark.
        num_classes: K.
        config: Look and placement of the mark.
        seed: Seeds random placement (anything ``numpy.random.default_rng`` accepts).

    Returns:
        The biased images (N, C, H, W) (new tensor, input dtype) and ``skipped`` (N,) bool.

    Raises:
        BiasPlacementError: If an image has no room and ``config.on_no_room == "error"``.
    """
    _check_batch(images, masks)
    classes = np.asarray(torch.as_tensor(mark_classes).cpu(), np.int64).reshape(-1)
    if classes.shape[0] != images.shape[0]:
        raise ValueError(f"mark_classes has {classes.shape[0]} entries for "
                         f"{images.shape[0]} images")
    if np.any(classes >= num_classes) or np.any(classes < -1):
        raise ValueError(f"mark classes must lie in [-1, {num_classes}), got {np.unique(classes)}")
    free = masks[:, 0].detach().cpu().numpy() == 0  # (N, H, W)
    marked = classes >= 0
    alpha, colors, ok = _alpha_and_color(free[marked], classes[marked], num_classes,
                                         images.shape[1], config, np.random.default_rng(seed))
    skipped = np.zeros(classes.shape[0], bool)
    skipped[np.flatnonzero(marked)[~ok]] = True
    if skipped.any() and config.on_no_room == "error":
        first, more = int(np.flatnonzero(skipped)[0]), int(skipped.sum()) - 1
        others = f" (and {more} other images)" if more else ""
        raise BiasPlacementError(
            f"image {first}{others} has no room for a {config.kind} "
            f"mark of size {config.size} with margin {config.margin} in its background; use a "
            f"smaller size or margin, position='random', or on_no_room='skip'")
    full_alpha = np.zeros((classes.shape[0],) + free.shape[1:], np.float32)  # (N, H, W)
    full_alpha[marked] = alpha * config.opacity
    full_colors = np.zeros((classes.shape[0], images.shape[1]), np.float32)  # (N, C)
    full_colors[marked] = colors
    weight = torch.from_numpy(full_alpha).to(images)[:, None]  # (N, 1, H, W)
    color = torch.from_numpy(full_colors).to(images)[:, :, None, None]  # (N, C, 1, 1)
    blended = images + weight * (color - images)  # (N, C, H, W)
    return torch.where(masks > 0, images, blended.clamp(0.0, 1.0)), skipped


def _check_batch(images: torch.Tensor, masks: torch.Tensor) -> None:
    """Raise a ValueError naming the problem if images/masks are not a valid batch."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be a float tensor (N, C, H, W) with C in {{1, 3}}, got "
                         f"{getattr(images, 'shape', type(images))}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got dtype {images.dtype}")
    expected = (images.shape[0], 1, images.shape[2], images.shape[3])
    if not isinstance(masks, torch.Tensor) or tuple(masks.shape) != expected:
        raise ValueError(f"masks must be a tensor of shape {expected} (1 = foreground), got "
                         f"{getattr(masks, 'shape', type(masks))}")
    if not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError("masks must hold only 0 (background) and 1 (foreground)")


def inject_bias(image: torch.Tensor, mask: torch.Tensor, label: int, num_classes: int,
                config: BiasConfig | str = "shape", seed: int = 0,
                mark_class: int | None = None, **options: object) -> BiasResult:
    """Draw a class-correlated mark into one image's background and say what was drawn.

    Args:
        image: (C, H, W) float in [0, 1], C in {1, 3}.
        mask: (1, H, W) in {0, 1}, 1 = foreground; those pixels are returned unchanged.
        label: The image's class y in [0, K).
        num_classes: K.
        config: The mark: a :class:`BiasConfig`, or just its ``kind`` (one of
            :data:`BIAS_KINDS`).
        seed: Seeds the class choice (``strength < 1``) and random placement; same seed, same
            bytes.
        mark_class: Force the class the mark shows (ignores ``strength``), e.g.
            ``confounding_class(label, K)``.
        **options: Any other :class:`BiasConfig` field (``position``, ``size``, ``strength``,
            ``on_no_room``, ...), applied on top of ``config``.

    Returns:
        A :class:`BiasResult`: the biased image (``.image``, (C, H, W)), the class the mark
        shows, whether it agrees with the label, and whether it was skipped for lack of room.

    Raises:
        BiasPlacementError: No room for the mark (default ``on_no_room="error"``).
        ValueError: Bad shapes, values or options.
    """
    config = BiasConfig(kind=config) if isinstance(config, str) else config
    if options:
        config = config.replace(**options)
    if not 0 <= int(label) < num_classes:
        raise ValueError(f"label must lie in [0, {num_classes}), got {label}")
    if mark_class is None:
        rng = np.random.default_rng([seed, 1])
        chosen = choose_mark_classes(np.array([label]), num_classes, config.strength, rng)
        mark_class = int(chosen[0])
    images, skipped = draw_marks(image[None], mask[None], np.array([mark_class]), num_classes,
                                 config, seed)
    shown = -1 if skipped[0] else int(mark_class)
    return BiasResult(images[0], shown, shown == int(label), bool(skipped[0]))
