"""The ISNet: a classifier whose forward also returns its LRP heatmaps, inside the autograd graph.

During training, ``ISNet.forward`` returns ``(logits, heatmaps)`` and a loss on the heatmaps
(:func:`isnet.heatmap_loss`) trains the classifier through the LRP block with a plain
``loss.backward()``. For deployment the LRP block is dropped: :meth:`ISNet.deploy` hands back the
bare backbone, so inference costs exactly what the classifier costs.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any, Literal, overload

import torch
from torch import Tensor, nn

from isnet.compilation import COMPILED_EXPLAIN, EagerFallback, compile_mode
from isnet.lrp.config import LRPConfig
from isnet.lrp.conservation import BiasLedger, Conservation
from isnet.lrp.registry import is_lrp_ready, relevance_from_messages
from isnet.lrp.targets import check_mode, pooled_messages, stochastic_draws

Bounds = tuple[float | Sequence[float], float | Sequence[float]]


def lrp_settings(lrp: LRPConfig | None, epsilon: float | None, e: float | None,
                 zb: bool | None, bounds: Bounds | None, detach_bias: bool | None) -> LRPConfig:
    """One :class:`LRPConfig` from a config and/or keyword shortcuts (shortcuts win).

    ``e`` is the deprecated spelling of ``epsilon`` (kept for one release).
    """
    if e is not None:
        warnings.warn("e= is deprecated; use epsilon=", DeprecationWarning, stacklevel=3)
        if epsilon is not None and epsilon != e:
            raise ValueError(f"give epsilon= or its old name e=, not both ({epsilon} vs {e})")
        epsilon = e
    changes: dict[str, Any] = {}
    if epsilon is not None:
        changes["epsilon"] = epsilon
    if zb is not None:
        changes["zb"] = zb
    if bounds is not None:
        changes["low"], changes["high"] = bounds
    if detach_bias is not None:
        changes["detach_bias"] = detach_bias
    return dataclasses.replace(lrp or LRPConfig(), **changes)


class ISNet(nn.Module):
    """An LRP-ready backbone + its LRP block.

    Args:
        backbone: the network to explain and train (shared, not copied), built with
            :func:`isnet.create_model` (any registered family).
        epsilon: ε of the ε-rule.
        zb: z^B rule at the input layer.
        heat: compute heatmaps in ``forward``; when False, ``forward`` returns only logits.
        explain: ``"all"`` (K maps, original ISNet), ``"target"``, ``"predicted"``,
            ``"selective"`` or ``"stochastic"`` (one map each); see :mod:`isnet.lrp.targets`.
        lrp: the whole LRP configuration in one object; the keyword shortcuts above (and
            ``bounds``, ``detach_bias``) override its fields when given.
        bounds: (low, high) input range for z^B, floats or one value per channel.
        detach_bias: detach biases, BN shifts and statistics in the rules (paper default).
        seed: seed of this model's own generator for the stochastic variant.
        e: deprecated alias of ``epsilon``.
        compile: compile the walk (the traced forward, the messages and the reverse walk) with
            ``torch.compile``: False (eager, the default), True, or a mode such as
            ``"reduce-overhead"`` (CUDA graphs; see :mod:`isnet.compilation`). A compile
            that fails logs one warning and runs eagerly. The first call compiles (seconds to
            minutes); ``docs/performance.md`` says when it pays.
    """

    def __init__(self, backbone: nn.Module, epsilon: float | None = None, zb: bool | None = None,
                 heat: bool = True, explain: str = "all", lrp: LRPConfig | None = None,
                 bounds: Bounds | None = None, detach_bias: bool | None = None, seed: int = 0,
                 e: float | None = None, compile: bool | str = False) -> None:
        super().__init__()
        if not is_lrp_ready(backbone):
            raise ValueError(f"ISNet needs an LRP-ready isnet backbone, got "
                             f"{type(backbone).__name__}; build one with "
                             "isnet.create_model(name, num_classes=...)")
        self.backbone = backbone
        self.heat = heat
        self.explain = check_mode(explain)
        self.config = lrp_settings(lrp, epsilon, e, zb, bounds, detach_bias)
        self.generator = torch.Generator().manual_seed(seed)
        mode = compile_mode(compile)
        self.compiled_walk = (None if mode is None else
                              EagerFallback(self._heat_forward, "the ISNet walk", mode))

    def forward(self, x: Tensor,
                target: int | Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Logits, and heatmaps when ``heat`` is on.

        Shapes: x (B, C, H, W) → logits (B, K), heatmaps (B, M, C, H, W) with M = K for
        ``explain="all"``, else 1.
        """
        if not self.heat:
            return self.backbone(x)
        draws = (stochastic_draws(x.shape[0], self.backbone.num_classes,  # type: ignore[arg-type]
                                  self.generator) if self.explain == "stochastic" else None)
        walk = self._heat_forward if self.compiled_walk is None else self.compiled_walk
        return walk(x, target, draws)

    def _heat_forward(self, x: Tensor, target: int | Tensor | None,
                      draws: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and heatmaps (B, M, C, H, W): the part ``compile`` compiles (no
        generator inside: the stochastic variant's ``draws`` come from :meth:`forward`)."""
        logits, trace = self.backbone.forward_trace(x)  # type: ignore[operator]
        messages = pooled_messages(self.backbone, trace, self.explain, self.config, target,
                                   draws=draws)
        return logits, relevance_from_messages(self.backbone, trace, messages, self.config)

    def deploy(self) -> nn.Module:
        """The bare backbone, for inference without the LRP block (zero overhead)."""
        return self.backbone


@overload
def explain(model: nn.Module, x: Tensor, target: int | Tensor | str | None = None,
            epsilon: float | None = None, zb: bool | None = None, bounds: Bounds | None = None,
            detach_bias: bool | None = None, lrp: LRPConfig | None = None,
            e: float | None = None, return_conservation: Literal[False] = False,
            mode: str | None = None) -> tuple[Tensor, Tensor]: ...


@overload
def explain(model: nn.Module, x: Tensor, target: int | Tensor | str | None = None,
            epsilon: float | None = None, zb: bool | None = None, bounds: Bounds | None = None,
            detach_bias: bool | None = None, lrp: LRPConfig | None = None,
            e: float | None = None, *, return_conservation: Literal[True],
            mode: str | None = None) -> tuple[Tensor, Tensor, list[list[Conservation]]]: ...


@overload
def explain(model: nn.Module, x: Tensor, target: int | Tensor | str | None = None,
            epsilon: float | None = None, zb: bool | None = None, bounds: Bounds | None = None,
            detach_bias: bool | None = None, lrp: LRPConfig | None = None,
            e: float | None = None, return_conservation: bool = False, mode: str | None = None,
            ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, list[list[Conservation]]]: ...


def explain(model: nn.Module, x: Tensor, target: int | Tensor | str | None = None,
            epsilon: float | None = None, zb: bool | None = None, bounds: Bounds | None = None,
            detach_bias: bool | None = None, lrp: LRPConfig | None = None,
            e: float | None = None, return_conservation: bool = False, mode: str | None = None,
            ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, list[list[Conservation]]]:
    """LRP heatmap of one output per sample (for display and analysis).

    ``target`` says *which output* (a class); ``mode`` says *which map* (how the walk starts),
    as captum keeps ``target`` apart from the method (``docs/glossary.md``).

    Args:
        model: an LRP-ready network (its train/eval mode is respected; use ``eval()`` for
            display).
        x: images (B, C, H, W), in ``bounds`` when ``zb`` is on.
        target: None (the top prediction, unless ``mode`` says otherwise), a class index or a
            (B,) tensor of classes. A mode name here (``"all"``, ``"selective"``, …) is the old
            spelling of ``mode=``: accepted for one release, with a DeprecationWarning.
        epsilon, zb, bounds, detach_bias, lrp: LRP settings, as in :class:`ISNet`.
        e: deprecated alias of ``epsilon``.
        mode: the explain mode (:data:`isnet.lrp.targets.EXPLAIN_MODES`): ``"predicted"``
            (default without ``target``), ``"target"`` (default with it), ``"all"`` (K maps),
            ``"selective"`` or ``"stochastic"``; only ``"target"`` takes a ``target``.
        return_conservation: also return, per sample and map, a
            :class:`isnet.lrp.conservation.Conservation`: Σ R, the explained score (logit or
            log-odds), their ratio and what the walk's biases and ε absorbed.

    Returns:
        logits (B, K) and heatmaps (B, M, C, H, W), M = 1 unless ``target="all"``; with
        ``return_conservation``, a third item: B lists of M :class:`Conservation`.
    """
    config = lrp_settings(lrp, epsilon, e, zb, bounds, detach_bias)
    mode, classes = explain_mode(target, mode)
    ledger = BiasLedger() if return_conservation else None
    compiled = getattr(model, COMPILED_EXPLAIN, None)  # set by isnet.compilation.compile_explain
    walk = explain_walk if compiled is None else compiled
    logits, heatmaps = walk(model, x, mode, classes, config, ledger)
    if ledger is None:
        return logits, heatmaps
    return logits, heatmaps, ledger.summary(heatmaps)


def explain_walk(model: nn.Module, x: Tensor, mode: str, classes: Any, config: LRPConfig,
                 ledger: BiasLedger | None) -> tuple[Tensor, Tensor]:
    """The part of :func:`explain` that :func:`isnet.compilation.compile_explain` compiles: the
    traced forward, the messages and the walk. Shapes: x (B, C, H, W) → logits (B, K),
    heatmaps (B, M, C, H, W)."""
    logits, trace = model.forward_trace(x)  # type: ignore[operator]
    messages = pooled_messages(model, trace, mode, config, classes, ledger=ledger)
    return logits, relevance_from_messages(model, trace, messages, config, ledger)


def explain_mode(target: int | Tensor | str | None, mode: str | None) -> tuple[str, Any]:
    """``explain``'s (mode, classes) from its ``target`` and ``mode`` arguments.

    A string ``target`` is the deprecated spelling of ``mode`` (one release); a class with a
    mode other than ``"target"`` is refused, as that mode would ignore it.
    """
    if isinstance(target, str):
        warnings.warn(f"explain(target={target!r}) is deprecated: a target is a class; pass "
                      f"mode={target!r} for the explain mode", DeprecationWarning, stacklevel=3)
        if mode is not None and mode != target:
            raise ValueError(f"give mode= or its old spelling target=, not both ({mode!r} vs "
                             f"{target!r})")
        return check_mode(target), None
    if mode is None:
        return ("predicted", None) if target is None else ("target", target)
    check_mode(mode)
    if target is not None and mode != "target":
        raise ValueError(f"target= picks a class for mode='target'; mode={mode!r} chooses its own "
                         "output, so leave target out (or use mode='target')")
    return mode, target
