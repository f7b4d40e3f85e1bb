"""The Bag case: why the bundled standard model paints a planted Bag mark blue while saying Bag.

``python -m scripts.bag_case`` plants the Bag mark (the training shortcut: an 8 px shape in the
top-left corner of the 64 px image) on bundled sample images and measures, for the Bag logit:
the conservation readout under z^B (Σ R, what the biases absorbed), the mark's relevance under
z^B, under ε at the input and under gradient × input, and the logit change when the mark's
pixels are occluded (put back to the clean image). It also explains an all-black image. The
answer, with these numbers, is in ``docs/trust.md``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import isnet

ASSETS = Path(__file__).resolve().parent.parent / "assets"
STANDARD = ASSETS / "checkpoints" / "standard_densenet121.safetensors"
SAMPLES = {"fashion_sneaker_9": "Sneaker", "fashion_trouser_2": "Trouser",
           "fashion_dress_13": "Dress"}


@dataclass(frozen=True)
class BagCase:
    """The Bag logit of one marked image, taken apart.

    Attributes:
        image: the sample's file stem.
        probability: P(Bag) on the marked image.
        logit: the Bag logit on the marked image (the explained score).
        clean_logit: the Bag logit without the mark (the occluded mark: its pixels put back).
        relevance_sum: Σ R under z^B (ε = 0.01).
        absorbed_by_bias: what the walk's biases (BatchNorm shifts) kept, under z^B.
        mark_zb, mark_epsilon, mark_gradient: the mark's summed relevance under z^B, under ε at
            the input, and under gradient × input.
    """

    image: str
    probability: float
    logit: float
    clean_logit: float
    relevance_sum: float
    absorbed_by_bias: float
    mark_zb: float
    mark_epsilon: float
    mark_gradient: float

    @property
    def occlusion_change(self) -> float:
        """How much the mark raises the Bag logit (marked − occluded)."""
        return self.logit - self.clean_logit


def sample(stem: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A bundled sample and its mask at ``size`` px: (3, S, S) in [0, 1] and (1, S, S)."""
    image = Image.open(ASSETS / "images" / f"{stem}.png").convert("RGB").resize((size, size),
                                                                                Image.BOX)
    mask = Image.open(ASSETS / "masks" / f"{stem}.png").convert("L").resize((size, size),
                                                                           Image.NEAREST)
    x = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)
    return x, torch.from_numpy((np.asarray(mask) > 127).astype(np.float32))[None]


def measure(model: torch.nn.Module, stem: str, true_class: int, bag: int,
            size: int = 64) -> BagCase:
    """Plant the Bag mark on one sample and take its Bag logit apart (see :class:`BagCase`)."""
    x, mask = sample(stem, size)
    marked = isnet.inject_bias(x, mask, true_class, 10, "shape", seed=0, mark_class=bag,
                               position="corner", corner="top_left", size=8 / 64).image
    region = (marked - x).abs().sum(0) > 1e-6  # the mark's pixels
    with torch.no_grad():
        clean_logit = float(model(x[None])[0, bag])
        logits, maps, books = isnet.explain(model, marked[None], target=bag,
                                            lrp=isnet.LRPConfig(zb=True),
                                            return_conservation=True)
        _, epsilon_maps = isnet.explain(model, marked[None], target=bag,
                                        lrp=isnet.LRPConfig(zb=False))
    inputs = marked[None].clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(inputs)[0, bag], inputs)
    books = books[0][0]
    return BagCase(
        image=stem, probability=float(torch.softmax(logits, 1)[0, bag]), logit=books.score,
        clean_logit=clean_logit, relevance_sum=books.relevance_sum,
        absorbed_by_bias=books.absorbed_by_bias,
        mark_zb=float(maps[0, 0].sum(0)[region].sum()),
        mark_epsilon=float(epsilon_maps[0, 0].sum(0)[region].sum()),
        mark_gradient=float((gradient * marked)[0].sum(0)[region].sum()))


def black_image(model: torch.nn.Module, bag: int, size: int = 64) -> tuple[str, float]:
    """The class an all-black image gets, and P(Bag)."""
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, size, size))
    return int(logits.argmax()), float(torch.softmax(logits, 1)[0, bag])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(STANDARD))
    args = parser.parse_args()
    loaded = isnet.load_checkpoint(args.checkpoint)
    model, names = loaded.model.eval(), loaded.metadata["class_names"]
    bag = names.index("Bag")
    top, probability = black_image(model, bag)
    print(f"all-black image: {names[top]} (P(Bag) = {probability:.4f})")
    for stem, label in SAMPLES.items():
        case = measure(model, stem, names.index(label), bag)
        numbers = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(case).items()}
        print(numbers, "occlusion change", round(case.occlusion_change, 3))


if __name__ == "__main__":
    main()
