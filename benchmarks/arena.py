"""The arena: the paper's comparison, one command. ``python -m benchmarks.arena``.

Trains every method on the same biased split of the bundled Fashion-MNIST shortcut experiment
(:mod:`isnet.training.experiment`: a class-coded mark in the background corner of every training
image) with the same epochs, seed, batch size and learning rate, then tests each on biased,
unbiased (no mark) and confounding (mark of another class) test images.

Per method it writes, into ``--out-dir``:

* ``<method>.safetensors`` — the trained network (loads with :func:`isnet.load_checkpoint`);
* ``<method>.json`` — its results; with ``--resume`` a method whose JSON exists is not rerun,
  and the summary also lists every other method's JSON already in ``--out-dir``;

and for all methods together ``arena.json``, ``arena.md`` (the table) and ``arena.png``
(accuracy drop biased → confounding against background share).

Background share: of the LRP heatmap (predicted class) where the network has an LRP walk, else of
the method's native map (predicted mask, attention rollout); the table shows both columns.
Training seconds per epoch exclude evaluation; inference is a plain forward pass (no maps).

Examples::

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

from isnet.data.image_set import ImageSet
from isnet.io.atomic import write_atomically, write_with
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
from isnet.training.recipes import RECIPES

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
    parser.add_argument("--seed", type=int, default=base.seed)
    parser.add_argument("--rrr-weight", type=float, default=base.rrr_weight,
                        help="λ of RRR's penalty")
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


def method_config(method: str, args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of one method: shared settings, the method's own network name."""
    comparison = get_method(method)
    model = comparison.model_name(args.backbone) if comparison else args.backbone
    balance = args.gradient_balance if method in ISNET_METHODS else "joint"
    config = TrainConfig(model=model, num_classes=10, method=method, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
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


def network_label(model: nn.Module, name: str) -> str:
    """The table's name of a trained network (pipelines name their backbone)."""
    if isinstance(model, SegmentThenClassify):
        return f"U-Net → {name}"
    if isinstance(model, HAMNet):
        return f"{name} + HAM head"
    return name


def run_method(method: str, args: argparse.Namespace, data: ExperimentData, train: ImageSet,
               tests: dict[str, ImageSet], device: torch.device) -> dict[str, Any]:
    """Train, save and evaluate one method; returns its result record."""
    config = method_config(method, args)
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
        "method": method, "title": comparison.title if comparison else TITLES[method],
        "model": network_label(model, config.model), "status": result.status,
        "advice": result.advice,
        "steps": result.steps, "epochs_done": len(result.history),
        "train_seconds_per_epoch": result.seconds / max(len(result.history), 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "native_map": comparison.native_name if comparison else "LRP",
        **evaluate_method(model, method, config, tests, args.batch_size)}
    record["inference_ms_per_image"] = inference_ms_per_image(model, tests["biased"].images,
                                                              args.batch_size)
    save_checkpoint(args.out_dir / f"{method}.safetensors", model.cpu(), model_name=config.model,
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
    native = as_explainer(comparison.native_map) if comparison else None
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


def reevaluate(record: dict[str, Any], checkpoint: Path, tests: dict[str, ImageSet],
               batch_size: int, device: torch.device) -> dict[str, Any]:
    """``record`` with its splits measured again on the saved network (float32 weights)."""
    loaded = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(loaded.metadata["config"])
    model = loaded.model.to(device).eval()
    return {**record, **evaluate_method(model, record["method"], config, tests, batch_size)}


def explained_share(record: dict[str, Any], split: str = "biased") -> float:
    """Background share shown in the plot: LRP where available, else the native map's."""
    values = record["splits"][split]
    lrp = values["background_share_lrp"]
    return lrp if lrp is not None else values["background_share_native"]


def markdown_table(records: Sequence[dict[str, Any]], command: str, device: str,
                   uniform_share: float | None = None) -> str:
    """The leaderboard as a Markdown table, with the command and device that made it.

    ``uniform_share`` is the background share of a map spread evenly over each image (the
    background's share of the pixels), shown as the reference below the table.
    """
    def number(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
        return "–" if value is None else f"{value * scale:.{digits}f}"

    commands = list(dict.fromkeys(r.get("command", command) for r in records))
    lines = [f"Made by (device: {device}): " + "; ".join(f"`{c}`" for c in commands), "",
             "| Method | Network | Acc. biased | Acc. unbiased | Acc. confounding | "
             "BG share LRP | BG share native (map) | Train s/epoch | Inference ms/image | "
             "Parameters | Status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        s = r["splits"]
        lines.append(
            f"| {r['title']} | {r['model']} | {number(s['biased']['accuracy'], 100)} % | "
            f"{number(s['unbiased']['accuracy'], 100)} % | "
            f"{number(s['confounding']['accuracy'], 100)} % | "
            f"{number(s['biased']['background_share_lrp'], 1, 3)}"
            f"{' (ε input)' if r.get('lrp_input_rule') == 'ε' else ''} | "
            f"{number(s['biased']['background_share_native'], 1, 3)} ({r['native_map']}) | "
            f"{r['train_seconds_per_epoch']:.1f} | {r['inference_ms_per_image']:.2f} | "
            f"{r['parameters']:,} | {r['status']} |")
    lines += ["", "Accuracy on 10 classes (chance 10 %). BG share: share of absolute relevance "
              "outside the object mask on the biased test images (0 = all on the object)."]
    if uniform_share is not None:
        lines[-1] += f" A map spread evenly over the image scores {uniform_share:.3f}."
    return "\n".join(lines) + "\n"


def plot(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Accuracy drop biased → confounding (points) against background share, one dot a method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    colours = plt.get_cmap("tab20").colors
    for index, r in enumerate(records):
        drop = 100 * (r["splits"]["biased"]["accuracy"] - r["splits"]["confounding"]["accuracy"])
        share = explained_share(r)
        marker = "o" if r["splits"]["biased"]["background_share_lrp"] is not None else "s"
        biased = 100 * r["splits"]["biased"]["accuracy"]
        unbiased = 100 * r["splits"]["unbiased"]["accuracy"]
        axes.scatter(share, drop, marker=marker, s=60, color=colours[index % len(colours)],
                     edgecolors="black", linewidths=0.5, alpha=0.85,
                     label=f"{r['title']} ({biased:.0f} / {unbiased:.0f} %)")
    # a legend beside the axes: methods often share a point (every shortcut learner sits at a
    # drop of ~100), where text labels would print over each other
    axes.legend(title="method (biased / unbiased accuracy)", fontsize=8, title_fontsize=8,
                loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    axes.set_xlabel("background share on biased test images (● LRP, ■ native map)")
    axes.set_ylabel("accuracy drop biased → confounding (points)")
    axes.set_title("Shortcut reliance: accuracy lost when the corner mark names another class",
                   fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    write_with(path, lambda temporary: figure.savefig(temporary, dpi=120, format="png"),
               overwrite=True)
    plt.close(figure)


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
    data = ExperimentData(size=args.size, train_limit=args.train_limit, val_limit=1,
                          test_limit=args.test_limit, seed=args.seed, root=args.root)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU")
    train, tests = None, None
    records = []
    for method in methods:
        path = args.out_dir / f"{method}.json"
        checkpoint = args.out_dir / f"{method}.safetensors"
        skipped = args.resume and path.exists() and not (args.reevaluate and checkpoint.exists())
        if train is None and not skipped:  # the images, once, when a method needs them
            train = training_sets(data)[0].to(device)
            tests = {split: evaluation_set(data, split).to(device) for split in SPLITS}
        if args.resume and path.exists():
            record = json.loads(path.read_text())
            if args.reevaluate and checkpoint.exists():
                logger.info("%s: evaluated again from %s (--reevaluate)", method, checkpoint)
                record = reevaluate(record, checkpoint, tests, args.batch_size, device)
                record.update(evaluated_on=device_name, evaluation_command=command)
                write_atomically(path, [json.dumps(record, indent=2).encode()], overwrite=True)
            else:
                logger.info("%s: result exists, skipped (--resume)", method)
            records.append(record)
            continue
        record = {**run_method(method, args, data, train, tests, device), "command": command,
                  "device": str(device), "device_name": device_name}
        write_atomically(path, [json.dumps(record, indent=2).encode()], overwrite=True)
        records.append(record)
    if args.resume:  # earlier runs of other subsets join the table
        done = {r["method"] for r in records}
        records += [json.loads((args.out_dir / f"{m}.json").read_text()) for m in TRAINING_METHODS
                    if m not in done and (args.out_dir / f"{m}.json").exists()]
        records.sort(key=lambda r: TRAINING_METHODS.index(r["method"]))
    # a table of resumed results names the devices that trained them
    device_name = ", ".join(dict.fromkeys(r.get("device_name", r["device"]) for r in records)
                            ) or device_name
    masks = evaluation_set(data, "biased").masks
    uniform = float((1 - masks).mean())  # background share of an even map
    summary = {"command": command, "device": device_name, "data": data.to_dict(),
               "uniform_map_background_share": uniform, "methods": records}
    write_atomically(args.out_dir / "arena.json", [json.dumps(summary, indent=2).encode()],
                     overwrite=True)
    table = markdown_table(records, command, device_name, uniform)
    write_atomically(args.out_dir / "arena.md", [table.encode()], overwrite=True)
    plot(records, args.out_dir / "arena.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
