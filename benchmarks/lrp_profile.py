"""Where the time of one training step goes: torch.profiler on a plain and an ISNet step.

    python -m benchmarks.lrp_profile --model densenet121 --size 128 --batch 8 --threads 1
    python -m benchmarks.lrp_profile --model resnet50 --variant selective --rows 25

Each step is split into phases (forward trace, LRP walk, loss, backward); the table under it
lists the operators with the most self CPU time, summed over the profiled steps (autograd's
backward nodes show up under their ``…Backward`` names). The same model, batch and optimiser
as ``benchmarks.lrp_speed``'s training-step rows.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from isnet.loss import isnet_loss
from isnet.lrp.registry import relevance_from_messages
from isnet.lrp.targets import pooled_messages
from isnet.models import create_model
from isnet.wrapper import ISNet

MODELS = ("densenet121", "resnet50", "vgg16_bn")
PHASES = ("forward", "lrp walk", "loss", "backward")


def _step(name: str, variant: str, size: int, batch: int, classes: int) -> Callable[[], None]:
    """One training step, with each phase under a profiler label."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=generator)
    masks = torch.zeros(batch, 1, size, size)
    masks[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    labels = torch.randint(0, classes, (batch,), generator=generator)
    net = None if variant == "plain" else ISNet(model, explain=variant)

    def step() -> None:
        optimizer.zero_grad()
        if net is None:
            with record_function("forward"):
                logits = model(x)
            with record_function("loss"):
                loss = torch.nn.functional.cross_entropy(logits, labels)
        else:
            with record_function("forward"):
                logits, trace = model.forward_trace(x)
            with record_function("lrp walk"):
                messages = pooled_messages(model, trace, net.explain, net.config, None,
                                           net.generator)
                heatmaps = relevance_from_messages(model, trace, messages, net.config)
            with record_function("loss"):
                loss = isnet_loss(logits, labels, heatmaps, masks).total
        with record_function("backward"):
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def profile_step(name: str, variant: str, size: int, batch: int, classes: int, steps: int,
                 rows: int) -> str:
    """A report: wall time per step, time per phase and the top operators by self CPU time."""
    step = _step(name, variant, size, batch, classes)
    step()  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - start) / steps
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / steps / 1e6 for e in events if e.key in PHASES}
    lines = [f"== {name} {variant}, {size} px, batch {batch}, K={classes}: "
             f"{wall:.3f} s per step (profiled) ==",
             "phases: " + ", ".join(f"{k} {v:.3f} s" for k, v in phases.items())]
    lines.append(events.table(sort_by="self_cpu_time_total", row_limit=rows))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="densenet121", choices=MODELS)
    parser.add_argument("--variant", default="selective",
                        choices=["plain", "selective", "stochastic", "predicted", "all"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = ["plain", args.variant] if args.variant != "plain" else ["plain"]
    for variant in variants:
        print(profile_step(args.model, variant, args.size, args.batch, args.classes, args.steps,
                           args.rows), flush=True)


if __name__ == "__main__":
    main()
