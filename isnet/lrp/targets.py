"""What to explain: which outputs start the relevance walk (see ``docs/lrp-rules.md``).

* ``"all"`` — original ISNet: one map per class, map k starts with the raw logit ``y_k`` on
  output k (K maps; training cost grows with K).
* ``"target"`` — one map per sample for a given class (e.g. the label), starting with its logit.
* ``"predicted"`` — one map per sample for the top logit.
* ``"selective"`` — Selective ISNet: one map per sample of the softmax log-odds of the class
  with the **lowest** logit.
* ``"stochastic"`` — Stochastic ISNet: per sample, the top logit with probability 1/2, else a
  uniformly drawn other class (one map; drawn from a caller-owned generator).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from isnet.lrp.config import LRPConfig
from isnet.lrp.conservation import BiasLedger
from isnet.lrp.head import class_messages, selective_messages

EXPLAIN_MODES: tuple[str, ...] = ("all", "target", "predicted", "selective", "stochastic")


def check_mode(mode: str) -> str:
    """Returns ``mode`` or raises a ValueError listing the valid ones."""
    if mode not in EXPLAIN_MODES:
        raise ValueError(f"unknown explain mode {mode!r}; choose one of {', '.join(EXPLAIN_MODES)}")
    return mode


def as_classes(target: int | Tensor, batch: int, num_classes: int, device: torch.device) -> Tensor:
    """An int or a (B,) integer tensor → a validated (B,) int64 tensor of class indices."""
    classes = torch.as_tensor(target, device=device).long().reshape(-1)
    if classes.numel() == 1:
        classes = classes.expand(batch)
    if classes.shape != (batch,):
        raise ValueError(f"target must be one class or one per sample ({batch}), got shape "
                         f"{tuple(classes.shape)}")
    if torch.compiler.is_compiling():  # reading values would break the graph (eager checks)
        return classes
    if classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(f"target classes must lie in [0, {num_classes - 1}], got "
                         f"{classes.tolist()}")
    return classes


def stochastic_draws(batch: int, num_classes: int,
                     generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The random numbers of the stochastic variant, drawn before the walk (a compiled walk
    cannot read a generator): per sample a coin (True: explain the top class) and a shift in
    [1, K−1] to the other class. Shapes: two (B,) CPU tensors, bool and int64.

    Random numbers come from ``generator`` (CPU), never the global generator, so two models
    never disturb each other's draws.
    """
    coin = torch.rand(batch, generator=generator) < 0.5
    shift = torch.randint(1, max(num_classes, 2), (batch,), generator=generator)
    return coin, shift


def stochastic_classes(logits: Tensor, generator: torch.Generator | None = None,
                       draws: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Per sample: the top class with probability 1/2, else a uniformly drawn other class.

    Shapes: logits (B, K) → (B,). ``draws`` are :func:`stochastic_draws`' output; without
    them they are drawn here from ``generator``.
    """
    batch, num_classes = logits.shape
    if draws is None:
        draws = stochastic_draws(batch, num_classes, generator or torch.Generator().manual_seed(0))
    coin, shift = (draw.to(logits.device) for draw in draws)
    top = logits.detach().argmax(1)
    other = (top + shift) % num_classes  # uniform over the K-1 other classes
    return torch.where(coin, top, other)


def pooled_messages(model: nn.Module, trace: Any, mode: str, config: LRPConfig,
                    target: int | Tensor | None = None,
                    generator: torch.Generator | None = None,
                    ledger: BiasLedger | None = None,
                    draws: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Messages at the pooled features for the chosen explanation mode (``ledger``: records
    the explained score and the head's absorption, see :mod:`isnet.lrp.conservation`;
    ``draws``: the stochastic variant's random numbers, see :func:`stochastic_draws`).

    Returns:
        (B, M, F) with M = K for ``"all"`` and M = 1 otherwise.
    """
    logits = trace.logits  # (B, K)
    batch, num_classes = logits.shape
    check_mode(mode)
    if mode == "all":
        return class_messages(model, trace, torch.diag_embed(logits), config,
                              ledger)  # (B, K, K) start
    if mode == "selective":
        return selective_messages(model, trace, logits.detach().argmin(1), config, ledger)
    if mode == "target":
        if target is None:
            raise ValueError("explain='target' needs target= (one class, or one per sample)")
        classes = as_classes(target, batch, num_classes, logits.device)
    elif mode == "predicted":
        classes = logits.detach().argmax(1)
    else:
        classes = stochastic_classes(logits, generator, draws)
    one_hot = torch.nn.functional.one_hot(classes, num_classes).to(logits.dtype)  # (B, K)
    return class_messages(model, trace, (one_hot * logits).unsqueeze(1), config,
                          ledger)  # (B, 1, F)
