"""BiasConfig: what the background shortcut looks like and how strongly it follows the label.

The drawing itself is in :mod:`isnet.data.bias.inject` (and :mod:`isnet.data.bias.marks`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from isnet.data.bias import marks

BIAS_KINDS: tuple[str, ...] = ("shape", "decoy", "text", "tint", "texture")
CORNERS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")
REGION_KINDS = ("tint", "texture")


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
            marks.color_for_channels(self.color, 3)  # raises on a bad colour
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
