"""How much the LRP fidelity settings change DenseNet heatmaps.

Run ``python -m benchmarks.lrp_fidelity``.

On a DenseNet with random weights and random BatchNorm statistics (float64, eval mode, images
uniform in [0, 1]), it explains every class (ε = 0.01 by default, z^B on [0, 1]) under several
:class:`isnet.LRPConfig` settings and prints, for each pair, the largest absolute difference of
the heatmaps relative to the largest absolute relevance of the first one, and their Pearson
correlation (over all maps, channels and pixels):

* the z^B bias conventions: ``"authors"`` (default) against ``"full"`` and ``"none"``;
* ``reference_quirks=True`` against the corrected default, and the share of that difference due
  to the max-unpooling overwrite alone (the rest is the dense-layer consumer lookup).

Options: ``--model`` (a registered DenseNet name), ``--size``, ``--batch``, ``--classes``,
``--epsilon``, ``--seed``, ``--threads``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn

import isnet
from isnet.lrp.densenet import stem_message, stem_relevance
from isnet.lrp.targets import pooled_messages


def randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Random running statistics, scales and shifts for every BatchNorm (as the tests use)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            shape, dtype = module.running_mean.shape, module.running_mean.dtype
            module.running_mean.copy_(torch.rand(shape, generator=generator, dtype=dtype) - 0.5)
            module.running_var.copy_(torch.rand(shape, generator=generator, dtype=dtype) * 1.5
                                     + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator, dtype=dtype) + 0.5)
            module.bias.data.copy_((torch.rand(shape, generator=generator, dtype=dtype) - 0.5)
                                   * 0.6)
    return model


def compare(first: Tensor, second: Tensor) -> dict[str, float]:
    """max|first − second| / max|first| and the Pearson correlation of the flattened maps."""
    a, b = first.flatten(), second.flatten()
    correlation = torch.corrcoef(torch.stack([a, b]))[0, 1]
    return {"max_diff_rel": float((a - b).abs().max() / a.abs().max()),
            "correlation": float(correlation)}


@torch.no_grad()
def run(model_name: str = "densenet121", size: int = 224, batch: int = 2, classes: int = 3,
        epsilon: float = 0.01, seed: int = 0) -> dict[str, dict[str, float]]:
    """The comparisons above, keyed ``"authors vs full"``, … (see the module docstring)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = isnet.create_model(model_name, num_classes=classes).double()
    model = randomize_batchnorm(model, generator).eval()
    images = torch.rand(batch, 3, size, size, generator=generator, dtype=torch.float64)
    logits, trace = model.forward_trace(images)
    configs = {
        "authors": isnet.LRPConfig(epsilon=epsilon),
        "full": isnet.LRPConfig(epsilon=epsilon, zb_bias="full"),
        "none": isnet.LRPConfig(epsilon=epsilon, zb_bias="none"),
        "quirks": isnet.LRPConfig(epsilon=epsilon, reference_quirks=True),
    }
    maps, messages = {}, {}
    for name, config in configs.items():
        pooled = pooled_messages(model, trace, "all", config, None, None)
        messages[name] = stem_message(model, trace, pooled, config)
        maps[name] = stem_relevance(model, trace, messages[name], config)
    # the overwrite alone: the corrected message at the stem, unpooled the published way
    overwrite_only = stem_relevance(model, trace, messages["authors"], configs["quirks"])
    return {
        "authors vs full": compare(maps["authors"], maps["full"]),
        "authors vs none": compare(maps["authors"], maps["none"]),
        "quirks vs corrected": compare(maps["authors"], maps["quirks"]),
        "overwrite only vs corrected": compare(maps["authors"], overwrite_only),
        "logits": {"max_abs": float(logits.abs().max())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lrp_fidelity",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="densenet121")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = run(args.model, args.size, args.batch, args.classes, args.epsilon, args.seed)
    for name, values in results.items():
        print(f"{name:30s} " + "  ".join(f"{k} {v:.6g}" for k, v in values.items()))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
