"""Speed and memory of the LRP block, as ratios against baselines measured in the same run.

    python -m benchmarks.lrp_speed     # densenet121, resnet50, vgg16_bn; 224/128 px; batch 1/8
    python -m benchmarks.lrp_speed --models resnet50 vgg16_bn --classes 10 --variants selective \
        --threads 1 --repeats 2 --no-memory
    python -m benchmarks.lrp_speed --models densenet121 --sizes 128 --batches 8 --repeats 2
    python -m benchmarks.lrp_speed --models densenet121 --sizes 128 --batches 8 --classes 10 \
        --variants selective --repeats 7 --no-memory --layout channels_last

Measured per (model, size, batch):

* one heatmap (``isnet.explain``, eval mode) vs a plain forward + backward of one logit;
* one heatmap vs zennit (only if installed): for ResNet and VGG its ε composite with z^B at the
  first layer and its ResNet/VGG canonizer on torchvision's own model (the same rules as ours);
  for DenseNet its ``EpsilonPlusFlat`` (zennit has no DenseNet canonizer);
* an ISNet training step (forward, LRP, heatmap loss, backward, SGD) vs a plain training step,
  for the one-map variants and for all maps with K = 2 and K = 10; the two steps alternate and
  the ratio is the median of the per-pair ratios (robust to a slow spell of the machine);
* peak memory growth of a training step (each in a fresh process), ISNet vs plain.

``--layout channels_last`` puts every model and input of the run in that memory layout (both
sides of each ratio; see :mod:`isnet.models.layout`).

``--compile [MODE]`` measures eager and compiled side by side instead, with compile seconds, and
writes ``results/lrp_speed/<date>-<machine>.json`` (:mod:`benchmarks.lrp_compiled`).

Goals on a 2-core CPU (from the engine issue): heatmap ≤ 1.5× forward+backward; one-map ISNet
step ≤ 2.5× plain step for any K; heatmap ≤ 0.7× zennit; training memory ≤ 1.6× plain.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from isnet.compilation import COMPILE_MODES
from isnet.loss import isnet_loss
from isnet.models import create_model, family_of
from isnet.models.layout import LAYOUTS
from isnet.wrapper import ISNet, explain

MODELS = ("densenet121", "resnet50", "vgg16_bn")


class Timing(tuple):
    """(wall seconds, CPU seconds of this process), medians over repeats."""

    @property
    def wall(self) -> float:
        return self[0]

    @property
    def cpu(self) -> float:
        return self[1]

    def __truediv__(self, other: Timing) -> str:
        return f"ratio {self.wall / other.wall:5.2f} (CPU-time ratio {self.cpu / other.cpu:5.2f})"

    def __str__(self) -> str:
        return f"{self.wall:7.3f} s"


def _median_seconds(step: Callable[[], None], repeats: int) -> Timing:
    """Median wall and CPU time of ``step``. CPU time is robust to other processes sharing the
    machine; wall time is what a user waits."""
    step()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing((statistics.median(walls), statistics.median(cpus)))


def _interleaved(baseline: Callable[[], None], step: Callable[[], None],
                 repeats: int) -> tuple[Timing, Timing, Timing]:
    """Time ``baseline`` and ``step`` alternately, ``repeats`` pairs (after one warm-up each).

    Returns the medians of baseline and step, and the median of the per-pair ratios (wall, CPU):
    a pair runs within seconds, so a slow spell of a shared or virtual machine shifts both of
    its times instead of one side of the ratio.
    """
    baseline()
    step()
    times: list[tuple[float, float, float, float]] = []
    for _ in range(repeats):
        measured = []
        for function in (baseline, step):
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            measured += [time.perf_counter() - wall, time.process_time() - cpu]
        times.append(tuple(measured))
    column = list(zip(*times, strict=True))
    ratios = Timing((statistics.median(s / b for b, s in zip(column[0], column[2], strict=True)),
                     statistics.median(s / b for b, s in zip(column[1], column[3], strict=True))))
    return (Timing((statistics.median(column[0]), statistics.median(column[1]))),
            Timing((statistics.median(column[2]), statistics.median(column[3]))), ratios)


def _batch(size: int, batch: int, classes: int):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=generator)
    masks = torch.zeros(batch, 1, size, size)
    masks[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return x, masks, labels


def _train_step(name: str, variant: str, classes: int, size: int, batch: int,
                layout: torch.memory_format = torch.contiguous_format) -> Callable[[], None]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes).train().to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, masks, labels = _batch(size, batch, classes)
    x = x.contiguous(memory_format=layout)
    net = None if variant == "plain" else ISNet(model, explain=variant)

    def step() -> None:
        optimizer.zero_grad()
        if net is None:
            loss = torch.nn.functional.cross_entropy(model(x), labels)
        else:
            logits, heatmaps = net(x)
            loss = isnet_loss(logits, labels, heatmaps, masks).total
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{field}:\s+(\d+)", handle.read()).group(1))


def _memory_probe(name: str, variant: str, classes: int, size: int, batch: int, queue) -> None:
    step = _train_step(name, variant, classes, size, batch)
    step()  # first step allocates optimiser state and warms the allocator
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # Linux: reset the peak-RSS mark (VmHWM) to the current RSS
    step()
    queue.put((_status_kib("VmHWM") - before) * 1024)


def peak_step_memory(name: str, variant: str, classes: int, size: int, batch: int) -> int:
    """Peak resident-memory growth (bytes) of one training step, in a fresh process (Linux)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_memory_probe,
                              args=(name, variant, classes, size, batch, queue))
    process.start()
    value = queue.get()
    process.join()
    return value


def _zennit_heatmap(name: str, model: torch.nn.Module, x: torch.Tensor, classes: torch.Tensor,
                    epsilon: float = 0.01):
    """zennit's attribution step for ``model`` (ours) with the closest rules zennit offers."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat, SpecialFirstLayerMapComposite

    if family_of(name) == "densenet":
        network, composite = model, EpsilonPlusFlat()
    else:
        import torchvision
        from zennit.layer import Sum
        from zennit.rules import Epsilon, Norm, Pass, ZBox
        from zennit.torchvision import ResNetCanonizer, VGGCanonizer
        from zennit.types import Activation, AvgPool, BatchNorm, Convolution

        network = getattr(torchvision.models, name)(weights=None, num_classes=model.num_classes)
        if family_of(name) == "vgg":  # ours may have a narrower classifier: use the same one
            network.classifier = model.classifier
        network.load_state_dict(model.state_dict())
        for module in network.modules():
            if isinstance(module, torch.nn.ReLU):
                module.inplace = False
        network.eval()
        canonizer = ResNetCanonizer() if family_of(name) == "resnet" else VGGCanonizer()
        layer_map = [(Activation, Pass()), (Sum, Norm(epsilon)), (AvgPool, Norm(epsilon)),
                     (BatchNorm, Pass()), (Convolution, Epsilon(epsilon)),
                     (torch.nn.Linear, Epsilon(epsilon))]
        composite = SpecialFirstLayerMapComposite(
            layer_map=layer_map, first_map=[(Convolution, ZBox(0.0, 1.0, stabilizer=epsilon))],
            canonizers=[canonizer])
    start = torch.nn.functional.one_hot(classes, model.num_classes).float()

    def step() -> None:
        with Gradient(model=network, composite=composite) as attributor:
            attributor(x, start)

    return step


def run(models: list[str], sizes: list[int], batches: list[int], repeats: int, memory: bool,
        class_counts: list[int], variants: list[str], layout: str = "contiguous"
        ) -> Iterator[str]:
    """Run every measurement, yielding report lines as they are measured."""
    yield (f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU, "
           f"{layout} layout")
    for name in models:
        for size in sizes:
            for batch in batches:
                yield from _measure(name, size, batch, repeats, memory, class_counts, variants,
                                    LAYOUTS[layout])


def _measure(name: str, size: int, batch: int, repeats: int, memory: bool,
             class_counts: list[int], variants: list[str],
             layout: torch.memory_format = torch.contiguous_format) -> Iterator[str]:
    yield f"\n== {name}, {size} px, batch {batch} =="
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval().to(memory_format=layout)
    x, masks, _ = _batch(size, batch, 10)
    x = x.contiguous(memory_format=layout)
    classes = model(x).argmax(1)

    def forward_backward() -> None:
        inputs = x.clone().requires_grad_(True)
        model(inputs).gather(1, classes[:, None]).sum().backward()

    def heatmap() -> None:
        with torch.no_grad():
            explain(model, x, classes)

    base = _median_seconds(forward_backward, repeats)
    ours = _median_seconds(heatmap, repeats)
    yield f"forward+backward {base} | one heatmap {ours} | {ours / base} (goal <= 1.5)"
    try:
        theirs = _median_seconds(_zennit_heatmap(name, model, x, classes), repeats)
        rules = "EpsilonPlusFlat" if family_of(name) == "densenet" else "eps + ZBox + canonizer"
        yield f"zennit {rules} {theirs} | ours/zennit {ours / theirs} (goal <= 0.7)"
    except ImportError:
        yield "zennit not installed: skipped"
    for classes_k in class_counts:
        plain_step = _train_step(name, "plain", classes_k, size, batch, layout)
        for variant in variants:
            plain, t, ratio = _interleaved(
                plain_step, _train_step(name, variant, classes_k, size, batch, layout), repeats)
            goal = "(goal <= 2.5)" if variant != "all" else "(K maps)"
            yield (f"K={classes_k:<2} ISNet {variant:<10} {t} | plain train step {plain} | "
                   f"ratio {ratio.wall:5.2f} (CPU-time ratio {ratio.cpu:5.2f}; medians of "
                   f"{repeats} interleaved pairs) {goal}")
    if memory:
        plain_mb = peak_step_memory(name, "plain", 10, size, batch) / 2**20
        for variant in ("selective", "all"):
            mb = peak_step_memory(name, variant, 10, size, batch) / 2**20
            yield (f"peak step memory: plain {plain_mb:7.1f} MiB | ISNet {variant} "
                   f"{mb:7.1f} MiB | ratio {mb / plain_mb:5.2f}"
                   + (" (goal <= 1.6)" if variant != "all" else " (K=10 maps)"))


def compiled_run(args: argparse.Namespace) -> None:
    """``--compile``: eager and compiled rows (:mod:`benchmarks.lrp_compiled`), one record."""
    from benchmarks import lrp_compiled
    from benchmarks.record import finish_record, start_record

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
    record = start_record("lrp_speed", threads=torch.get_num_threads(), device=args.device)
    record["settings"] = {"compile_mode": args.compile, "repeats": args.repeats,
                          "inductor_cache": "cold (a fresh temporary directory)",
                          "explain": "selective (ISNet steps), predicted (heatmaps)",
                          "input_rule": "z^B", "layout": "contiguous", "device": args.device,
                          "dtype": "bf16 autocast" if args.bf16 else "float32"}
    record["rows"] = []
    for name in args.models:
        for size in args.sizes:
            for batch in args.batches:
                if args.message_piece:
                    piece = lrp_compiled.message_piece(name, size, batch, args.repeats,
                                                       args.compile)
                    print(piece, flush=True)
                    record.setdefault("pieces", []).append(piece)
                    finish_record(record, args.out)
                    continue
                row = lrp_compiled.measure(name, size, batch, args.repeats, args.compile,
                                           args.device, args.bf16)
                print(lrp_compiled.report(row), flush=True)
                record["rows"].append(row)
                finish_record(record, args.out)  # rewritten after each row: partial runs count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 128])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 10],
                        help="K of the training-step rows")
    parser.add_argument("--variants", nargs="+", default=["selective", "stochastic", "all"],
                        choices=["selective", "stochastic", "predicted", "all"])
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads (default: torch's choice)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="contiguous",
                        help="memory layout of every model and input")
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        choices=list(COMPILE_MODES),
                        help="measure eager and compiled side by side (torch.compile mode; "
                             "default: Inductor's default) and write the JSON record")
    parser.add_argument("--message-piece", action="store_true",
                        help="with --compile: instead, an ISNet step with only the ε message "
                             "compiled, against eager (the smallest piece)")
    parser.add_argument("--device", default="cpu",
                        help="with --compile: where to run (cpu, cuda, cuda:N)")
    parser.add_argument("--bf16", action="store_true",
                        help="with --compile: forward and loss under bf16 autocast")
    parser.add_argument("--out", type=Path, default=None,
                        help="with --compile: the record (default results/lrp_speed/...)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile:
        compiled_run(args)
        return
    for line in run(args.models, args.sizes, args.batches, args.repeats, not args.no_memory,
                    args.classes, args.variants, args.layout):
        print(line, flush=True)


if __name__ == "__main__":
    main()
