"""Independent references for the family tests: gradient×input and zennit on torchvision models."""

from __future__ import annotations

import torch

import isnet


def gradient_times_input(model: torch.nn.Module, x: torch.Tensor,
                         classes: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W): d logit_c / d x · x, per sample."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), x)
    return grad * x


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def not_in_place(model: torch.nn.Module) -> torch.nn.Module:
    """torchvision's ReLUs are in place; zennit's hooks need separate outputs."""
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return model


def exact_merge(model: torch.nn.Module) -> torch.nn.Module:
    """Move each BatchNorm's ε into its running variance (same function).

    zennit's ``MergeBatchNorm`` folds ``γ/√(var + ε)`` into the conv, then leaves the BatchNorm
    computing ``x/√(1 + ε)`` instead of the identity, a 5e-6 relative change per BatchNorm
    (measured: 3e-5 relative difference in a ResNet-18's heatmap with every stabiliser at 1e-12).
    With ε moved into the variance the merged BatchNorm is exactly the identity.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.add_(module.eps)
            module.eps = 0.0
    return model


def zennit_relevance(torchvision_model: torch.nn.Module, canonizer, x: torch.Tensor,
                     classes: torch.Tensor, epsilon: float, zb: bool, low=0.0,
                     high=1.0) -> torch.Tensor:
    """zennit's ε composite (every stabiliser = ε) with z^B (or ε) at the first conv.

    The layer map is zennit's base map (ReLU: pass; Sum and average pooling: ``Norm``, i.e. ε
    without parameters; BatchNorm: pass after the canonizer merged it) plus ε for every
    convolution and linear layer. Max pooling has no rule: its gradient is winner-take-all with
    overlapping windows summed, as ours.
    """
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Epsilon, Norm, Pass, ZBox
    from zennit.types import Activation, AvgPool, BatchNorm, Convolution

    layer_map = [(Activation, Pass()), (Sum, Norm(stabilizer=epsilon)),
                 (AvgPool, Norm(stabilizer=epsilon)), (BatchNorm, Pass()),
                 (Convolution, Epsilon(epsilon=epsilon)), (torch.nn.Linear, Epsilon(epsilon))]
    first = ZBox(low=low, high=high, stabilizer=epsilon) if zb else Epsilon(epsilon=epsilon)
    composite = SpecialFirstLayerMapComposite(layer_map=layer_map,
                                              first_map=[(Convolution, first)],
                                              canonizers=[canonizer])
    model = exact_merge(not_in_place(torchvision_model)).eval()
    with torch.no_grad():
        logits = model(x)
    start = torch.nn.functional.one_hot(classes, logits.shape[1]).to(x.dtype) * logits
    with Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x.clone(), start)
    return relevance


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()


def zero_biases(model: torch.nn.Module) -> torch.nn.Module:
    """Every bias, BatchNorm shift and running mean zero: a bias-free network."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.bias.data.zero_()
            module.running_mean.zero_()
        elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.bias is not None:
            module.bias.data.zero_()
    return model


def every_parameter_gets_a_gradient(model: torch.nn.Module, images: torch.Tensor,
                                    masks: torch.Tensor, mode: str, training: bool) -> None:
    """The heatmap loss alone reaches every parameter (asserted)."""
    model.train(training)
    net = isnet.ISNet(model, explain=mode)
    target = torch.arange(images.shape[0]) % model.num_classes if mode == "target" else None
    _, heatmaps = net(images, target)
    isnet.heatmap_loss(heatmaps, masks).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
