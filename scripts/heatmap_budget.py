"""What does the heatmap loss ask of a network that classifies well? (issue: ISNet learning speed)

For each bundled DenseNet121 (the unbiased-trained ceiling, the standard model trained on the
corner mark, the ISNet) it explains the clean (unbiased) test images as the ISNet trains
(selective map), with z^B at the input and with the ε-rule there, and prints per model and rule:

* the background share of the absolute relevance, and the part of it on the ring of pixels
  within ``--ring`` px outside the mask (what a dilated training mask would no longer penalise);
* the foreground total F = Σ|R|·M (quantiles), against the heatmap loss's band [C1, C2] =
  [1, 25]: the share of images above C2.

``python -m scripts.heatmap_budget [--images 300] [--ring 2] [--threads 1]``

A loss that the ceiling model already satisfies costs nothing; one it violates is a tax on
accuracy that the ISNet pays within its epoch budget.
"""

from __future__ import annotations

import argparse

import torch

import isnet
from isnet.loss import grow_masks
from isnet.lrp.config import LRPConfig
from isnet.training.experiment import ExperimentData, evaluation_set

MODELS = {"ceiling (unbiased-trained)": "assets/checkpoints/unbiased_densenet121.safetensors",
          "standard (corner mark)": "assets/checkpoints/standard_densenet121.safetensors",
          "ISNet (corner mark)": "assets/checkpoints/isnet_densenet121.safetensors"}
BAND_TOP = isnet.TrainConfig().foreground_range[1]  # C2 of the default heatmap loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--ring", type=int, default=2, help="ring width outside the mask, px")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clean = evaluation_set(ExperimentData(test_limit=args.images), "unbiased")
    masks = clean.masks  # (N, 1, H, W)
    ring = grow_masks(masks, args.ring) - masks
    print(f"| model | input rule | accuracy | background share | of it within {args.ring} px "
          f"| F p10 / p50 / p90 | F > {BAND_TOP:g} |")
    print("|---|---|---:|---:|---:|---|---:|")
    for name, path in MODELS.items():
        network = isnet.load_checkpoint(path).model.float().eval()
        for zb in (True, False):
            wrapped = isnet.ISNet(network, explain="selective", lrp=LRPConfig(zb=zb)).eval()
            with torch.no_grad():
                logits, heatmaps = wrapped(clean.images)  # (N, K), (N, 1, C, H, W)
            relevance = heatmaps[:, 0].abs().sum(1, keepdim=True)  # (N, 1, H, W)
            background = isnet.background_share(heatmaps, masks)
            near = (relevance * ring).sum((1, 2, 3)) / relevance.sum((1, 2, 3))
            foreground = (relevance * masks).sum((1, 2, 3))
            q = torch.quantile(foreground, torch.tensor([0.1, 0.5, 0.9]))
            accuracy = (logits.argmax(1) == clean.labels).float().mean()
            print(f"| {name} | {'z^B' if zb else 'ε'} | {100 * accuracy:.1f} % "
                  f"| {background.mean():.3f} | {near.mean() / background.mean():.0%} "
                  f"| {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} "
                  f"| {(foreground > BAND_TOP).float().mean():.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
