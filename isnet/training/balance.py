"""How the classification and heatmap gradients share one clipped step, and the P warm-up.

The ISNet objective is ``(1 − P)·CE + P·L_heatmap``. Its two gradients differ in size by an
order of magnitude: on the bundled recipe (DenseNet121, 64 px, batch 32) the total gradient norm
is 55–77 for the ISNet against 8–13 for cross-entropy alone. Clipping the *sum* to a norm of 1
(``"joint"``, the authors' advice and our 0.1 default) then leaves the classification gradient a
few percent of each step, and the ISNet learns its classes far more slowly than a standard model.

``"separate"`` clips each gradient on its own and adds them:

    g = clip((1 − P)·∇CE, c) + clip(P·∇L_heatmap, c),    clip(v, c) = v·min(1, c / ‖v‖)

so classification always gets a step of up to ``c`` (as in the standard model), and the heatmap
term another. It costs one extra backward pass through the forward graph (not the LRP graph).

The P warm-up (``TrainConfig.heat_warmup_epochs``) raises P linearly from 0 to its value over the
first epochs, step by step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from isnet.loss import LossTerms

GRADIENT_BALANCES: tuple[str, ...] = ("joint", "separate")
"""``"joint"``: clip the summed gradient; ``"separate"``: clip each loss's gradient, then add."""


def heat_weight_at(heat_weight: float, warmup_epochs: int, epoch_progress: float) -> float:
    """P after ``epoch_progress`` epochs (a float, 0 at the first step) of a linear warm-up.

    ``warmup_epochs = 0`` returns ``heat_weight`` at once.
    """
    if warmup_epochs <= 0:
        return heat_weight
    return heat_weight * min(1.0, max(0.0, epoch_progress) / warmup_epochs)


def balanced_backward(terms: LossTerms, heat_weight: float, parameters: list[Tensor],
                      balance: str, max_norm: float | None) -> dict[str, float]:
    """Set ``p.grad`` of every parameter from the loss terms, clipped as ``balance`` says.

    Args:
        terms: the step's losses; ``terms.total`` must equal
            ``(1 − heat_weight)·terms.classification + heat_weight·terms.heatmap``.
        heat_weight: P of this step.
        parameters: the trainable parameters (their ``.grad`` is overwritten).
        balance: one of :data:`GRADIENT_BALANCES`.
        max_norm: the clipping norm c (None = no clipping).

    Returns:
        ``grad_norm`` (of the unclipped total gradient) and, for ``"separate"``,
        ``classification_grad_norm`` and ``heatmap_grad_norm`` (each unclipped, weighted by
        ``1 − P`` and ``P``). Non-finite norms are returned as they are.
    """
    if balance not in GRADIENT_BALANCES:
        raise ValueError(f"gradient balance must be one of {', '.join(GRADIENT_BALANCES)}, got "
                         f"{balance!r}")
    limit = math.inf if max_norm is None else max_norm
    if balance == "joint" or heat_weight == 0.0:
        terms.total.backward()
        used = [p for p in parameters if p.grad is not None]
        return {"grad_norm": float(torch.nn.utils.clip_grad_norm_(used, limit))}
    classification = _gradients((1 - heat_weight) * terms.classification, parameters, True)
    heatmap = _gradients(heat_weight * terms.heatmap, parameters, False)
    norms = {"grad_norm": float(_norm([c + h for c, h in zip(classification, heatmap,
                                                               strict=True)])),
             "classification_grad_norm": float(_norm(classification)),
             "heatmap_grad_norm": float(_norm(heatmap))}
    scale_c = min(1.0, limit / (norms["classification_grad_norm"] + 1e-6))
    scale_h = min(1.0, limit / (norms["heatmap_grad_norm"] + 1e-6))
    for parameter, c, h in zip(parameters, classification, heatmap, strict=True):
        parameter.grad = c * scale_c + h * scale_h
    return norms


def _gradients(loss: Tensor, parameters: list[Tensor], retain: bool) -> list[Tensor]:
    """∂loss/∂p for every parameter (zeros where the loss does not reach it)."""
    found = torch.autograd.grad(loss, parameters, retain_graph=retain, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, found, strict=True)]


def _norm(gradients: list[Tensor]) -> Tensor:
    """Euclidean norm of all gradients together."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients]))
