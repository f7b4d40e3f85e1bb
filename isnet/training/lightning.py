"""Scale-out with PyTorch Lightning: many GPUs or nodes, the same loss code as :func:`isnet.fit`.

This is the only engine file that imports Lightning. :class:`ISNetLightningModule` calls
:func:`isnet.training.loop.compute_loss` (so every training method trains exactly as in the plain
loop), :class:`ISNetDataModule` serves ``ImageSet``-like data, and :func:`fit_lightning` builds the
``Trainer`` (DDP, devices, nodes, gradient clipping at ``config.grad_clip_norm``) and returns a
:class:`isnet.train.FitResult`.

Under DDP, Lightning starts one process per device by re-running the command line; each process
rebuilds the same seeded data, a ``DistributedSampler`` gives each its share, and gradients are
averaged (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
from torch import Tensor
from torch.utils.data import DataLoader

from isnet.data.image_set import as_dataset
from isnet.loss import background_share
from isnet.lrp.registry import is_lrp_ready
from isnet.models.densenet import DenseNet
from isnet.training.augment import tint_backgrounds
from isnet.training.balance import balanced_backward, heat_weight_at
from isnet.training.config import TrainConfig
from isnet.training.loop import (
    EpochShuffle,
    FitResult,
    build_network,
    compute_loss,
    make_optimizer,
    make_scheduler,
    recalibrate_batchnorm,
)
from isnet.training.methods import create_network, native_explainer_for
from isnet.wrapper import explain

logger = logging.getLogger(__name__)


class ISNetLightningModule(L.LightningModule):
    """A DenseNet trained as ``config.method`` (standard or an ISNet variant).

    Args:
        config: the run's settings (saved as hyper-parameters).
        model: the network to train; a fresh ``create_network(config)``
            if None.
    """

    def __init__(self, config: TrainConfig, model: DenseNet | None = None) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters({"config": config.to_dict()})
        backbone = model if model is not None else create_network(config)
        self.network = build_network(backbone, config)

    @property
    def model(self) -> DenseNet:
        """The bare DenseNet being trained."""
        return self.network.backbone if hasattr(self.network, "backbone") else self.network

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, K) of the DenseNet for images (B, C, H, W)."""
        return self.model(images)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor | None:
        """ISNet (or cross-entropy) loss of one batch; a non-finite loss stops the run."""
        images, masks, labels = batch
        if self.config.background_tint > 0:  # seeded per rank and step, as in the plain loop
            images = tint_backgrounds(images, masks, self.config.background_tint,
                                      self.config.seed + 7919 * self.global_rank,
                                      self.global_step)
        steps_per_epoch = max(1, self.trainer.num_training_batches)
        weight = heat_weight_at(self.config.heat_weight, self.config.heat_warmup_epochs,
                                self.global_step / steps_per_epoch)
        terms, logits, heatmaps = compute_loss(self.network, images, masks, labels, self.config,
                                               weight)
        self._step = (terms, weight)
        if not math.isfinite(float(terms.total.detach())):
            logger.warning("non-finite loss at step %d: stopping. Try a larger decay d or a "
                           "lower learning rate.", self.global_step)
            self.trainer.should_stop = True
            return None
        size = len(labels)
        self.log_dict({"train_loss": terms.total.detach(),
                       "train_classification_loss": terms.classification.detach(),
                       "train_heatmap_loss": terms.heatmap.detach(),
                       "train_accuracy": (logits.argmax(1) == labels).float().mean()},
                      on_step=False, on_epoch=True, sync_dist=True, batch_size=size)
        if heatmaps is not None:
            self.log("train_background_share", background_share(heatmaps.detach(), masks).mean(),
                     on_step=False, on_epoch=True, sync_dist=True, batch_size=size)
        return terms.total

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward pass; with ``gradient_balance="separate"`` the two gradients are clipped
        apart (:func:`isnet.training.balance.balanced_backward`), otherwise Lightning clips."""
        if self.config.gradient_balance == "joint":
            super().backward(loss, *args, **kwargs)
            return
        terms, weight = self._step
        parameters = [p for p in self.network.parameters() if p.requires_grad]
        norms = balanced_backward(terms, weight, parameters, self.config.gradient_balance,
                                  self.config.grad_clip_norm)
        self.log_dict({f"train_{k}": v for k, v in norms.items()}, on_step=False, on_epoch=True,
                      batch_size=1)

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        """Accuracy and background share of the predicted class's heatmap."""
        images, masks, labels = batch
        if is_lrp_ready(self.model):
            logits, heatmaps = explain(self.model, images, epsilon=self.config.epsilon,
                                       zb=self.config.zb)
        else:  # U-Nets, ViT, …: the method's native map
            logits, heatmaps = native_explainer_for(self.model)(self.model, images)
        self.log_dict({"val_accuracy": (logits.argmax(1) == labels).float().mean(),
                       "val_background_share": background_share(heatmaps, masks).mean()},
                      on_epoch=True, sync_dist=True, batch_size=len(labels))

    def on_validation_epoch_start(self) -> None:
        """Fresh BatchNorm statistics before validating (``TrainConfig.recalibrate_batchnorm``)."""
        if self.trainer.state.fn == "fit":
            self._recalibrate()

    def on_train_end(self) -> None:
        """Fresh BatchNorm statistics for the saved model."""
        self._recalibrate()

    def _recalibrate(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.config.recalibrate_batchnorm and datamodule is not None:
            # The whole training set on every process, so all ranks end with the same statistics.
            loader = DataLoader(datamodule.train_set, batch_size=datamodule.batch_size)
            recalibrate_batchnorm(self.model, ((b[0].to(self.device),) for b in loader))

    def configure_optimizers(self) -> dict[str, Any]:
        """The configured optimiser (:func:`make_optimizer`) and the per-step schedule."""
        optimizer = make_optimizer(self.network, self.config)
        scheduler = make_scheduler(optimizer, self.config,
                                   int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class ISNetDataModule(L.LightningDataModule):
    """Loaders over (image, mask, label) data.

    Args:
        train_set: an ``ImageSet`` or a Dataset of (image, mask, label).
        val_set: same, or None.
        batch_size: images per step and per process.
        seed: seeds the shuffling.
    """

    def __init__(self, train_set: Any, val_set: Any = None, batch_size: int = 32,
                 seed: int = 0) -> None:
        super().__init__()
        self.train_set = as_dataset(train_set)
        self.val_set = as_dataset(val_set) if val_set is not None else None
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self) -> DataLoader:
        """Shuffled, seeded training batches (Lightning adds a DistributedSampler under DDP)."""
        return DataLoader(self.train_set, batch_size=self.batch_size,
                          sampler=EpochShuffle(len(self.train_set), self.seed))

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in file order (an empty list when there is no validation set)."""
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size)


class _EpochHistory(L.Callback):
    """Collects the epoch-level logged metrics as plain floats."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.history.append({"epoch": trainer.current_epoch + 1, **metrics})


def fit_lightning(model: DenseNet, train_set: Any, val_set: Any, config: TrainConfig,
                  devices: int | str = 1, num_nodes: int = 1, strategy: str = "auto",
                  accelerator: str = "cpu", root_dir: str | None = None,
                  progress_bar: bool = False) -> tuple[FitResult, L.Trainer]:
    """Train with a Lightning ``Trainer`` (e.g. ``strategy="ddp", devices=2``).

    Args:
        model: the DenseNet to train in place.
        train_set: an ``ImageSet`` or a Dataset of (image, mask, label).
        val_set: same, or None.
        config: the run's settings; ``batch_size`` is per process.
        devices: devices per node (an int, or ``"auto"``).
        num_nodes: machines.
        strategy: Lightning strategy (``"auto"``, ``"ddp"``, ``"ddp_spawn"``, …).
        accelerator: ``"cpu"``, ``"gpu"`` or ``"auto"``.
        root_dir: where Lightning may write its files.
        progress_bar: show Lightning's progress bar.

    Returns:
        (``FitResult`` with the trained model and per-epoch history, the ``Trainer``; check
        ``trainer.is_global_zero`` before writing files).
    """
    separate = config.gradient_balance != "joint"
    if separate and (num_nodes != 1 or str(devices) not in ("1", "auto") or "ddp" in strategy):
        raise ValueError("gradient_balance='separate' trains on one device only (its two "
                         "backward passes bypass DDP's gradient averaging); use "
                         "gradient_balance='joint' with several devices or nodes")
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = ISNetLightningModule(config, model)
    history = _EpochHistory()
    trainer = L.Trainer(max_epochs=config.epochs, devices=devices, num_nodes=num_nodes,
                        strategy=strategy, accelerator=accelerator,
                        gradient_clip_val=None if separate else config.grad_clip_norm,
                        gradient_clip_algorithm="norm",
                        logger=False, enable_checkpointing=False, callbacks=[history],
                        enable_progress_bar=progress_bar, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=root_dir,
                        deterministic=config.deterministic or None)
    start = time.perf_counter()
    trainer.fit(module, datamodule=ISNetDataModule(train_set, val_set, config.batch_size,
                                                   config.seed))
    status = "stopped" if trainer.should_stop and trainer.current_epoch < config.epochs else \
        "completed"
    result = FitResult(model=module.model.eval(), history=history.history, status=status,
                       steps=trainer.global_step, seconds=time.perf_counter() - start)
    return result, trainer
