"""A small Vision Transformer for the arena (family ``"vit"``).

Dosovitskiy et al. (2021): the image is cut into non-overlapping ``patch_size`` patches, each
linearly embedded (a strided convolution), a learned class token and learned position embeddings
are added, ``depth`` pre-norm transformer blocks (multi-head self-attention, then a GELU MLP)
follow, and the class token's final state is classified. The ISNet authors compare with
torchvision's ViT-B/16 at 224 px; ``vit_small`` is sized for the 64 px demo (patch 8 → 64
tokens, width 64, depth 4, 4 heads).

:meth:`VisionTransformer.forward_attention` also returns every block's attention weights, for
attention rollout (:mod:`isnet.training.methods.vit`). The position embeddings fix the image
size: ``image_size`` is a constructor argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from isnet.models.registry import Family, register_family, register_model


class SelfAttention(nn.Module):
    """Multi-head self-attention that also returns its weights.

    Shapes: x (B, T, D) → output (B, T, D), weights (B, heads, T, T) (rows sum to 1).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ViT width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, D/heads)
        scores = query @ key.transpose(-2, -1) / math.sqrt(dim // self.heads)  # (B, h, T, T)
        weights = scores.softmax(-1)
        mixed = (weights @ value).transpose(1, 2).reshape(batch, tokens, dim)  # (B, T, D)
        return self.proj(mixed), weights


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        attended, weights = self.attention(self.norm1(x))
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


class VisionTransformer(nn.Module):
    """A ViT classifier (see the module docstring).

    Args:
        image_size: image side in pixels (fixed by the position embeddings).
        patch_size: patch side; must divide ``image_size``.
        dim: token width D.
        depth: number of transformer blocks.
        heads: attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of D.
        num_classes: number of logits K.
        in_channels: image channels.
    """

    def __init__(self, image_size: int = 64, patch_size: int = 8, dim: int = 64, depth: int = 4,
                 heads: int = 4, mlp_ratio: int = 2, num_classes: int = 10,
                 in_channels: int = 3) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch size {patch_size} must divide the image size {image_size}")
        self.arch = dict(image_size=image_size, patch_size=patch_size, dim=dim, depth=depth,
                         heads=heads, mlp_ratio=mlp_ratio, num_classes=num_classes,
                         in_channels=in_channels)
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 1 + self.grid ** 2, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward_attention(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and each block's attention weights.

        Shapes: x (B, C, H, W) → logits (B, K), weights: depth × (B, heads, T, T) with
        T = 1 + (H / patch)², token 0 = the class token.
        """
        side = self.arch["image_size"]
        if tuple(x.shape[-2:]) != (side, side):
            raise ValueError(f"this ViT takes {side}×{side} images (its position embeddings), "
                             f"got {tuple(x.shape[-2:])}; build it with image_size=")
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1) + self.pos_embed
        weights = []
        for block in self.blocks:
            tokens, attention = block(tokens)
            weights.append(attention)
        return self.head(self.norm(tokens[:, 0])), weights

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, K) for images (B, C, H, W)."""
        return self.forward_attention(x)[0]


def architecture_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor arguments from ViT weights. Heads cannot be read from weights: D / 16 is
    assumed (our own checkpoints store the true value in their metadata)."""
    embed = state["patch_embed.weight"]  # (D, C, p, p)
    dim, patch = int(embed.shape[0]), int(embed.shape[-1])
    grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    depth = len({m.group(1) for key in state if (m := re.match(r"blocks\.(\d+)\.", key))})
    hidden = int(state["blocks.0.mlp.0.weight"].shape[0])
    return dict(image_size=grid * patch, patch_size=patch, dim=dim, depth=depth,
                heads=max(1, dim // 16), mlp_ratio=hidden // dim,
                num_classes=int(state["head.weight"].shape[0]), in_channels=int(embed.shape[1]))


register_family(Family(
    name="vit", model_class=VisionTransformer,
    architecture_from_state_dict=architecture_from_state_dict,
    signature_keys=("patch_embed.weight", "cls_token", "pos_embed", "head.weight"),
    guessed_keys=("heads",)))

_SIZES = {"vit_small": dict(image_size=64, patch_size=8, dim=64, depth=4, heads=4),
          "tiny_vit": dict(image_size=32, patch_size=8, dim=16, depth=1, heads=2)}


def _factory(name: str) -> None:
    def build(num_classes: int = 10, **overrides: Any) -> VisionTransformer:
        return VisionTransformer(**{**_SIZES[name], "num_classes": num_classes, **overrides})

    build.__name__ = name
    build.__doc__ = f"ViT {_SIZES[name]}, randomly initialised."
    register_model(name, "vit", build)


_factory("vit_small")
_factory("tiny_vit")
