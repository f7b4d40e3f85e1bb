"""The smallest model family: conv → ReLU → strided conv → ReLU → global average → linear.

In the project this file would be ``isnet/models/plain_cnn.py`` (imported by
``isnet/models/__init__.py``); its walk is ``plain_cnn_walk.py`` beside it
(``isnet/lrp/plain_cnn.py``). See ``docs/how-to/add-a-model-family.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from isnet.models.registry import Family, register_family, register_model


@dataclass
class PlainTrace:
    """Every activation the walk reads (owned by the caller; no hooks, no globals).

    Shapes: inputs (B, C, H, W); stem_conv, stem_relu (B, W0, H, W); body_conv, body_relu
    (B, 2·W0, H/2, W/2); pooled (B, 2·W0) = the classifier's input; logits (B, K).
    """

    inputs: Tensor
    stem_conv: Tensor
    stem_relu: Tensor
    body_conv: Tensor
    body_relu: Tensor
    pooled: Tensor
    logits: Tensor


class PlainCNN(nn.Module):
    """Two convolutions and a linear classifier, LRP-ready.

    Args:
        width: channels of the first convolution (W0); the second has 2·W0.
        num_classes: number of logits K.
        in_channels: image channels C.
    """

    def __init__(self, width: int = 16, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.arch = dict(width=width, num_classes=num_classes, in_channels=in_channels)
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.stem_relu = nn.ReLU()  # one module per activation, never in place
        self.body = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.body_relu = nn.ReLU()
        self.head = nn.Linear(2 * width, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def classifier_layer(self) -> nn.Linear:
        """The last linear layer (where every LRP walk starts)."""
        return self.head

    def forward(self, x: Tensor) -> Tensor:
        """Plain inference: (B, C, H, W) → logits (B, K)."""
        return self.forward_trace(x)[0]

    def forward_trace(self, x: Tensor) -> tuple[Tensor, PlainTrace]:
        """The same function as :meth:`forward`, also returning what the walk reads."""
        stem_conv = self.stem(x)
        stem_relu = self.stem_relu(stem_conv)
        body_conv = self.body(stem_relu)
        body_relu = self.body_relu(body_conv)
        pooled = body_relu.mean((2, 3))  # (B, 2·W0): global average pooling
        logits = self.head(pooled)  # (B, K)
        return logits, PlainTrace(x, stem_conv, stem_relu, body_conv, body_relu, pooled, logits)


def architecture_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor arguments of the :class:`PlainCNN` whose weights ``state`` holds.

    Raises:
        KeyError: a key is missing. ValueError: the shapes are not a PlainCNN's.
    """
    width, in_channels = state["stem.weight"].shape[:2]
    if tuple(state["body.weight"].shape) != (2 * width, width, 3, 3):
        raise ValueError(f"body.weight should be ({2 * width}, {width}, 3, 3), got "
                         f"{tuple(state['body.weight'].shape)}")
    return dict(width=int(width), num_classes=int(state["head.weight"].shape[0]),
                in_channels=int(in_channels))


register_family(Family(name="plain_cnn", model_class=PlainCNN,
                       architecture_from_state_dict=architecture_from_state_dict,
                       signature_keys=("stem.weight", "body.weight", "head.weight")))


def tiny_plain_cnn(num_classes: int = 10, **overrides: Any) -> PlainCNN:
    """The family's tiny model (4 channels), for tests: ``tiny_<family>`` by convention."""
    return PlainCNN(**{"width": 4, **overrides, "num_classes": num_classes})


register_model("plain_cnn", "plain_cnn", lambda num_classes=10, **o: PlainCNN(
    num_classes=num_classes, **o))
register_model("tiny_plain_cnn", "plain_cnn", tiny_plain_cnn)

if __name__ == "__main__":  # a quick look: python docs/how-to/examples/plain_cnn.py
    model = tiny_plain_cnn(num_classes=3)
    print(model(torch.rand(2, 3, 32, 32)).shape)  # torch.Size([2, 3])
