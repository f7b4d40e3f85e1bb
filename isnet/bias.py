"""Synthetic background bias: a class-correlated mark drawn only outside the foreground mask.

ISNet's experiments plant a *shortcut* in the background of every training image: a small mark
that predicts the class in training and lies at test time (biased, unbiased and confounding
test sets; see :mod:`isnet.splits`). This module draws that mark.

Guarantee: **no foreground pixel ever changes**. The blend is computed only where ``mask == 0``
and the result is taken from the input wherever ``mask == 1``, bit for bit.

Kinds (what encodes the class; drawings in :mod:`isnet.bias_marks`):

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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from isnet import bias_marks

BIAS_KINDS: tuple[str, ...] = ("shape", "decoy", "text", "tint", "texture")
CORNERS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")
_REGION_KINDS = ("tint", "texture")


class BiasPlacementError(ValueError):
    """The background of an image has no room for the requested mark."""


@dataclass(frozen=True)
class BiasConfig:
    """How the background shortcut looks and how strongly it follows the label.

    Sizes given as a ``float`` are fractions of the shorter image side; an ``int`` is pixels.

    Attributes:
        kind: One of :data:`BIAS_KINDS`.
        position: ``"corner"`` (nearest the background allows to ``corner``) or ``"random"``.
        corner: One of :data:`CORNERS`, used when ``position == "corner"``.
        size: Height of the mark (shape, decoy side, text height). Default 0.15 of the side.
        margin: Free background required around the mark and to the image border.
        color: RGB in [0, 1] for every class, or None for the class colour (decoy: grey level).
        opacity: Blend weight of the mark in [0, 1]; 1 replaces the background pixels.
        strength: Probability that the mark shows the image's own class (1 = always); otherwise
            it shows another class, uniformly chosen.
        encode: For ``"shape"``: ``"both"`` (type and colour), ``"shape"`` (type only, colour
            fixed to ``color`` or white) or ``"color"`` (colour only, always a circle).
        texts: One string per class for ``"text"`` (default letters A, B, C, ...).
        texture_period: Stripe period for ``"texture"``.
        on_no_room: ``"error"`` raises :class:`BiasPlacementError`; ``"skip"`` leaves the image
            unchanged and reports it as skipped.
    """

    kind: str = "shape"
    position: str = "corner"
    corner: str = "top_left"
    size: float | int = 0.15
    margin: float | int = 1
    color: tuple[float, float, float] | None = None
    opacity: float = 1.0
    strength: float = 1.0
    encode: str = "both"
    texts: tuple[str, ...] | None = None
    texture_period: float | int = 0.125
    on_no_room: str = "error"

    def __post_init__(self) -> None:
        """Check every field and fail with a message that says how to fix it."""
        choices = {
            "kind": BIAS_KINDS,
            "position": ("corner", "random"),
            "corner": CORNERS,
            "encode": ("both", "shape", "color"),
            "on_no_room": ("error", "skip"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"BiasConfig.{name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        for name in ("opacity", "strength"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"BiasConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("size", "margin", "texture_period"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"BiasConfig.{name} must be a float fraction of the image side "
                                 f"or an int number of pixels >= 0, got {value!r}")
        if self.color is not None:
            bias_marks.color_for_channels(self.color, 3)  # raises on a bad colour
            object.__setattr__(self, "color", tuple(float(v) for v in self.color))
        if self.texts is not None and (not self.texts or not all(isinstance(t, str) and t
                                                                 for t in self.texts)):
            raise ValueError(f"BiasConfig.texts must be non-empty strings, one per class, "
                             f"got {self.texts!r}")
        if self.texts is not None:
            object.__setattr__(self, "texts", tuple(self.texts))

    def replace(self, **changes: object) -> BiasConfig:
        """A copy with some fields changed (``dataclasses.replace``; unknown names raise)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown BiasConfig option(s) {unknown}; valid options are "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class BiasResult:
    """One biased image and what was drawn on it.

    Attributes:
        image: The image (C, H, W), same dtype as the input; unchanged when ``skipped``.
        mark_class: Class the mark shows, or -1 when skipped.
        agrees: Whether ``mark_class`` equals the label.
        skipped: True when the background had no room (only with ``on_no_room="skip"``).
    """

    image: torch.Tensor
    mark_class: int
    agrees: bool
    skipped: bool


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
        return bias_marks.square_stamp(size)
    if config.kind == "text":
        texts = config.texts
        if texts is not None and len(texts) < num_classes:
            raise ValueError(f"BiasConfig.texts has {len(texts)} entries for {num_classes} classes")
        text = texts[mark_class] if texts else bias_marks.default_text(mark_class)
        return bias_marks.text_stamp(text, max(size, 5))
    names = bias_marks.SHAPE_NAMES
    shape = "circle" if config.encode == "color" else names[mark_class % len(names)]
    return bias_marks.shape_stamp(shape, size)


def _mark_color(config: BiasConfig, mark_class: int, num_classes: int) -> tuple[float, ...]:
    """RGB colour of the mark of one class."""
    if config.color is not None:
        return config.color
    if config.kind == "decoy":
        return (bias_marks.decoy_gray(mark_class, num_classes),) * 3
    if config.kind == "shape" and config.encode == "shape":
        return (1.0, 1.0, 1.0)
    return bias_marks.class_color(mark_class)


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
        colors[members] = bias_marks.color_for_channels(rgb, channels)
        if config.kind in _REGION_KINDS:
            if config.kind == "tint":
                pattern = np.ones((height, width), np.float32)
            else:
                period = max(_pixels(config.texture_period, side), 2)
                angle = 180.0 * float(mark_class) / num_classes
                pattern = bias_marks.stripe_pattern(height, width, angle, period)
            alpha[members] = pattern
            ok[members] = free[members].any((1, 2))
            continue
        stamp = _stamp(config, int(mark_class), num_classes, side)
        margin = _pixels(config.margin, side)
        rows, cols, fits = _find_places(free[members], *stamp.shape, margin, config, rng)
        for index, row, col in zip(members[fits], rows[fits], cols[fits]):
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


def apply_bias(image: torch.Tensor, mask: torch.Tensor, label: int, num_classes: int,
               config: BiasConfig = BiasConfig(), seed: int = 0,
               mark_class: int | None = None) -> BiasResult:
    """Draw a class-correlated mark into one image's background and say what was drawn.

    Args:
        image: (C, H, W) float in [0, 1].
        mask: (1, H, W) in {0, 1}, 1 = foreground.
        label: The image's class y in [0, K).
        num_classes: K.
        config: The mark (see :class:`BiasConfig`).
        seed: Seeds the class choice (``strength < 1``) and random placement.
        mark_class: Force the class the mark shows (ignores ``strength``), e.g.
            ``confounding_class(label, K)``.

    Returns:
        A :class:`BiasResult`.
    """
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


def inject_bias(image: torch.Tensor, mask: torch.Tensor, label: int, num_classes: int,
                kind: str = "shape", seed: int = 0, **options: object) -> torch.Tensor:
    """Return a copy of ``image`` with a class-correlated mark drawn only in its background.

    Args:
        image: (C, H, W) float in [0, 1], C in {1, 3}.
        mask: (1, H, W) in {0, 1}, 1 = foreground; those pixels are returned unchanged.
        label: The image's class y in [0, K).
        num_classes: K.
        kind: One of :data:`BIAS_KINDS`.
        seed: Same seed, same bytes.
        **options: Any other :class:`BiasConfig` field (``position``, ``size``, ``strength``,
            ``on_no_room``, ...) and ``mark_class`` to force the class shown.

    Returns:
        The biased image (C, H, W). With ``on_no_room="skip"`` and no room, an unchanged copy;
        use :func:`apply_bias` to learn whether that happened.

    Raises:
        BiasPlacementError: No room for the mark (default ``on_no_room="error"``).
        ValueError: Bad shapes, values or options.
    """
    mark_class = options.pop("mark_class", None)
    config = BiasConfig().replace(kind=kind, **options)
    return apply_bias(image, mask, label, num_classes, config, seed, mark_class).image
