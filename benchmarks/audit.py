"""Audit speed and how cleanly strategy discovery (SpRAy) finds the shortcut.

``python -m benchmarks.audit [--images 1000] [--threads 2] [--models standard isnet]``

Takes the bundled experiment's test images twice: with the class mark (biased split) and without
it (unbiased split), audits both halves with the bundled standard DenseNet121 (which learned the
mark) and the ISNet, and reports per model: seconds for the audit, images per second, the share of
the top-ranked half that carries a mark, and per class the number of strategies the eigengap
found and the adjusted Rand index (ARI) of the clusters against "has a mark" (1 = the clusters are
exactly marked / unmarked; 0 = no relation). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

import isnet
from isnet.analysis.audit import audit_images, lrp_explainer, rank_by_background
from isnet.analysis.strategies import find_strategies
from isnet.training.experiment import ExperimentData, evaluation_set

MODELS = {"standard": "assets/checkpoints/standard_densenet121.safetensors",
          "isnet": "assets/checkpoints/isnet_densenet121.safetensors"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="test images per half")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS),
                        help="which bundled models to audit (default: both)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = ExperimentData(test_limit=args.images)
    marked, clean = evaluation_set(data, "biased"), evaluation_set(data, "unbiased")
    images = torch.cat([marked.images, clean.images])
    masks = torch.cat([marked.masks, clean.masks])
    labels = torch.cat([marked.labels, clean.labels])
    has_mark = np.r_[np.ones(len(marked)), np.zeros(len(clean))].astype(bool)
    print("| model | images | audit s | images/s | marked in top half | clusters per class "
          "| ARI (clusters vs has-mark), mean over classes | clustering s |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for name in args.models:
        model, metadata = isnet.load_checkpoint(MODELS[name])
        trained = metadata.get("config") or {}  # explained as it was trained, as the app does
        lrp = isnet.LRPConfig(epsilon=trained.get("epsilon", 0.01), zb=trained.get("zb", True))
        start = time.perf_counter()
        result = audit_images(model, images, masks, labels, batch_size=64,
                              explainer=lrp_explainer(lrp))
        seconds = time.perf_counter() - start
        top = rank_by_background(result)[: len(images) // 2].numpy()
        start = time.perf_counter()
        counts, scores = [], []
        for label in range(10):  # SpRAy per true class: marked and clean images of that class
            members = np.flatnonzero(labels.numpy() == label)
            if len(members) < 10:
                continue
            found = find_strategies(result.relevance[members], seed=0)
            counts.append(found.num_clusters)
            scores.append(adjusted_rand_score(has_mark[members], found.labels))
        cluster_seconds = time.perf_counter() - start
        print(f"| {name} | {len(images)} | {seconds:.1f} | {len(images) / seconds:.0f} | "
              f"{has_mark[top].mean():.3f} | {counts} | {np.mean(scores):.3f} | "
              f"{cluster_seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
