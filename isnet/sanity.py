"""``python -m isnet.sanity CHECKPOINT IMAGE``: does the map depend on the model?

Prints the "untrained" flag (:func:`isnet.analysis.sanity.untrained_signs`) and the cascading
model-randomisation test (:func:`isnet.analysis.sanity.model_randomisation`): per stage, the
layers made random and the map's Spearman rank correlation and SSIM with the trained model's.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from isnet.analysis.sanity import model_randomisation, untrained_signs
from isnet.io.checkpoints import load_checkpoint
from isnet.lrp.config import LRPConfig


def main(argv: list[str] | None = None) -> int:
    """Run the checks and print them; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint isnet.load_checkpoint reads")
    parser.add_argument("image", help="an image file (RGB, resized to the model's input size)")
    parser.add_argument("--stages", type=int, default=5)
    args = parser.parse_args(argv)
    loaded = load_checkpoint(args.checkpoint)
    model, metadata = loaded.model.eval(), loaded.metadata
    size = int(metadata.get("input_size", 224))
    picture = Image.open(args.image).convert("RGB").resize((size, size), Image.Resampling.BOX)
    x = torch.from_numpy(np.asarray(picture, np.float32) / 255).permute(2, 0, 1)[None]
    normalisation = metadata.get("normalisation") or {}
    if normalisation.get("mean") is not None:
        mean = torch.tensor(normalisation["mean"]).view(1, -1, 1, 1)
        x = (x - mean) / torch.tensor(normalisation["std"]).view(1, -1, 1, 1)
    low, high = metadata.get("bounds", (0.0, 1.0))
    lrp = LRPConfig.as_trained(metadata.get("config"), low=low, high=high)
    signs = untrained_signs(model)
    print("untrained: " + "; ".join(signs) if signs else "trained (no untrained signs)")
    print("stage  spearman  ssim   layers made random")
    for stage in model_randomisation(model, x, lrp=lrp, stages=args.stages):
        layers = ", ".join(stage.layers[:3]) + (" …" if len(stage.layers) > 3 else "")
        print(f"{stage.stage:5d}  {stage.spearman:8.3f}  {stage.ssim:5.3f}  {layers or '—'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
