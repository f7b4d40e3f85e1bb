"""Command line training: ``python -m isnet.train --out FILE [options]``.

Two sources of images:

* ``--data PATH`` (your own dataset): a folder or CSV manifest in any layout of
  :mod:`isnet.data.layouts`, streamed from disk by ``--workers`` processes, split by the
  source, by ``--val-data`` / ``--test-data`` or by seeded stratified ratios; always trained
  through Lightning (:mod:`isnet.training.files_run`): ``--device``, ``--precision``,
  ``--resume``, a progress bar, per-epoch metrics (CSV) and a resume checkpoint in
  ``--run-dir``;
* otherwise the bundled Fashion-MNIST background-bias experiment
  (:mod:`isnet.training.experiment`), evaluated on the biased, unbiased and confounding test
  images.

Each run writes one checkpoint (:mod:`isnet.io.checkpoints`) with the configuration, data
description, metrics and the command line that made it. A run that diverged or ended with
non-finite weights saves nothing and exits with status 1.

Single process (default): the plain loop :func:`isnet.fit`. Scale-out: any of ``--devices``,
``--num-nodes``, ``--strategy`` or ``--accelerator`` switches to Lightning
(:mod:`isnet.training.lightning`), e.g.::

    python -m isnet.train --out run.safetensors --devices 2 --strategy ddp --accelerator cpu
    python -m isnet.train --out run.safetensors --devices 8 --num-nodes 4 --strategy ddp \\
        --accelerator gpu
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from isnet.compilation import COMPILE_MODES
from isnet.devices import DEVICE_CHOICES
from isnet.io.checkpoints import load_checkpoint, save_checkpoint
from isnet.models import MODEL_NAMES
from isnet.training.balance import GRADIENT_BALANCES
from isnet.training.config import OPTIMIZERS, TRAINING_METHODS, TrainConfig
from isnet.training.evaluate import measure
from isnet.training.experiment import (
    DEMO_BIAS,
    ExperimentData,
    evaluation_set,
    training_sets,
)
from isnet.training.loop import FitResult, fit
from isnet.training.methods import create_network, get_method
from isnet.training.recipes import RECIPES

logger = logging.getLogger("isnet.train")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults come from TrainConfig and ExperimentData)."""
    base, data = TrainConfig(), ExperimentData()
    parser = argparse.ArgumentParser(prog="python -m isnet.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--half", action="store_true", help="store weights as float16")
    parser.add_argument("--init", type=Path, help="start from this checkpoint's weights")
    parser.add_argument("--model", default=base.model, choices=MODEL_NAMES)
    parser.add_argument("--method", "--variant", dest="method", default=base.method,
                        choices=TRAINING_METHODS,
                        help="training method (--variant is the 0.1 spelling, still accepted)")
    parser.add_argument("--epochs", type=int, default=base.epochs)
    parser.add_argument("--batch-size", type=int, default=base.batch_size)
    parser.add_argument("--lr", type=float, default=base.learning_rate, help="learning rate")
    parser.add_argument("--momentum", type=float, default=base.momentum,
                        help="SGD momentum, or AdamW's beta1")
    parser.add_argument("--optimizer", default=base.optimizer, choices=list(OPTIMIZERS),
                        help="sgd (the authors') or adamw (wants --lr near 1e-3)")
    parser.add_argument("--schedule", default=base.schedule, choices=["constant", "cosine"])
    parser.add_argument("--heat-weight", type=float, default=base.heat_weight, help="P")
    parser.add_argument("--decay", type=float, default=base.decay, help="GWRP decay d")
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        choices=list(COMPILE_MODES),
                        help="compile the ISNet walk with torch.compile (optionally a mode: "
                             "reduce-overhead = CUDA graphs); the first step compiles, a failed "
                             "compile runs eagerly with one warning (docs/performance.md)")
    parser.add_argument("--epsilon", type=float, default=base.epsilon, help="LRP ε")
    parser.add_argument("--input-rule", choices=["zb", "epsilon"],
                        default="zb" if base.zb else "epsilon",
                        help="LRP rule at the input layer of the training heatmaps: the paper's "
                             "z^B, or ε (black pixels then get no relevance)")
    parser.add_argument("--foreground-range", type=float, nargs=2, metavar=("C1", "C2"),
                        default=base.foreground_range,
                        help="the band of the heatmap loss's foreground total F")
    parser.add_argument("--foreground-form", choices=["l2", "hybrid"], default=base.foreground_form,
                        help="l2: the paper's quadratic band; hybrid: Faster ISNet's, linear "
                             "above C1 + C2")
    parser.add_argument("--saturation", type=float, default=base.saturation,
                        help="E, the background term's saturation")
    parser.add_argument("--grad-clip", type=float, default=base.grad_clip_norm,
                        help="gradient-norm clip c (0 = none)")
    parser.add_argument("--gradient-balance", default=base.gradient_balance,
                        choices=list(GRADIENT_BALANCES),
                        help="clip the ISNet's CE and heatmap gradients jointly or separately")
    parser.add_argument("--heat-warmup-epochs", type=int, default=base.heat_warmup_epochs,
                        help="P rises linearly from 0 over these epochs")
    parser.add_argument("--mask-margin", type=int, default=base.mask_margin,
                        help="grow the masks by this many pixels for the heatmap loss (relevance "
                             "along the object's edge is then not penalised; 0 = the paper's)")
    parser.add_argument("--background-tint", type=float, default=base.background_tint,
                        help="probability that a training image's background gets a random "
                             "colour for one step (robustness to whole-background changes, "
                             "which LRP cannot see; 0 = off)")
    parser.add_argument("--recipe", default="engine", choices=list(RECIPES),
                        help="named settings applied after the options above "
                             "(isnet.training.recipes; bundled = the bundled ISNet's)")
    parser.add_argument("--seed", type=int, default=base.seed)
    parser.add_argument("--size", type=int, default=None,
                        help=f"image side in pixels (default {data.size} for the experiment; "
                             "for --data the --init checkpoint's size, else 224)")
    parser.add_argument("--train-limit", type=int, default=data.train_limit)
    parser.add_argument("--val-limit", type=int, default=data.val_limit)
    parser.add_argument("--test-limit", type=int, default=data.test_limit)
    parser.add_argument("--train-split", default=data.train_split, choices=["biased", "unbiased"])
    parser.add_argument("--bias-kind", default=DEMO_BIAS.kind, help="isnet.data.bias.BIAS_KINDS")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the test splits")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--deterministic", action="store_true",
                        help="torch.use_deterministic_algorithms(True) (the authors' advice)")
    files = parser.add_argument_group("your own dataset (--data)")
    files.add_argument("--data", type=Path, help="training images: a folder (class folders "
                       "with x.mask.png, or images/ + masks/ trees) or a CSV manifest (image, "
                       "mask, label[, split])")
    files.add_argument("--val-data", type=Path, help="validation images (default: the "
                       "source's val split, else --val-ratio of --data)")
    files.add_argument("--test-data", type=Path, help="test images (default: the source's "
                       "test split, else --test-ratio of --data)")
    files.add_argument("--val-ratio", type=float, default=0.1)
    files.add_argument("--test-ratio", type=float, default=0.1)
    files.add_argument("--layout", default="auto",
                       choices=["auto", "class-folders", "mask-tree", "manifest"])
    files.add_argument("--workers", type=int, default=2, help="decoding processes per device")
    files.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} or "
                       "cuda:N (sets --accelerator and --devices)")
    files.add_argument("--precision", default=None,
                       choices=["32-true", "32", "bf16-mixed", "16-mixed", "64-true"],
                       help="bf16-mixed / 16-mixed on GPU; 64-true for exact checks")
    files.add_argument("--run-dir", type=Path, help="metrics.csv and the resume checkpoint "
                       "(default: --out with .run instead of its suffix)")
    files.add_argument("--resume", action="store_true",
                       help="continue the stopped run in --run-dir from its last epoch, with "
                            "its optimiser and schedule state")
    files.add_argument("--normalise", default="auto", choices=["auto", "imagenet", "none"],
                       help="input normalisation (auto: the --init checkpoint's, ImageNet's "
                            "for torchvision weights, else none)")
    files.add_argument("--resize", default="squeeze", choices=["squeeze", "crop"],
                       help="evaluation resize: the whole image to size x size, or "
                            "torchvision's resize-and-centre-crop")
    files.add_argument("--flip", type=float, default=0.5, help="horizontal flip probability "
                       "in training (0 for images whose sides differ, e.g. chest X-rays)")
    files.add_argument("--jitter", type=float, default=0.1, help="colour jitter (0 = off)")
    files.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps")
    files.add_argument("--no-recalibrate-batchnorm", action="store_true",
                       help="skip re-estimating BatchNorm statistics over the training set after "
                            "each epoch (a forward-only pass; without it an ISNet's eval-mode "
                            "accuracy can fall to chance, TrainConfig.recalibrate_batchnorm)")
    scale = parser.add_argument_group("Lightning scale-out (any of these switches it on)")
    scale.add_argument("--devices", default=None, help="devices per node (int or 'auto')")
    scale.add_argument("--num-nodes", type=int, default=None)
    scale.add_argument("--strategy", default=None, help="e.g. ddp, ddp_spawn, auto")
    scale.add_argument("--accelerator", default=None, choices=["cpu", "gpu", "auto"])
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, ExperimentData]:
    """The run's TrainConfig and data description from parsed arguments."""
    from dataclasses import replace

    data = ExperimentData(size=args.size or ExperimentData().size, train_limit=args.train_limit,
                          val_limit=args.val_limit, test_limit=args.test_limit,
                          train_split=args.train_split,
                          bias=replace(DEMO_BIAS, kind=args.bias_kind), seed=args.seed)
    comparison = get_method(args.method)  # a comparison method may bring its own network
    model = comparison.model_name(args.model) if comparison else args.model
    config = TrainConfig(model=model, num_classes=10, method=args.method,
                         epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         momentum=args.momentum, optimizer=args.optimizer,
                         schedule=args.schedule,
                         heat_weight=args.heat_weight, decay=args.decay,
                         epsilon=args.epsilon, zb=args.input_rule == "zb",
                         foreground_range=tuple(args.foreground_range),
                         foreground_form=args.foreground_form, saturation=args.saturation,
                         seed=args.seed, input_size=data.size,
                         grad_clip_norm=args.grad_clip or None,
                         gradient_balance=args.gradient_balance,
                         heat_warmup_epochs=args.heat_warmup_epochs,
                         background_tint=args.background_tint, mask_margin=args.mask_margin,
                         deterministic=args.deterministic, compile=args.compile)
    return RECIPES[args.recipe](config), data


def main(argv: Sequence[str] | None = None) -> int:
    """Train, evaluate and save (see the module docstring). Returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; pass --overwrite or choose another --out")
    if args.data is not None:
        from isnet.training.files_run import train_on_files

        return train_on_files(args, config_from_args(args)[0], _command(argv), _git_commit())
    config, data = config_from_args(args)
    train, val = training_sets(data)
    model = create_network(config)
    if args.init is not None:
        model.load_state_dict(load_checkpoint(args.init).model.state_dict())
    lightning = any(v is not None for v in (args.devices, args.num_nodes, args.strategy,
                                            args.accelerator))
    if lightning:
        result, is_main, world_size = _run_lightning(model, train, val, config, args)
    else:
        result = fit(model, train, val, config, on_progress=_log_progress)
        is_main, world_size = True, 1
    if not is_main:
        return 0
    logger.info("training %s after %d steps in %.0f s", result.status, result.steps,
                result.seconds)
    if not result.usable:  # diverged or failed: the weights are not worth saving
        logger.error("training %s: nothing saved to %s. %s", result.status, args.out.name,
                     result.advice or "")
        return 1
    metrics = {"train_seconds": round(result.seconds, 1), "steps": result.steps,
               "status": result.status, "history": result.history}
    if not args.no_evaluate:
        metrics["test"] = {split: measure(result.model, evaluation_set(data, split))
                           for split in ("biased", "unbiased", "confounding")}
        logger.info("test: %s", metrics["test"])
    save_checkpoint(args.out, result.model, model_name=config.model,
                    class_names=list(train.class_names), input_size=config.input_size,
                    seed=config.seed, config=config.to_dict(), data=data.to_dict(),
                    metrics=metrics, half=args.half, overwrite=args.overwrite,
                    provenance={"command": _command(argv),
                        "git_commit": _git_commit(), "trainer": "lightning" if lightning
                        else "isnet.fit", "world_size": world_size,
                        "advice": result.advice})
    logger.info("wrote %s", args.out)
    return 0


def _run_lightning(model, train, val, config: TrainConfig,
                   args: argparse.Namespace) -> tuple[FitResult, bool, int]:
    from isnet.training.lightning import fit_lightning

    devices = args.devices or 1
    devices = int(devices) if str(devices).isdigit() else devices
    result, trainer = fit_lightning(model, train, val, config, devices=devices,
                                    num_nodes=args.num_nodes or 1,
                                    strategy=args.strategy or "auto",
                                    accelerator=args.accelerator or "auto",
                                    root_dir=str(args.out.parent))
    return result, trainer.is_global_zero, trainer.world_size


def _log_progress(step: int, total: int, metrics: dict) -> None:
    if step % 10 == 0 or "val_accuracy" in metrics:
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        logger.info("step %d/%d epoch %d %s", step, total, metrics["epoch"], shown)


def _command(argv: Sequence[str] | None) -> str:
    return "python -m isnet.train " + " ".join(sys.argv[1:] if argv is None else argv)


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
