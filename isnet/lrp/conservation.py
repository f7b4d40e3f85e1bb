"""Where the explained score goes: the conservation ledger of one LRP walk.

LRP redistributes the explained score ``f`` (a logit, or the selective log-odds) layer by layer
down to the pixels. The ε-rule (notation of :mod:`isnet.lrp.rules`) passes on only the part of
each ``z_k = Σ_j a_j w_jk + b_k`` that came from the inputs: of the relevance ``R_k`` at a
layer's output,

    ``R_k · b_k / (z_k + ε·sign(z_k))``     stays with the bias (BatchNorm shift, conv bias),
    ``R_k · ε·sign(z_k) / (z_k + ε·sign(z_k))``  stays with the stabiliser ε,

and the rest reaches the layer's inputs. Pooling (max, average) and ReLUs pass everything on.
At the input layer, z^B's denominator holds the bias term of its convention
(:func:`isnet.lrp.rules.zbox_bias`) and absorbs in the same way. So, for every walk,

    ``f = Σ R(pixels) + absorbed by biases + absorbed by ε (+ start gap)``

where the *start gap* is zero for a logit and, for the selective map, the difference between
the log-odds ``η`` and the relevance the head places on the logit differences
(``Σ_j Z_j softmax_j(−Z)``, see :func:`isnet.lrp.head.selective_messages`).

:class:`BiasLedger` is what a walk fills in, step by step, when :func:`isnet.explain` is called
with ``return_conservation=True``; :class:`Conservation` is the per-map summary the app shows:
``Σ R``, the score, their ratio, and the share of the score the biases absorbed. Recording costs
one extra elementwise pass per step and only happens when asked for (``ledger=None`` skips it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from isnet.lrp.rules import stabilize

CONSERVED_TOLERANCE = 0.05
"""|Σ R − score| above this fraction of |score| counts as *not conserved*: the map then shows
only part of (or more than) the score, and its colours should be read as where the *passed-on*
part of the evidence lies, not as a full account of the score."""


@dataclass
class BiasLedger:
    """What one walk's steps absorbed, per sample and map (filled in by the walks).

    Attributes:
        steps: ``(step name, absorbed by the bias (B, M), absorbed by ε (B, M))`` in the order
            the walk met them (top down).
        score: the explained score per sample and map (B, M): the logit, or the log-odds.
        start: the relevance placed on the outputs (B, M); equals ``score`` except for the
            selective map.
    """

    steps: list[tuple[str, Tensor, Tensor]] = field(default_factory=list)
    score: Tensor | None = None
    start: Tensor | None = None

    def absorb(self, step: str, relevance: Tensor, z: Tensor, bias: Tensor | None,
               epsilon: float) -> None:
        """Record one ε step: relevance ``R`` at the output of a layer with pre-activation
        ``z`` and bias ``b`` keeps ``R·b/stab(z)`` in the bias and ``R·ε·sign(z)/stab(z)`` in ε.

        Shapes: relevance (B, M, C, …); z (B, C, …); bias (C,), broadcastable to z, or None.
        """
        with torch.no_grad():
            z = z.detach()
            ratio = relevance.detach() / stabilize(z, epsilon).unsqueeze(1)  # (B, M, C, …)
            stabiliser = stabilize(z, epsilon) - z  # ε·sign(z), (B, C, …)
            by_epsilon = (ratio * stabiliser.unsqueeze(1)).flatten(2).sum(-1)  # (B, M)
            if bias is None:
                by_bias = torch.zeros_like(by_epsilon)
            else:
                bias = bias.detach()
                if bias.dim() == 1:  # per channel
                    bias = bias.view(1, -1, *([1] * (z.dim() - 2)))
                by_bias = (ratio * bias.unsqueeze(1)).flatten(2).sum(-1)  # (B, M)
            self.steps.append((step, by_bias, by_epsilon))

    def epsilon_step(self, step: str, activation: Tensor, transposed: Tensor, inputs: Tensor,
                     scale: Tensor | None, shift: Tensor | None, epsilon: float,
                     layer: nn.Module | None = None) -> None:
        """Record the step :func:`isnet.lrp.rules.epsilon_message` takes: relevance
        ``activation · transposed`` at ``z = inputs·scale + shift`` (``z = inputs`` without a
        scale). ``layer`` is the convolution or linear layer whose output ``inputs`` is, when
        its own bias is inside ``inputs`` (the fused bias is then ``scale·b + shift``).

        Shapes: activation, inputs (B, C, …); transposed (B, M, C, …); scale, shift (C,).
        """
        view = (1, -1, *([1] * (inputs.dim() - 2)))
        z = inputs if scale is None else inputs * scale.view(view) + (
            0.0 if shift is None else shift.view(view))
        bias = shift
        own = getattr(layer, "bias", None)
        if own is not None:
            bias = own * (1.0 if scale is None else scale) + (0.0 if shift is None else shift)
        self.absorb(step, activation.unsqueeze(1) * transposed, z, bias, epsilon)

    def summary(self, heatmaps: Tensor) -> list[list[Conservation]]:
        """Per sample and map, the :class:`Conservation` of the walk that made ``heatmaps``.

        Shapes: heatmaps (B, M, C, H, W); returns B lists of M.
        """
        if self.score is None or self.start is None:
            raise ValueError("the ledger has no score: fill it through isnet.explain("
                             "..., return_conservation=True)")
        total = heatmaps.detach().flatten(2).sum(-1).double()  # (B, M)
        by_bias = sum((b.double() for _, b, _ in self.steps), torch.zeros_like(total))
        by_epsilon = sum((e.double() for _, _, e in self.steps), torch.zeros_like(total))
        score, start = self.score.detach().double(), self.start.detach().double()
        return [[Conservation(score=float(score[b, m]), relevance_sum=float(total[b, m]),
                              absorbed_by_bias=float(by_bias[b, m]),
                              absorbed_by_epsilon=float(by_epsilon[b, m]),
                              start_gap=float(score[b, m] - start[b, m]),
                              steps=tuple((name, float(bias[b, m]), float(eps[b, m]))
                                          for name, bias, eps in self.steps))
                 for m in range(total.shape[1])] for b in range(total.shape[0])]


@dataclass(frozen=True)
class Conservation:
    """How much of the explained score one heatmap accounts for.

    Attributes:
        score: the explained score ``f`` (the class's logit, or the selective log-odds).
        relevance_sum: ``Σ R`` over the heatmap's pixels and channels.
        absorbed_by_bias: the relevance the walk's biases kept (BatchNorm shifts, conv and
            linear biases, z^B's bias term), summed over layers.
        absorbed_by_epsilon: the relevance the stabiliser ε kept, summed over layers.
        start_gap: ``f`` minus the relevance placed on the outputs (0 for a logit).
        steps: ``(step, by bias, by ε)`` per step of the walk, top down.
    """

    score: float
    relevance_sum: float
    absorbed_by_bias: float
    absorbed_by_epsilon: float
    start_gap: float = 0.0
    steps: tuple[tuple[str, float, float], ...] = ()

    @property
    def ratio(self) -> float:
        """``Σ R / f`` (1 when conserved; NaN for a zero score)."""
        return self.relevance_sum / self.score if self.score else float("nan")

    @property
    def bias_share(self) -> float:
        """The share of the score the biases absorbed, ``absorbed_by_bias / f``."""
        return self.absorbed_by_bias / self.score if self.score else float("nan")

    @property
    def epsilon_share(self) -> float:
        """The share of the score ε absorbed."""
        return self.absorbed_by_epsilon / self.score if self.score else float("nan")

    @property
    def unaccounted(self) -> float:
        """``f − Σ R − absorbed − start gap``: zero (to rounding) for the corrected walks; the
        published block's overwriting max unpooling (``reference_quirks``) loses relevance here.
        """
        return (self.score - self.relevance_sum - self.absorbed_by_bias
                - self.absorbed_by_epsilon - self.start_gap)

    @property
    def conserved(self) -> bool:
        """``|Σ R − f| ≤`` :data:`CONSERVED_TOLERANCE` ``· |f|``."""
        return abs(self.relevance_sum - self.score) <= CONSERVED_TOLERANCE * abs(self.score)

    def as_dict(self) -> dict[str, float | bool]:
        """Plain numbers for JSON exports."""
        return {"score": self.score, "relevance_sum": self.relevance_sum, "ratio": self.ratio,
                "absorbed_by_bias": self.absorbed_by_bias, "bias_share": self.bias_share,
                "absorbed_by_epsilon": self.absorbed_by_epsilon, "start_gap": self.start_gap,
                "unaccounted": self.unaccounted, "conserved": self.conserved}
