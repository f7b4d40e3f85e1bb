"""Through which output does a model read the corner mark? (issue: ISNet learning speed, run 12)

``python -m scripts.mark_channels CKPT [CKPT …] [--images 300] [--json OUT]``

The selective ISNet penalises the background relevance of one heatmap per image: the predicted
class's, which on the biased training images is the mark's class A. A mark can also move the
*other* logits: evidence against every class B ≠ A raises A's margin just as well, and shows only
in the heatmaps of B, which the selective loss never computes (the stochastic variant draws a
random class; the all-maps variant computes every one).

For each checkpoint this takes the bundled experiment's seed-0 test images with the mark of their
own class (biased) and the same images without it (unbiased), and reports:

* **logit effect of the mark** (biased − clean, mean over images, in logit units): on the true
  class A, on the other classes (mean over B ≠ A), and on the margin ``z_A − max_{B≠A} z_B``;
* **what LRP credits to the mark** in the true class's map, ``Σ_mark R_A``, in logit units
  (the ε-rule conserves relevance up to what ε absorbs, so a map sums to about its logit): set
  it beside the mark's measured effect on that logit;
* **relevance on the mark** (the pixels where biased and clean images differ): the share
  ``Σ_mark |R| / Σ |R|`` of the true class's map (what the selective loss sees) and of the other
  classes' maps (mean over B ≠ A), and the signed sum ``Σ_mark R / Σ |R|`` of both (negative =
  evidence against the class); LRP with each model's training settings, every class's map.

Prints a Markdown table; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from isnet import LRPConfig, explain, load_checkpoint
from isnet.io.atomic import write_atomically
from isnet.training.experiment import ExperimentData, evaluation_set


def _others(values: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """(B, K) values → (B, K − 1): every class but each image's own (``own`` (B, K) bool)."""
    return values[~own].view(len(own), -1)


def mark_channels(path: str | Path, images: int, batch_size: int = 50) -> dict[str, float]:
    """The logit effect of the mark and the relevance on it, for one checkpoint (see above):
    means over ``images`` test images of the bundled experiment (:class:`ExperimentData`)."""
    model, metadata = load_checkpoint(path)
    lrp = LRPConfig.as_trained(metadata.get("config"))
    data = ExperimentData(test_limit=images)
    marked, clean = evaluation_set(data, "biased"), evaluation_set(data, "unbiased")
    if not torch.equal(marked.labels, clean.labels):
        raise RuntimeError("the biased and unbiased test images are not the same images")
    sums = dict.fromkeys(("true", "others", "margin", "credited_true", "share_true",
                          "share_others", "signed_true", "signed_others"), 0.0)
    for start in range(0, images, batch_size):
        part = slice(start, start + batch_size)
        x_mark, x_clean, labels = marked.images[part], clean.images[part], marked.labels[part]
        on_mark = (x_mark - x_clean).abs().sum(1) > 0  # (B, H, W)
        with torch.inference_mode():
            # (B, K), (B, K, C, H, W)
            logits, maps = explain(model, x_mark, mode="all", lrp=lrp)
            clean_logits = model(x_clean)
        relevance = maps.sum(2)  # (B, K, H, W)
        own = torch.nn.functional.one_hot(labels, logits.shape[1]).bool()  # (B, K)
        change = logits - clean_logits
        sums["true"] += float(change[own].sum())
        sums["others"] += float(_others(change, own).mean(1).sum())
        margin = [z[own] - _others(z, own).max(1).values for z in (logits, clean_logits)]  # (B,)
        sums["margin"] += float((margin[0] - margin[1]).sum())
        mark = on_mark.unsqueeze(1)
        credited = (relevance * mark).flatten(2).sum(2)  # (B, K): Σ_mark R
        total = relevance.abs().flatten(2).sum(2).clamp_min(1e-12)  # (B, K): Σ |R|
        share = (relevance.abs() * mark).flatten(2).sum(2) / total
        sums["credited_true"] += float(credited[own].sum())
        for name, value in (("share", share), ("signed", credited / total)):
            sums[f"{name}_true"] += float(value[own].sum())
            sums[f"{name}_others"] += float(_others(value, own).mean(1).sum())
    return {key: value / images for key, value in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--images", type=int, default=300, help="test images (each twice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| checkpoint | Δ logit, true class | LRP's credit to the mark, true class "
          "| Δ logit, others (mean) | Δ margin | mark share, true map | mark share, other maps "
          "| signed, true map | signed, other maps |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    for path in args.checkpoints:
        r = results[Path(path).name] = mark_channels(path, args.images)
        print(f"| {Path(path).name} | {r['true']:+.2f} | {r['credited_true']:+.3f} "
              f"| {r['others']:+.2f} | {r['margin']:+.2f} "
              f"| {r['share_true']:.4f} | {r['share_others']:.4f} | {r['signed_true']:+.4f} "
              f"| {r['signed_others']:+.4f} |", flush=True)
    if args.json:
        write_atomically(args.json, json.dumps({"images": args.images, "results": results},
                                               indent=1).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
