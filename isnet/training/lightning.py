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

import importlib.util
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader

from isnet.data.image_set import as_dataset
from isnet.data.streaming import SkipLog, Skipped, batch_parts, stream_loader
from isnet.loss import background_share
from isnet.lrp.registry import is_lrp_ready
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
    """A network of any family trained as ``config.method`` (standard or an ISNet variant).

    Args:
        config: the run's settings (saved as hyper-parameters).
        model: the network to train; a fresh ``create_network(config)``
            if None.
    """

    def __init__(self, config: TrainConfig, model: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters({"config": config.to_dict()})
        backbone = model if model is not None else create_network(config)
        self.network = build_network(backbone, config)
        self.skip_log = SkipLog()
        self.share = {"images": 0, "index_sum": 0}

    @property
    def model(self) -> nn.Module:
        """The bare network being trained."""
        return self.network.backbone if hasattr(self.network, "backbone") else self.network

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, K) of the network for images (B, C, H, W)."""
        return self.model(images)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """ISNet (or cross-entropy) loss of one batch; a non-finite loss stops the run.

        ``batch``: (images, masks, labels) or a streamed :class:`StreamBatch`, whose unreadable
        files are reported once each and left out."""
        images, masks, labels, skipped = batch_parts(batch)
        self._report(skipped)
        if len(labels) == 0:
            return None
        if hasattr(batch, "indices"):  # which files this rank trained on (rank_shares)
            self.share["images"] += len(labels)
            self.share["index_sum"] += int(batch.indices.sum())
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

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Accuracy and background share of the predicted class's heatmap."""
        images, masks, labels, skipped = batch_parts(batch)
        self._report(skipped)
        if len(labels) == 0:
            return
        if is_lrp_ready(self.model):
            logits, heatmaps = explain(self.model, images, epsilon=self.config.epsilon,
                                       zb=self.config.zb, bounds=self.config.bounds)
        else:  # U-Nets, ViT, …: the method's native map
            logits, heatmaps = native_explainer_for(self.model)(self.model, images)
        self.log_dict({"val_accuracy": (logits.argmax(1) == labels).float().mean(),
                       "val_background_share": background_share(heatmaps, masks).mean()},
                      on_epoch=True, sync_dist=True, batch_size=len(labels))

    def _report(self, skipped: tuple[Skipped, ...]) -> None:
        for item in self.skip_log.add(skipped):
            logger.warning("skipped %s", item)

    def on_train_epoch_start(self) -> None:
        """Streamed training images draw this epoch's augmentation."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule.train_set, "set_epoch"):
            datamodule.train_set.set_epoch(self.current_epoch)

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
            loader = stream_loader(datamodule.train_set, datamodule.batch_size,
                                   datamodule.workers)
            recalibrate_batchnorm(self.model, ((b[0].to(self.device, self.dtype),)
                                               for b in loader))

    def configure_optimizers(self) -> dict[str, Any]:
        """The configured optimiser (:func:`make_optimizer`) and the per-step schedule."""
        optimizer = make_optimizer(self.network, self.config)
        scheduler = make_scheduler(optimizer, self.config, self._total_steps())
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _total_steps(self) -> int:
        """The run's optimisation steps, counted from the data's size (what Lightning's
        ``estimated_stepping_batches`` gives, without building the training loader: built this
        early, before a resumed run's state is restored, its workers would start in epoch 0)."""
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None:
            return int(trainer.estimated_stepping_batches)
        per_rank = math.ceil(len(datamodule.train_set) / trainer.world_size)  # DDP pads
        steps = math.ceil(per_rank / datamodule.batch_size) * trainer.max_epochs
        return min(steps, trainer.max_steps) if trainer.max_steps > 0 else steps


class ISNetDataModule(L.LightningDataModule):
    """Loaders over (image, mask, label) data: in memory, or streamed from disk by ``workers``
    processes (:class:`isnet.data.streaming.StreamingDataset`).

    Args:
        train_set: an ``ImageSet`` or a Dataset of (image, mask, label).
        val_set: same, or None.
        batch_size: images per step and per process.
        seed: seeds the shuffling.
        workers: decoding processes per training process (streamed data only).
    """

    def __init__(self, train_set: Any, val_set: Any = None, batch_size: int = 32,
                 seed: int = 0, workers: int = 0) -> None:
        super().__init__()
        self.train_set = as_dataset(train_set)
        self.val_set = as_dataset(val_set) if val_set is not None else None
        self.batch_size, self.seed, self.workers = batch_size, seed, workers

    def train_dataloader(self) -> DataLoader:
        """Shuffled, seeded training batches (Lightning adds a DistributedSampler under DDP,
        which gives each rank its own share of the files)."""
        # The epoch the trainer is at (a resumed run's, too): Lightning may start the loader's
        # workers, which take the dataset's epoch with them, before it sets the sampler's epoch.
        trainer = getattr(self, "trainer", None)
        epoch = trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0
        sampler = EpochShuffle(len(self.train_set), self.seed)
        sampler.set_epoch(epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        return stream_loader(self.train_set, self.batch_size, self.workers, sampler=sampler,
                             pin_memory=self._pin())

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in file order (an empty list when there is no validation set)."""
        if self.val_set is None:
            return []
        return stream_loader(self.val_set, self.batch_size, self.workers, pin_memory=self._pin())

    def _pin(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return bool(trainer is not None and trainer.strategy.root_device.type == "cuda")


class _EpochHistory(L.Callback):
    """Collects the epoch-level logged metrics as plain floats (kept in resume checkpoints, so
    a resumed run's history starts at its first epoch)."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.history.append({"epoch": trainer.current_epoch + 1, **metrics})
        if trainer.is_global_zero:  # one line per epoch also where no progress bar is drawn
            logger.info("epoch %d/%d %s", trainer.current_epoch + 1, trainer.max_epochs,
                        {k: round(v, 4) for k, v in metrics.items()})

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))


@dataclass(frozen=True)
class RunFiles:
    """Where a Lightning run keeps what lets it be watched and resumed.

    Attributes:
        folder: ``logs/attempt-N/metrics.csv`` (Lightning's CSV logger, one folder per start or
            resume; TensorBoard event files beside it when ``tensorboard`` is installed) and
            ``last.ckpt``, rewritten at the end of each epoch: model, optimiser, schedule,
            epoch and history.
        resume: continue from ``folder/last.ckpt`` (loaded with ``weights_only=True``).
    """

    folder: Path
    resume: bool = False

    @property
    def last(self) -> Path:
        """The resume checkpoint."""
        return self.folder / "last.ckpt"


def fit_lightning(model: nn.Module, train_set: Any, val_set: Any, config: TrainConfig,
                  devices: int | str | list[int] = 1, num_nodes: int = 1, strategy: str = "auto",
                  accelerator: str = "cpu", root_dir: str | None = None,
                  progress_bar: bool = False, workers: int = 0,
                  precision: str | None = None, run_files: RunFiles | None = None,
                  max_steps: int = -1) -> tuple[FitResult, L.Trainer]:
    """Train with a Lightning ``Trainer`` (e.g. ``strategy="ddp", devices=2``).

    Args:
        model: the network to train in place.
        train_set: an ``ImageSet`` or a Dataset of (image, mask, label), e.g. a
            :class:`isnet.data.streaming.StreamingDataset`.
        val_set: same, or None.
        config: the run's settings; ``batch_size`` is per process.
        devices: devices per node (an int, a list of GPU indices, or ``"auto"``).
        num_nodes: machines.
        strategy: Lightning strategy (``"auto"``, ``"ddp"``, ``"ddp_spawn"``, …).
        accelerator: ``"cpu"``, ``"gpu"`` or ``"auto"``.
        root_dir: where Lightning may write its files.
        progress_bar: show Lightning's progress bar.
        workers: decoding processes per training process for streamed data.
        precision: Lightning's precision (``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``,
            ``"64-true"``); None = 32-bit.
        run_files: metrics, resume checkpoints and resuming (:class:`RunFiles`); None keeps
            nothing on disk.
        max_steps: stop after this many optimisation steps (-1 = the epochs decide).

    Returns:
        (``FitResult`` with the trained model and per-epoch history, the ``Trainer``; check
        ``trainer.is_global_zero`` before writing files).

    Raises:
        ValueError: separate gradient balance on several devices, or ``resume`` without a
            ``last.ckpt`` in the run folder.
    """
    separate = config.gradient_balance != "joint"
    one_device = str(devices) in ("1", "auto") or (isinstance(devices, list)
                                                    and len(devices) == 1)
    if separate and (num_nodes != 1 or not one_device or "ddp" in strategy):
        raise ValueError("gradient_balance='separate' trains on one device only (its two "
                         "backward passes bypass DDP's gradient averaging); use "
                         "gradient_balance='joint' with several devices or nodes")
    if run_files is not None and run_files.resume and not run_files.last.is_file():
        raise ValueError(f"--resume: no {run_files.last.name} in {run_files.folder}; start the "
                         "run without --resume (it writes one at the end of every epoch)")
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = ISNetLightningModule(config, model)
    if str(precision).startswith("64"):  # so that a resumed float64 run restores its weights
        module.double()                   # exactly (not through float32 parameters)
    history = _EpochHistory()
    callbacks: list[L.Callback] = [history]
    loggers: list[Any] | bool = False
    if run_files is not None:
        callbacks.append(ModelCheckpoint(dirpath=run_files.folder, save_last=True, save_top_k=0,
                                         every_n_epochs=1))
        loggers = _loggers(run_files.folder)
    trainer = L.Trainer(max_epochs=config.epochs, max_steps=max_steps, devices=devices,
                        num_nodes=num_nodes, strategy=strategy, accelerator=accelerator,
                        gradient_clip_val=None if separate else config.grad_clip_norm,
                        gradient_clip_algorithm="norm", precision=precision,
                        logger=loggers, enable_checkpointing=run_files is not None,
                        callbacks=callbacks,
                        enable_progress_bar=progress_bar, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=root_dir,
                        log_every_n_steps=10, deterministic=config.deterministic or None)
    start = time.perf_counter()
    resume = run_files.last if run_files is not None and run_files.resume else None
    trainer.fit(module, datamodule=ISNetDataModule(train_set, val_set, config.batch_size,
                                                   config.seed, workers),
                ckpt_path=resume, weights_only=True if resume else None)
    status = "stopped" if trainer.should_stop and trainer.current_epoch < config.epochs else \
        "completed"
    result = FitResult(model=module.model.eval(), history=history.history, status=status,
                       steps=trainer.global_step, seconds=time.perf_counter() - start)
    result.skipped, result.rank_shares = _gathered(module)
    return result, trainer


def _loggers(folder: Path) -> list[Any]:
    """Lightning's CSV logger (and TensorBoard's when it is installed), writing to
    ``folder/logs/attempt-N``: a resumed run starts attempt N + 1 and never overwrites the
    metrics of the attempts before it."""
    attempt = 1
    while (folder / "logs" / f"attempt-{attempt}").exists():
        attempt += 1
    version = f"attempt-{attempt}"
    found: list[Any] = [CSVLogger(str(folder), name="logs", version=version)]
    if importlib.util.find_spec("tensorboard") is not None:
        found.append(TensorBoardLogger(str(folder), name="logs", version=version))
    return found


def _gathered(module: ISNetLightningModule) -> tuple[dict[str, str], list[dict[str, int]]]:
    """Every rank's skipped files and share of the streamed training files (under DDP each
    rank reads its own share): (name → why, one ``{"images", "index_sum"}`` per rank)."""
    mine = (dict(module.skip_log.skipped), dict(module.share))
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return mine[0], [mine[1]]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, mine)
    return ({name: why for part in gathered for name, why in part[0].items()},
            [part[1] for part in gathered])
