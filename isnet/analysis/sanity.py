"""Sanity checks for maps (Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018).

* :func:`untrained_signs`: reasons to believe a network was never trained: every BatchNorm
  still holds its initial running statistics (mean 0, variance 1) and affine parameters
  (scale 1, shift 0). A random network explains with neat edge-detector maps; this flag says so
  before the first map is believed.
* :func:`model_randomisation`: the *cascading model-randomisation test*: re-initialise the
  weighted layers from the top (the classifier) down, stage by stage, recompute the map of one
  image at each stage and compare it with the original map by the Spearman rank correlation of
  ``|R|`` and the SSIM of the normalised ``|R|`` maps. Maps that depend on the learned weights
  lose their similarity quickly; maps that stay alike are explaining the image, not the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor, nn

import isnet
from isnet.lrp.config import LRPConfig

_WEIGHTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def untrained_signs(model: nn.Module) -> list[str]:
    """Why ``model`` looks untrained (empty when it does not).

    Raised when the network has BatchNorms and every one of them still holds its initial
    running statistics (mean 0, variance 1), or every one its initial scale 1 and shift 0.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return []
    signs = []
    if all(m.running_mean is not None and m.running_var is not None
           and bool(torch.all(m.running_mean == 0)) and bool(torch.all(m.running_var == 1))
           for m in norms):
        signs.append(f"all {len(norms)} BatchNorms hold their initial statistics (mean 0, "
                     "variance 1): the network has never seen data")
    if all(m.weight is not None and bool(torch.all(m.weight == 1)) and bool(torch.all(m.bias == 0))
           for m in norms):
        signs.append(f"all {len(norms)} BatchNorms hold their initial scale 1 and shift 0")
    return signs


def randomisation_stages(model: nn.Module, stages: int = 5) -> list[list[str]]:
    """The weighted layers (conv, linear, BatchNorm) by name, grouped into ``stages`` cascade
    steps from the top (the output side) down: stage 1 holds the last layers."""
    names = [name for name, module in model.named_modules() if isinstance(module, _WEIGHTED)]
    top_down = list(reversed(names))
    groups = np.array_split(np.arange(len(top_down)), min(stages, len(top_down)))
    return [[top_down[i] for i in group] for group in groups]


def spearman(first: Tensor, second: Tensor) -> float:
    """Spearman rank correlation of two maps (ranks by sort order; ties broken by position)."""
    ranks = [torch.empty_like(m.flatten().double()).scatter_(
        0, m.flatten().argsort(), torch.arange(m.numel(), dtype=torch.float64))
        for m in (first, second)]
    a, b = (r - r.mean() for r in ranks)
    return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))


def ssim(first: Tensor, second: Tensor) -> float:
    """SSIM of two maps, each scaled to [0, 1] by its own maximum (scikit-image)."""
    a, b = (m.double() / m.abs().max().clamp(min=1e-12) for m in (first, second))
    return float(structural_similarity(a.numpy(), b.numpy(), data_range=1.0))


@dataclass(frozen=True)
class RandomisationStage:
    """One step of the cascade: which layers are random so far, and how alike the map is.

    Attributes:
        stage: 0 (the trained model) to the number of stages.
        layers: the layers re-initialised at this step (top-down order).
        spearman: rank correlation of ``|R|`` with the trained model's map.
        ssim: SSIM of the normalised ``|R|`` maps.
    """

    stage: int
    layers: tuple[str, ...]
    spearman: float
    ssim: float


def model_randomisation(model: nn.Module, x: Tensor, target: int | None = None,
                        lrp: LRPConfig | None = None, stages: int = 5,
                        seed: int = 0) -> list[RandomisationStage]:
    """The cascading model-randomisation test on one image (the model itself is not changed).

    Args:
        model: an LRP-ready network (explained in eval mode).
        x: one image (1, C, H, W) as the model expects it.
        target: the class to explain (None: the trained model's top class, kept for all stages).
        lrp: LRP settings. stages: cascade steps. seed: seeds the re-initialisation.

    Returns:
        stage 0 (similarity 1) then one entry per stage, top-down.
    """
    work = copy.deepcopy(model).eval()
    modules = dict(work.named_modules())

    def relevance() -> Tensor:
        with torch.no_grad():
            maps = isnet.explain(work, x, target=target, lrp=lrp)[1]  # (1, 1, C, H, W)
        return maps[0, 0].abs().sum(0)  # (H, W)

    if target is None:
        with torch.no_grad():
            target = int(work(x).argmax())
    original = relevance()
    results = [RandomisationStage(0, (), spearman(original, original), ssim(original, original))]
    torch.manual_seed(seed)
    for number, layers in enumerate(randomisation_stages(work, stages), start=1):
        for name in layers:
            module = modules[name]
            module.reset_parameters()
            if isinstance(module, nn.BatchNorm2d):
                if module.running_mean is not None and module.running_var is not None:
                    module.running_mean.normal_(0, 0.5)  # random statistics, not the identity
                    module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
        current = relevance()
        results.append(RandomisationStage(number, tuple(layers), spearman(original, current),
                                          ssim(original, current)))
    return results
