"""The arena: the paper's comparison, one command. ``python -m benchmarks.arena``.

Trains every method on the same biased split of the bundled Fashion-MNIST shortcut experiment
(:mod:`isnet.training.experiment`: a class-coded mark in the background corner of every training
image) with the same epochs, seed, batch size and learning rate, then tests each on biased,
unbiased (no mark) and confounding (mark of another class) test images.

Per run (a method at one seed) it writes, into ``--out-dir``:

* ``<run>.safetensors`` — the trained network (loads with :func:`isnet.load_checkpoint`);
* ``<run>.json`` — its results, with the **robustness columns**: the accuracy drop under each
  kind the model never saw (shape, decoy, text, tint, texture; :mod:`isnet.training.robustness`);
  with ``--resume`` a run whose JSON exists is not rerun;

``<run>`` is ``<method>`` for one ``--seed`` and ``<method>-seed<k>`` with ``--seeds 0 1 2``
(``-unbiased`` is added for ``--train-split unbiased``, the unbiased-trained ceiling). For every
run in the folder together it writes ``arena.json`` (runs and rows), ``arena.md`` (one row per
method: mean and range over seeds; :mod:`benchmarks.arena_report`) and ``arena.png`` (shortcut
panel and unseen-kinds panel). ``--table-only`` remakes these three from the runs' JSON files,
measuring missing robustness columns from the checkpoints.

Background share: of the LRP heatmap (predicted class) where the network has an LRP walk, else of
the method's native map (predicted mask, attention rollout); the table shows both columns.
Training seconds per epoch exclude evaluation; inference is a plain forward pass (no maps).

Examples::

    python -m benchmarks.arena --methods background_swap,isnet_swap --seeds 0 1 2 \\
        --size 64 --train-limit 2000 --test-limit 1000 --epochs 15 --lr 0.05 \\
        --schedule cosine --isnet-recipe bundled --out-dir results/arena-seeds

    python -m benchmarks.arena --epochs 1 --size 32 --train-limit 300 --test-limit 200 \\
        --backbone tiny_densenet
    python -m benchmarks.arena --methods standard,selective,rrr,gain --epochs 10 --device cuda \\
        --train-limit 60000 --size 128 --resume
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from benchmarks.arena_report import markdown_table, plot, table_rows
from isnet.data.bias.config import BIAS_KINDS
from isnet.data.image_set import ImageSet
from isnet.io.atomic import write_atomically
from isnet.io.checkpoints import load_checkpoint, save_checkpoint
from isnet.lrp.registry import is_lrp_ready
from isnet.models import MODEL_NAMES
from isnet.models.ham import HAMNet
from isnet.models.unet import SegmentThenClassify
from isnet.training.balance import GRADIENT_BALANCES
from isnet.training.config import ISNET_METHODS, TRAINING_METHODS, TrainConfig
from isnet.training.evaluate import measure
from isnet.training.experiment import ExperimentData, evaluation_set, training_sets
from isnet.training.loop import fit
from isnet.training.methods import as_explainer, create_network, get_method
from isnet.training.methods.registry import LRP_NATIVE_NAME
from isnet.training.recipes import RECIPES
from isnet.training.robustness import robustness

SPLITS = ("biased", "unbiased", "confounding")
TITLES = {"standard": "Standard", "all": "ISNet (all maps)", "selective": "Selective ISNet",
          "stochastic": "Stochastic ISNet"}
logger = logging.getLogger("benchmarks.arena")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (defaults: TrainConfig's, and a 64 px experiment)."""
    base, data = TrainConfig(), ExperimentData()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.arena", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(TRAINING_METHODS),
                        help=f"comma-separated subset of: {', '.join(TRAINING_METHODS)}")
    parser.add_argument("--backbone", default=base.model, choices=MODEL_NAMES,
                        help="classifier for the CNN methods (the ViT and multi-task U-Net "
                             "bring their own network)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=base.batch_size)
    parser.add_argument("--lr", type=float, default=base.learning_rate, help="learning rate")
    parser.add_argument("--schedule", default=base.schedule, choices=["constant", "cosine"])
    parser.add_argument("--gradient-balance", default=base.gradient_balance,
                        choices=list(GRADIENT_BALANCES),
                        help="ISNet methods: clip the CE and heatmap gradients jointly or apart")
    parser.add_argument("--root", default=None, help="Fashion-MNIST folder (default: system)")
    parser.add_argument("--seed", type=int, default=base.seed,
                        help="one seed (files <method>.json); see --seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train each method once per seed (weights, order and data subsets; "
                             "files <method>-seed<k>.json); the table shows mean and range")
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: read every run's JSON in --out-dir, measure the "
                             "robustness columns of runs that lack them (from their checkpoint) "
                             "and write arena.json, arena.md and arena.png")
    parser.add_argument("--rrr-weight", type=float, default=base.rrr_weight,
                        help="λ of RRR's penalty")
    parser.add_argument("--train-split", choices=["biased", "unbiased"], default="biased",
                        help="training condition: the biased split (the arena), or unbiased "
                             "images for the unbiased-trained ceiling")
    parser.add_argument("--size", type=int, default=data.size, help="image side in pixels")
    parser.add_argument("--train-limit", type=int, default=data.train_limit,
                        help="training images (Fashion-MNIST has 60000)")
    parser.add_argument("--test-limit", type=int, default=data.test_limit,
                        help="test images per split")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, …")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out-dir", type=Path, default=Path("results/arena"))
    parser.add_argument("--half", action="store_true",
                        help="store the checkpoints' weights as float16 (for bundled assets)")
    parser.add_argument("--isnet-recipe", choices=sorted(RECIPES), default="engine",
                        help="methods with a heatmap loss: the engine's settings, or the bundled "
                             "ISNet's recipe (isnet.training.recipes)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="stop training after this many seconds of the whole command (the "
                             "method is then evaluated and marked 'stopped')")
    parser.add_argument("--resume", action="store_true",
                        help="skip methods whose <method>.json exists in --out-dir")
    parser.add_argument("--reevaluate", action="store_true",
                        help="with --resume: measure again each listed method whose JSON and "
                             "checkpoint exist in --out-dir (training results are kept; the "
                             "record notes the device it was evaluated on)")
    return parser


def method_config(method: str, args: argparse.Namespace, seed: int | None = None) -> TrainConfig:
    """The TrainConfig of one method: shared settings, the method's own network name (``seed``
    replaces ``args.seed``)."""
    comparison = get_method(method)
    model = comparison.model_name(args.backbone) if comparison else args.backbone
    balance = args.gradient_balance if method in ISNET_METHODS else "joint"
    config = TrainConfig(model=model, num_classes=10, method=method, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.lr,
                         seed=args.seed if seed is None else seed,
                         input_size=args.size, rrr_weight=args.rrr_weight,
                         schedule=args.schedule, gradient_balance=balance)
    return RECIPES[args.isnet_recipe](config)


def inference_ms_per_image(model: nn.Module, images: torch.Tensor, batch_size: int) -> float:
    """Mean wall time of a plain forward pass per image (eval mode, no gradients)."""
    model.eval()
    synchronize = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    with torch.no_grad():
        model(images[:batch_size])  # warm-up
        synchronize()
        start = time.perf_counter()
        for index in range(0, len(images), batch_size):
            model(images[index:index + batch_size])
        synchronize()
    return 1000 * (time.perf_counter() - start) / len(images)


def row_title(method: str, train_split: str = "biased") -> str:
    """The table's name of a method; the unbiased-trained run is the ceiling."""
    comparison = get_method(method)
    title = comparison.title if comparison else TITLES[method]
    return title if train_split == "biased" else f"{title}, unbiased-trained (ceiling)"


def network_label(model: nn.Module, name: str) -> str:
    """The table's name of a trained network (pipelines name their backbone)."""
    if isinstance(model, SegmentThenClassify):
        return f"U-Net → {name}"
    if isinstance(model, HAMNet):
        return f"{name} + HAM head"
    return name


def run_method(method: str, args: argparse.Namespace, data: ExperimentData, train: ImageSet,
               tests: dict[str, ImageSet], device: torch.device, stem: str) -> dict[str, Any]:
    """Train, save (``<stem>.safetensors``) and evaluate one method on ``data`` (its seed is
    the run's); returns its result record."""
    config = method_config(method, args, data.seed)
    torch.manual_seed(config.seed)
    model = create_network(config, in_channels=train.images.shape[1]).to(device)
    steps = config.epochs * -(-len(train) // config.batch_size)
    with tqdm(total=steps, desc=f"{method:>15}", unit="step", leave=True) as bar:
        def progress(step: int, total: int, metrics: dict[str, Any]) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.2f}")

        result = fit(model, train, None, config, on_progress=progress,
                     should_stop=lambda: time.monotonic() > args.deadline)
    model = result.model.eval()
    comparison = get_method(method)
    record: dict[str, Any] = {
        "method": method, "title": row_title(method, data.train_split),
        "seed": config.seed, "train_split": data.train_split, "file": stem,
        "model": network_label(model, config.model), "status": result.status,
        "advice": result.advice,
        "steps": result.steps, "epochs_done": len(result.history),
        "train_seconds_per_epoch": result.seconds / max(len(result.history), 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "native_map": comparison.native_name if comparison else "LRP",
        **evaluate_method(model, method, config, tests, args.batch_size),
        "robustness": robustness_columns(model, data, args.batch_size)}
    record["inference_ms_per_image"] = inference_ms_per_image(model, tests["biased"].images,
                                                              args.batch_size)
    save_checkpoint(args.out_dir / f"{stem}.safetensors", model.cpu(), model_name=config.model,
                    class_names=list(train.class_names), input_size=config.input_size,
                    seed=config.seed, config=config.to_dict(), data=data.to_dict(),
                    metrics={"arena": record}, overwrite=True, half=args.half,
                    provenance={"command": "python -m benchmarks.arena"})
    return record


def evaluate_method(model: nn.Module, method: str, config: TrainConfig,
                    tests: dict[str, ImageSet], batch_size: int) -> dict[str, Any]:
    """Accuracy and background shares on each test split, as the record's ``splits``.

    The LRP heatmap uses the input rule the model was trained with (``config.zb``: z^B or ε), as
    the explorer does; the record names it (``lrp_input_rule``).
    """
    comparison = get_method(method)
    own_map = comparison is not None and comparison.native_name != LRP_NATIVE_NAME
    native = as_explainer(comparison.native_map) if own_map else None  # LRP is measured anyway
    lrp = is_lrp_ready(model)
    splits: dict[str, Any] = {}
    for split, images in tests.items():
        values = {"accuracy": None, "background_share_lrp": None,
                  "background_share_native": None}
        if lrp:
            measured = measure(model, images, batch_size, config.epsilon, zb=config.zb)
            values.update(accuracy=measured["accuracy"],
                          background_share_lrp=measured["background_share"])
        if native is not None or not lrp:
            measured = measure(model, images, batch_size, explainer=native)
            values.update(accuracy=measured["accuracy"],
                          background_share_native=measured["background_share"])
        splits[split] = values
    return {"splits": splits,
            "lrp_input_rule": ("z^B" if config.zb else "ε") if lrp else None}


def robustness_columns(model: nn.Module, data: ExperimentData,
                       batch_size: int) -> dict[str, dict[str, float]]:
    """Accuracy drop per unseen kind (shape, decoy, text, tint, texture) on the run's clean test
    images (:func:`isnet.training.robustness.robustness`, as ``python -m isnet.evaluate
    --robustness`` computes it): ``{kind: {"clean", "planted", "drop_points"}}``."""
    return robustness(model, data, BIAS_KINDS, batch_size=batch_size)


def reevaluate(record: dict[str, Any], checkpoint: Path, tests: dict[str, ImageSet],
               batch_size: int, device: torch.device) -> dict[str, Any]:
    """``record`` with its splits measured again on the saved network (float32 weights)."""
    loaded = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(loaded.metadata["config"])
    model = loaded.model.to(device).eval()
    return {**record, **evaluate_method(model, record["method"], config, tests, batch_size)}


def run_stem(method: str, seed: int, train_split: str, per_seed: bool) -> str:
    """File name (without suffix) of one run: ``<method>[-unbiased][-seed<k>]``."""
    stem = method if train_split == "biased" else f"{method}-unbiased"
    return f"{stem}-seed{seed}" if per_seed else stem


def read_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every run's record in ``out_dir`` (JSON files with ``method`` and ``splits``), each with
    its ``file`` stem."""
    records = []
    for path in sorted(out_dir.glob("*.json")):
        if path.name == "arena.json":
            continue
        record = json.loads(path.read_text())
        if isinstance(record, dict) and "method" in record and "splits" in record:
            records.append({**record, "file": path.stem})
    return records


def fill_robustness(record: dict[str, Any], out_dir: Path, batch_size: int,
                    device: torch.device) -> dict[str, Any]:
    """``record`` with its robustness columns measured from its checkpoint when it lacks them
    (the JSON is rewritten); unchanged when it has them or has no checkpoint."""
    checkpoint = out_dir / f"{record['file']}.safetensors"
    if record.get("robustness") or not checkpoint.is_file():
        return record
    logger.info("%s: measuring the robustness columns from %s", record["file"], checkpoint)
    loaded = load_checkpoint(checkpoint)
    data = ExperimentData.from_dict(loaded.metadata["data"])
    record = {**record, "robustness": robustness_columns(loaded.model.to(device).eval(), data,
                                                         batch_size)}
    write_atomically(out_dir / f"{record['file']}.json",
                     [json.dumps(record, indent=2).encode()], overwrite=True)
    return record


def write_summary(records: list[dict[str, Any]], out_dir: Path, command: str,
                  data: ExperimentData) -> str:
    """arena.json (runs and rows), arena.md and arena.png from the runs' records; returns the
    Markdown table."""
    rows = table_rows(records, TRAINING_METHODS)
    commands = list(dict.fromkeys(r.get("command", command) for r in records)) or [command]
    devices = ", ".join(dict.fromkeys(str(r.get("device_name") or r.get("device") or "?")
                                      for r in records)) or "?"
    masks = evaluation_set(data, "biased").masks
    uniform = float((1 - masks).mean())  # background share of an even map
    summary = {"command": command, "device": devices, "data": data.to_dict(),
               "uniform_map_background_share": uniform, "methods": records, "rows": rows}
    write_atomically(out_dir / "arena.json", [json.dumps(summary, indent=2).encode()],
                     overwrite=True)
    table = markdown_table(rows, commands, devices, uniform)
    write_atomically(out_dir / "arena.md", [table.encode()], overwrite=True)
    plot(rows, out_dir / "arena.png")
    return table


def run_or_resume(method: str, seed: int, args: argparse.Namespace, device: torch.device,
                  images: dict[int, Any], command: str) -> dict[str, Any]:
    """One method at one seed: trained, or read back (``--resume``), or evaluated again
    (``--reevaluate``); its JSON written. ``images`` caches each seed's (data, train, tests)."""
    stem = run_stem(method, seed, args.train_split, args.seeds is not None)
    path, checkpoint = args.out_dir / f"{stem}.json", args.out_dir / f"{stem}.safetensors"
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    skipped = args.resume and path.exists() and not (args.reevaluate and checkpoint.exists())
    if seed not in images and not skipped:  # the images, once per seed, when a run needs them
        data = ExperimentData(size=args.size, train_limit=args.train_limit, val_limit=1,
                              test_limit=args.test_limit, seed=seed, root=args.root,
                              train_split=args.train_split)
        images[seed] = (data, training_sets(data)[0].to(device),
                        {split: evaluation_set(data, split).to(device) for split in SPLITS})
    if args.resume and path.exists():
        record = {**json.loads(path.read_text()), "file": stem}
        if args.reevaluate and checkpoint.exists():
            logger.info("%s: evaluated again from %s (--reevaluate)", stem, checkpoint)
            record = reevaluate(record, checkpoint, images[seed][2], args.batch_size, device)
            record.update(evaluated_on=device_name, evaluation_command=command)
        else:
            logger.info("%s: result exists, skipped (--resume)", stem)
            return record
    else:
        data, train, tests = images[seed]
        record = {**run_method(method, args, data, train, tests, device, stem),
                  "command": command, "device": str(device), "device_name": device_name}
    write_atomically(path, [json.dumps(record, indent=2).encode()], overwrite=True)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """Run the arena (see the module docstring). Returns the exit status."""
    args = build_parser().parse_args(argv)
    args.deadline = time.monotonic() + (args.budget_s if args.budget_s is not None else 1e12)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in TRAINING_METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(TRAINING_METHODS)}")
    device = torch.device(args.device)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.arena " + " ".join(sys.argv[1:] if argv is None else argv)
    seeds = args.seeds if args.seeds is not None else [args.seed]
    images: dict[int, Any] = {}
    if not args.table_only:
        for method in methods:
            for seed in seeds:
                run_or_resume(method, seed, args, device, images, command)
    # the table lists every run in the folder (earlier commands and subsets included)
    records = [fill_robustness(r, args.out_dir, args.batch_size, device)
               for r in read_records(args.out_dir)]
    data = (ExperimentData.from_dict(records[0]["data"]) if records and records[0].get("data")
            else ExperimentData(size=args.size, train_limit=args.train_limit, val_limit=1,
                                test_limit=args.test_limit, seed=seeds[0], root=args.root))
    print(write_summary(records, args.out_dir, command, data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
