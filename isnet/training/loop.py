"""Training: one configuration dataclass, one step, one loop — the same loss code for every method.

Training methods (``TrainConfig.method``):

* ``"standard"`` — plain cross-entropy; the network is free to learn a background shortcut;
* ``"all"`` — original ISNet: a heatmap per class (K maps; cost grows with K);
* ``"selective"`` — Selective ISNet (Faster ISNet): one map of the softmax log-odds of the
  lowest-scoring class; cost independent of K (the authors' run scripts use it by default);
* ``"stochastic"`` — Stochastic ISNet: one map of the top or a random logit per sample;
* the paper's comparison methods (``"rrr"``, ``"gain"``, ``"gradient_input"``, …): each brings
  its own network and loss (:mod:`isnet.training.methods`); the loop, checkpoints and evaluation
  are the same.

Every ISNet variant minimises ``(1 − P)·CE + P·L_heatmap`` (:func:`isnet.isnet_loss`). The loop
(:func:`fit`) seeds everything, clips the gradient norm (10 by default; the authors advise 1, see
``TrainConfig.grad_clip_norm``),
validates each epoch (accuracy and mean background-relevance share), reports progress through a
plain callback and stops between steps when asked. If the loss becomes non-finite or explodes,
it stops, restores the last good weights (end of the previous epoch) and says what to try.

Optimiser defaults: SGD with learning rate 1e-2 and momentum 0.9, the authors' *run scripts*
(training from scratch on small biased sets, our setting). Their Lightning module uses 1e-3 and
momentum 0.99, meant for long runs from ImageNet weights; with 0.99 the momentum averages over
~100 steps, longer than a whole short CPU run here.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Sampler

from isnet.data.image_set import as_dataset
from isnet.data.streaming import batch_parts, stream_loader
from isnet.loss import LossTerms, background_share, isnet_loss
from isnet.models.layout import layout_of, preferred_layout
from isnet.training.augment import tint_backgrounds
from isnet.training.balance import balanced_backward, heat_weight_at
from isnet.training.config import TrainConfig
from isnet.training.evaluate import measure
from isnet.training.methods import get_method
from isnet.wrapper import ISNet

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, dict[str, Any]], None]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the trained network (last good weights), in ``eval()`` mode.
        history: one dictionary per finished epoch (train means and validation metrics).
        status: ``"completed"``, ``"stopped"`` (``should_stop`` said so), ``"diverged"`` (the
            loss exploded or became non-finite; earlier weights restored) or ``"failed"`` (the
            weights ended non-finite; the last finite ones restored where there were any).
        advice: what to try when the run diverged or failed, else None.
        steps: optimisation steps taken.
        seconds: wall time of the run.
        skipped: streamed files that could not be used (display name → why), once each.
        rank_shares: per training process, the streamed training images it stepped on and the
            sum of their dataset indices (Lightning runs; shows that DDP ranks split the files).
    """

    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "completed"
    advice: str | None = None
    steps: int = 0
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)
    rank_shares: list[dict[str, int]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether the model may be saved and offered as a result: only a completed run."""
        return self.status == "completed"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and make cuDNN deterministic.

    With ``deterministic``, also switch on ``torch.use_deterministic_algorithms(True)`` (process
    wide; left on), as the ISNet authors advise: every operation of the LRP block has a
    deterministic implementation (the max-pool rule is a scatter-add, never ``max_unpool2d``).
    Without it the switch is left as it is; CPU runs are deterministic anyway.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it on CUDA
        torch.use_deterministic_algorithms(True)


def build_network(model: nn.Module, config: TrainConfig) -> nn.Module:
    """The module trained for ``config.method``: the network itself, or an ISNet around it."""
    if config.method == "standard" or get_method(config.method) is not None:
        return model
    return ISNet(model, epsilon=config.epsilon, zb=config.zb, explain=config.method,
                 seed=config.seed, bounds=config.bounds, compile=config.compile or False)


def compute_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                 config: TrainConfig, heat_weight: float | None = None,
                 ) -> tuple[LossTerms, Tensor, Tensor | None]:
    """Forward pass and loss, shared by :func:`train_step` and the Lightning module.

    Shapes: images (B, C, H, W); masks (B, 1, H, W) in {0, 1}; labels (B,) →
    (LossTerms of scalars, logits (B, K), heatmaps (B, M, C, H, W) or None for "standard").
    ``heat_weight`` overrides ``config.heat_weight`` (P during a warm-up).
    """
    if isinstance(network, ISNet):
        logits, heatmaps = network(images)
        weight = config.heat_weight if heat_weight is None else heat_weight
        terms = isnet_loss(logits, labels, heatmaps, masks, heat_weight=weight,
                           **config.heatmap_loss_kwargs())
        return terms, logits, heatmaps
    method = get_method(config.method)  # a comparison method (isnet.training.methods)
    if method is not None:
        return method.loss(network, images, masks, labels, config)
    logits = network(images)
    classification = F.cross_entropy(logits, labels)
    return LossTerms(classification, classification, torch.zeros_like(classification)), logits, None


def train_step(network: nn.Module, batch: tuple[Tensor, Tensor, Tensor],
               optimizer: torch.optim.Optimizer, config: TrainConfig,
               heat_weight: float | None = None) -> dict[str, Any]:
    """One optimisation step (forward, loss, backward, clip, update) on one batch.

    A non-finite loss or gradient norm skips the update (``metrics["finite"] is False``).

    Args:
        network: the network (standard) or the ISNet around it (:func:`build_network`).
        batch: (images (B, C, H, W), masks (B, 1, H, W), labels (B,)).
        optimizer: updates the network's parameters.
        config: loss weights and clipping (``config.gradient_balance``).
        heat_weight: P of this step (None = ``config.heat_weight``).

    Returns:
        Plain floats: ``loss``, ``classification_loss``, ``heatmap_loss``, ``accuracy``,
        ``background_share`` (None for "standard"), ``grad_norm`` (and, with separate
        balance, ``classification_grad_norm`` and ``heatmap_grad_norm``); and ``finite`` (bool).
    """
    network.train()
    images, masks, labels = batch
    optimizer.zero_grad(set_to_none=True)
    weight = config.heat_weight if heat_weight is None else heat_weight
    terms, logits, heatmaps = compute_loss(network, images, masks, labels, config, weight)
    metrics: dict[str, Any] = {
        "loss": float(terms.total.detach()),
        "classification_loss": float(terms.classification.detach()),
        "heatmap_loss": float(terms.heatmap.detach()),
        "accuracy": float((logits.detach().argmax(1) == labels).float().mean()),
        "background_share": (None if heatmaps is None else
                              float(background_share(heatmaps.detach(), masks).mean())),
    }
    finite = math.isfinite(metrics["loss"])
    norms: dict[str, float] = {"grad_norm": float("nan")}
    if finite:
        parameters = [p for p in network.parameters() if p.requires_grad]
        norms = balanced_backward(terms, weight, parameters, config.gradient_balance,
                                  config.grad_clip_norm)
        finite = all(math.isfinite(v) for v in norms.values())
        if finite:
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {**metrics, **norms, "finite": finite}


class EpochShuffle(Sampler[int]):
    """Random order of ``length`` indices drawn from ``(seed, epoch)`` only.

    The order does not depend on how often a loader is iterated, so the plain loop and Lightning
    (which calls :meth:`set_epoch`) see the same batches.
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of epoch ``epoch`` (0-based)."""
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


def recalibrate_batchnorm(model: nn.Module, loader: Any) -> None:
    """Set every BatchNorm's running statistics to exact averages over ``loader``'s images.

    Args:
        model: the network (its train/eval mode is restored afterwards).
        loader: iterable of batches whose first element is images (B, C, H, W).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
    was_training = model.training
    model.train()
    with torch.no_grad():
        layout, device = layout_of(model), next(model.parameters()).device  # as it trains
        for batch in loader:
            if len(batch[0]):  # a streamed batch whose every file was unreadable is empty
                model(batch[0].to(device, memory_format=layout))
    for norm, momentum in zip(norms, momenta, strict=False):
        norm.momentum = momentum
    model.train(was_training)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over the trainable parameters: SGD with the configured learning rate,
    momentum and weight decay, or AdamW with β = (momentum, 0.999)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.learning_rate,
                                 betas=(config.momentum, 0.999),
                                 weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step learning-rate schedule for ``config.schedule`` over ``total_steps`` steps."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(total_steps, 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def fit(model: nn.Module, train_set: Any, val_set: Any = None,
        config: TrainConfig = TrainConfig(), on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        memory_format: torch.memory_format | None = None) -> FitResult:
    """Train ``model`` in place for ``config.epochs`` epochs.

    On the CPU the steps run in the family's fastest memory layout
    (:func:`isnet.models.layout.preferred_layout`: channels-last for DenseNets, ~20 % faster);
    the model is handed back channels-first, as models are by default.

    Args:
        model: the nn.Module to train (wrapped in an ISNet here when the variant needs it).
        train_set: an ``ImageSet`` or a Dataset of (image (C, H, W), mask (1, H, W), label ()).
        val_set: same kinds, or None to skip validation.
        config: the run's settings; ``config.num_classes`` must equal the model's K.
        on_progress: called after every step as ``on_progress(step, total_steps, metrics)``;
            metrics hold ``epoch`` and the :func:`train_step` values, and at the last step of an
            epoch also ``val_accuracy`` and ``val_background_share``.
        should_stop: checked before every step; returning True ends the run (status "stopped").
        memory_format: the layout to train in (None: the family's preferred one, see above).

    Returns:
        A :class:`FitResult`; its model holds the last good weights.

    Raises:
        ValueError: if the model does not match the configuration or the data is empty.
    """
    if not isinstance(model, nn.Module) or model.num_classes != config.num_classes:
        raise ValueError(f"fit: model must be a nn.Module with config.num_classes="
                         f"{config.num_classes} logits, got {type(model).__name__} with "
                         f"{getattr(model, 'num_classes', '?')}")
    seed_everything(config.seed, config.deterministic)
    dataset = as_dataset(train_set)
    if len(dataset) == 0:
        raise ValueError("fit: train_set is empty")
    sampler = EpochShuffle(len(dataset), config.seed)
    loader = stream_loader(dataset, config.batch_size, sampler=sampler)
    layout = memory_format or preferred_layout(model, next(model.parameters()).device)
    model.to(memory_format=layout)  # the family's fastest layout; given back at the end
    network, optimizer = build_network(model, config), make_optimizer(model, config)
    result = FitResult(model=model)
    total, start, first_loss = config.epochs * len(loader), time.perf_counter(), None
    high_steps = 0  # consecutive steps with a loss above divergence_ratio × first loss
    scheduler = make_scheduler(optimizer, config, total)
    good_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, config.epochs + 1):
        sampler.set_epoch(epoch - 1)
        sums: dict[str, float] = {}
        validation: dict[str, float] = {}
        for index, batch in enumerate(loader):
            if should_stop is not None and should_stop():
                result.status = "stopped"
                break
            weight = heat_weight_at(config.heat_weight, config.heat_warmup_epochs,
                                    epoch - 1 + index / len(loader))
            images, masks, labels, skipped = batch_parts(batch)
            for name, reason in skipped:
                if result.skipped.setdefault(name, reason) is reason:
                    logger.warning("skipped %s: %s", name, reason)
            if len(labels) == 0:
                continue
            if config.background_tint > 0:
                images = tint_backgrounds(images, masks, config.background_tint, config.seed,
                                          result.steps)
            batch = (images.contiguous(memory_format=layout), masks, labels)
            metrics = {**train_step(network, batch, optimizer, config, weight),
                       "learning_rate": optimizer.param_groups[0]["lr"], "heat_weight": weight}
            scheduler.step()
            result.steps += 1
            first_loss = metrics["loss"] if first_loss is None else first_loss
            high_steps = high_steps + 1 if _too_high(metrics, first_loss, config) else 0
            if not metrics["finite"] or high_steps >= config.divergence_patience:
                _handle_divergence(result, model, good_state, metrics, epoch, config)
                break
            for key, value in metrics.items():
                if isinstance(value, float):
                    sums[key] = sums.get(key, 0.0) + value
            if index == len(loader) - 1:
                if config.recalibrate_batchnorm:
                    recalibrate_batchnorm(model, stream_loader(dataset, config.batch_size))
                if val_set is not None:
                    validation = _validation(model, val_set, config)
            if on_progress is not None:
                on_progress(result.steps, total, {"epoch": epoch, **metrics, **validation})
        if result.status != "completed":
            break
        result.history.append({"epoch": epoch, **{k: v / len(loader) for k, v in sums.items()},
                               **validation})
        if non_finite_tensors(model):
            break  # reported as "failed" below
        good_state = copy.deepcopy(model.state_dict())
    if result.status == "stopped" and result.steps and config.recalibrate_batchnorm:
        recalibrate_batchnorm(model, stream_loader(dataset, config.batch_size))  # mid-epoch stop
    _fail_if_non_finite(result, model, good_state, config)
    result.seconds = time.perf_counter() - start
    model.to(memory_format=torch.contiguous_format).eval()
    return result


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding NaN or ±infinity."""
    return [name for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def _fail_if_non_finite(result: FitResult, model: nn.Module, good_state: dict[str, Tensor],
                        config: TrainConfig) -> None:
    """End-of-run check: non-finite weights make the run "failed", never "completed"."""
    bad = non_finite_tensors(model)
    if not bad:
        return
    model.load_state_dict(good_state)
    restored = ("the last finite weights were restored" if not non_finite_tensors(model)
                else "no finite weights were available")
    result.status = "failed"
    result.advice = (
        f"Training failed: {len(bad)} weight tensor(s) ended NaN or infinite (e.g. {bad[0]}); "
        f"{restored}. Do not use this model. Try a lower learning rate (e.g. learning_rate="
        f"{config.learning_rate / 10:.1e}) and gradient clipping (grad_clip_norm=1).")
    logger.warning(result.advice)


def _validation(model: nn.Module, val_set: Any, config: TrainConfig) -> dict[str, float]:
    """Validation accuracy and mean background share of the predicted class's heatmap."""
    values = measure(model, val_set, batch_size=max(config.batch_size, 64),
                     epsilon=config.epsilon, zb=config.zb, bounds=config.bounds)
    return {"val_accuracy": values["accuracy"],
            "val_background_share": values["background_share"]}


def _too_high(metrics: dict[str, Any], first_loss: float, config: TrainConfig) -> bool:
    return abs(metrics["loss"]) > config.divergence_ratio * max(abs(first_loss), 1e-3)


def _handle_divergence(result: FitResult, model: nn.Module, good_state: dict[str, Tensor],
                       metrics: dict[str, Any], epoch: int, config: TrainConfig) -> None:
    model.load_state_dict(good_state)
    result.status = "diverged"
    result.advice = (
        f"Training diverged in epoch {epoch} at step {result.steps} (loss {metrics['loss']:.4g}, "
        f"gradient norm {metrics['grad_norm']:.4g}). The weights from the end of epoch "
        f"{epoch - 1} were kept. Try a larger GWRP decay d (e.g. decay="
        f"{min(0.99, config.decay + 0.05):.2f}) or a lower learning rate (e.g. learning_rate="
        f"{config.learning_rate / 10:.1e}).")
    logger.warning(result.advice)
