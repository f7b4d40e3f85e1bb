"""Training on your own dataset: ``python -m isnet.train --data PATH --out FILE``.

The run, step by step (:func:`train_on_files`):

1. the device (``--device``) becomes Lightning's accelerator and devices; ``--devices``,
   ``--num-nodes`` and ``--strategy ddp`` scale it out as for the experiment;
2. the starting weights: a fresh network of ``--model``, or ``--init`` (one of our checkpoints
   or a torchvision state dict), with a new classifier head when its classes differ;
3. the input: size and normalisation from the model (ImageNet statistics for torchvision
   weights; the z^B bounds follow), augmentation from the options
   (:class:`isnet.data.transforms.Preprocessing`);
4. the data, streamed (:func:`isnet.data.dataset_splits.open_splits`); every file or row left
   out is reported, and the summary is written into the checkpoint;
5. Lightning trains (:func:`isnet.training.lightning.fit_lightning`), writing metrics
   (``logs/attempt-N/metrics.csv``) and ``last.ckpt`` to the run folder every epoch;
   ``--resume`` continues from there;
6. rank 0 measures the validation and test splits and writes the checkpoint: config, seed,
   class names, normalisation, bounds, the dataset's description (paths, layouts, counts, file
   list hashes, transforms), the skipped files, metrics and the command line.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from isnet.data.dataset_splits import DatasetSplits, open_splits
from isnet.data.streaming import SkipLog
from isnet.data.transforms import Preprocessing
from isnet.devices import choose_device, device_label
from isnet.io.checkpoints import load_checkpoint, save_checkpoint
from isnet.io.imagenet import imagenet_preprocessing
from isnet.training.config import TrainConfig
from isnet.training.evaluate import measure
from isnet.training.lightning import RunFiles, fit_lightning
from isnet.training.loop import seed_everything
from isnet.training.methods import create_network
from isnet.training.transfer import for_classes

logger = logging.getLogger("isnet.train")

SHOWN_PROBLEMS = 20
"""Problems printed one by one; the rest are counted (all are in the checkpoint's summary)."""


def train_on_files(args: argparse.Namespace, config: TrainConfig, command: str,
                   git_commit: str | None) -> int:
    """Run the steps of the module docstring. Returns the exit status (1: nothing saved)."""
    device = run_device(args.device, args.accelerator)
    start_model, start_metadata = _starting_point(args.init)
    preprocessing = _preprocessing(args, start_metadata)
    splits = open_splits(args.data, preprocessing, args.val_data, args.test_data,
                         args.val_ratio, args.test_ratio, config.seed, args.layout)
    _report_problems(splits.problems)
    config = replace(config, num_classes=len(splits.class_names), input_size=preprocessing.size,
                     normalisation=None if preprocessing.mean is None else
                     (tuple(preprocessing.mean), tuple(preprocessing.std or ())),
                     recalibrate_batchnorm=not args.no_recalibrate_batchnorm,
                     model=start_metadata.get("model_name", config.model)
                     if start_model is not None else config.model)
    seed_everything(config.seed, config.deterministic)  # the fresh weights and head are seeded
    model = _model(start_model, start_metadata, splits.class_names, config)
    logger.info("training %s (%s) at %d px on %d images of %d classes (val %d, test %d) on %s",
                config.model, config.method, preprocessing.size, len(splits.train or ()),
                len(splits.class_names), len(splits.val or ()), len(splits.test or ()),
                device_label(device))
    folder = args.run_dir or args.out.with_suffix(".run")
    result, trainer = fit_lightning(
        model, splits.train, splits.val, config, devices=_devices(args.devices, device),
        num_nodes=args.num_nodes or 1, strategy=args.strategy or "auto",
        accelerator="gpu" if device.type == "cuda" else "cpu", root_dir=str(folder),
        progress_bar=True, workers=args.workers, precision=args.precision,
        run_files=RunFiles(folder, args.resume), max_steps=args.max_steps)
    if not trainer.is_global_zero:
        return 0
    logger.info("training %s after %d steps in %.0f s; %s", result.status, result.steps,
                result.seconds, _skip_summary(result.skipped))
    if not result.usable:
        logger.error("training %s: nothing saved to %s. %s", result.status, args.out.name,
                     result.advice or "")
        return 1
    trained = result.model.to(device).float()
    metrics: dict[str, Any] = {"train_seconds": round(result.seconds, 1), "steps": result.steps,
                               "status": result.status, "history": result.history,
                               **_evaluations(trained, splits, config, args.workers)}
    data = {**splits.describe(), "skipped_while_training": len(result.skipped),
            "skipped_examples": dict(list(result.skipped.items())[:SHOWN_PROBLEMS])}
    save_checkpoint(args.out, trained.cpu(), model_name=config.model,
                    class_names=splits.class_names, input_size=preprocessing.size,
                    normalisation=preprocessing.normalisation, bounds=preprocessing.bounds(),
                    seed=config.seed, config=config.to_dict(), data=data, metrics=metrics,
                    half=args.half, overwrite=args.overwrite,
                    provenance={"command": command, "git_commit": git_commit,
                                "trainer": "lightning", "world_size": trainer.world_size,
                                "device": device_label(device), "precision": args.precision
                                or "32-true", "run_dir": str(folder),
                                "rank_shares": result.rank_shares})
    logger.info("wrote %s", args.out)
    return 0


def run_device(device: str, accelerator: str | None) -> Any:
    """The device of a ``--data`` run: ``--device``, or what ``--accelerator`` (the scale-out
    flag) names when ``--device`` is left at auto (``gpu`` → cuda, ``cpu`` → cpu).

    Raises:
        ValueError: the two disagree (e.g. ``--device cpu --accelerator gpu``), or CUDA is asked
            for without a GPU.
    """
    wanted = {"gpu": "cuda", "cpu": "cpu"}.get(accelerator or "auto")
    if wanted is not None and device != "auto" and not device.startswith(wanted):
        raise ValueError(f"--device {device} and --accelerator {accelerator} disagree; give one")
    return choose_device(wanted if wanted is not None and device == "auto" else device)


def _starting_point(init: Path | None) -> tuple[nn.Module | None, dict[str, Any]]:
    """The ``--init`` network and its metadata, or (None, {})."""
    if init is None:
        return None, {}
    loaded = load_checkpoint(init)
    return loaded.model, loaded.metadata


def _preprocessing(args: argparse.Namespace, metadata: dict[str, Any]) -> Preprocessing:
    """Size and normalisation from ``--size`` / ``--normalise`` or the starting checkpoint."""
    augmentation = {"resize": args.resize, "flip": args.flip, "jitter": args.jitter}
    if args.normalise == "none":
        metadata = {**metadata, "normalisation": None}
    elif args.normalise == "imagenet":
        stats = imagenet_preprocessing(metadata.get("model_name"))
        metadata = {**metadata, "normalisation": {"mean": stats.mean, "std": stats.std}}
    return Preprocessing.from_metadata(metadata, args.size or metadata.get("input_size") or 224,
                                       **augmentation)


def _model(start: nn.Module | None, metadata: dict[str, Any], class_names: list[str],
           config: TrainConfig) -> nn.Module:
    """The network to train: ``start`` with a head for ``class_names`` (new when its classes
    differ), or a fresh one."""
    if start is None:
        return create_network(config)
    model, replaced = for_classes(start, list(metadata.get("class_names") or []), class_names)
    if replaced:
        logger.info("new classifier head for %d classes (the starting weights had %d)",
                    len(class_names), len(metadata.get("class_names") or []))
    return model


def _devices(requested: str | None, device: Any) -> int | str | list[int]:
    """Lightning's ``devices``: ``--devices`` when given, else the one ``--device`` names."""
    if requested is not None:
        return int(requested) if str(requested).isdigit() else requested
    return [device.index] if device.index is not None else 1


def _evaluations(model: nn.Module, splits: DatasetSplits, config: TrainConfig,
                 workers: int) -> dict[str, Any]:
    """Accuracy and background share on the validation and test splits."""
    found = {}
    for name, part in (("val", splits.val), ("test", splits.test)):
        if part is not None:
            found[name] = measure(model, part, batch_size=config.batch_size,
                                  epsilon=config.epsilon, zb=config.zb, bounds=config.bounds,
                                  workers=workers)
            logger.info("%s: %s", name, found[name])
    return found


def _report_problems(problems: list[str]) -> None:
    for line in problems[:SHOWN_PROBLEMS]:
        logger.warning("left out: %s", line)
    if len(problems) > SHOWN_PROBLEMS:
        logger.warning("... and %d more left out (all are counted in the checkpoint)",
                       len(problems) - SHOWN_PROBLEMS)


def _skip_summary(skipped: dict[str, str]) -> str:
    return SkipLog(dict(skipped)).summary()
