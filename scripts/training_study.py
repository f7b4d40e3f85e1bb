"""Which recipe lets the ISNet learn as fast as the standard model? (issue: ISNet learning speed)

Trains the bundled Fashion-MNIST shortcut experiment (:mod:`isnet.training.experiment`) with one
recipe per row of :data:`RECIPES`, evaluates each model on biased, unbiased and confounding test
images, and writes ``study.json`` (per-epoch history + test results) and ``study.md`` to
``--out-dir``. The best ISNet row (highest unbiased accuracy with |biased − confounding| ≤ 3
points) is saved as a float16 checkpoint.

GPU (Lightning, the same loss code as the CPU loop)::

    python -m scripts.training_study --out-dir results/study --accelerator gpu

CPU (slow: minutes per row)::

    python -m scripts.training_study --out-dir results/study --accelerator cpu --rows isnet_clip1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from isnet import TrainConfig, create_model, measure, save_checkpoint
from isnet.training.experiment import DEMO_BIAS, ExperimentData, evaluation_set, training_sets
from isnet.training.lightning import fit_lightning

BASE = TrainConfig(model="densenet121", num_classes=10, method="selective", epochs=15,
                   batch_size=32, learning_rate=0.05, schedule="cosine", seed=0, input_size=64)
RECIPES: dict[str, tuple[str, dict]] = {  # name: (training condition, TrainConfig changes)
    "standard": ("biased", dict(method="standard")),
    "ceiling_unbiased": ("unbiased", dict(method="standard")),
    "isnet_clip1": ("biased", dict()),
    "isnet_clip10": ("biased", dict(grad_clip_norm=10.0)),
    "isnet_clip100": ("biased", dict(grad_clip_norm=100.0)),
    "isnet_clip10_P0.5": ("biased", dict(grad_clip_norm=10.0, heat_weight=0.5)),
    "isnet_clip10_E10": ("biased", dict(grad_clip_norm=10.0, saturation=10.0)),
    "isnet_clip10_hybrid": ("biased", dict(grad_clip_norm=10.0, foreground_form="hybrid")),
    "isnet_clip10_stochastic": ("biased", dict(grad_clip_norm=10.0, method="stochastic")),
    "isnet_clip10_all": ("biased", dict(grad_clip_norm=10.0, method="all")),
}


def run_row(name: str, data: ExperimentData, accelerator: str) -> dict:
    """Train and evaluate one recipe; returns its history, test results and model."""
    split, changes = RECIPES[name]
    config = replace(BASE, **changes)
    data = replace(data, train_split=split)
    train, val = training_sets(data)
    model = create_model(config.model, config.num_classes)
    result, _ = fit_lightning(model, train, val, config, accelerator=accelerator,
                              root_dir="/tmp/isnet-study")
    device = "cuda" if accelerator == "gpu" else "cpu"
    trained = result.model.to(device).eval()
    test = {s: measure(trained, evaluation_set(data, s), batch_size=256)
            for s in ("biased", "unbiased", "confounding")}
    return {"name": name, "config": config.to_dict(), "data": data.to_dict(),
            "status": result.status, "seconds": round(result.seconds, 1),
            "history": result.history, "test": test, "model": trained.cpu()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--accelerator", default="gpu", choices=["gpu", "cpu"])
    parser.add_argument("--rows", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--root", default=None, help="Fashion-MNIST folder")
    parser.add_argument("--budget-s", type=float, default=1e9, help="start no row after this")
    parser.add_argument("--train-limit", type=int, default=2000)
    args = parser.parse_args()
    data = ExperimentData(size=64, train_limit=args.train_limit, val_limit=300, test_limit=1000,
                          bias=DEMO_BIAS, seed=0, root=args.root)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    for name in args.rows:
        if time.perf_counter() - start > args.budget_s:
            print(f"budget spent; skipped {name}", flush=True)
            continue
        row = run_row(name, data, args.accelerator)
        rows.append(row)
        t = row["test"]
        print(f"{name}: {row['status']} {row['seconds']} s; " + " / ".join(
            f"{s} {100 * t[s]['accuracy']:.1f}% share {t[s]['background_share']:.3f}"
            for s in t), flush=True)
        (args.out_dir / "study.json").write_text(json.dumps(
            [{k: v for k, v in r.items() if k != "model"} for r in rows], indent=1))
    lines = ["| recipe | biased | unbiased | confounding | bg share (unbiased) | s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["test"]
        lines.append(f"| {r['name']} | " + " | ".join(f"{100 * t[s]['accuracy']:.1f}" for s in
                     ("biased", "unbiased", "confounding")) +
                     f" | {t['unbiased']['background_share']:.3f} | {r['seconds']} |")
    (args.out_dir / "study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    robust = [r for r in rows if r["name"].startswith("isnet") and abs(
        r["test"]["biased"]["accuracy"] - r["test"]["confounding"]["accuracy"]) <= 0.03]
    if robust:
        best = max(robust, key=lambda r: r["test"]["unbiased"]["accuracy"])
        save_checkpoint(args.out_dir / "isnet_densenet121.safetensors", best["model"],
                        model_name="densenet121", class_names=list(
                            training_sets(data)[0].class_names)[:10], input_size=64, seed=0,
                        config=best["config"], data=best["data"],
                        metrics={"test": best["test"], "history": best["history"],
                                 "train_seconds": best["seconds"], "status": best["status"]},
                        provenance={"command": "python -m scripts.training_study",
                                    "recipe": best["name"], "device": torch.cuda.get_device_name()
                                    if torch.cuda.is_available() else "cpu"},
                        half=True, overwrite=True)
        print(f"saved {best['name']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
