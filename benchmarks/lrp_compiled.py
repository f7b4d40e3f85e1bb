"""Eager and compiled LRP side by side (``python -m benchmarks.lrp_speed --compile``).

    nice -n 19 python -m benchmarks.lrp_speed --compile --threads 2 --models densenet121 \
        --sizes 128 --batches 8 --repeats 3

Per (model, size, batch), in one process and one run, with a fresh Inductor cache (so the
compile seconds are a first-time user's):

* an eager plain training step, an eager one-map ISNet step (selective, z^B at the input), the
  same two with the network compiled (the plain forward; the ISNet walk, :mod:`isnet.compilation`)
  and an eager forward + backward of one logit and a compiled heatmap (``explain="predicted"``,
  eval mode). The six functions run round-robin, ``repeats`` rounds after one warm-up each; each
  ratio is the median of its per-round ratios (robust to a slow spell of a shared machine);
* the seconds of each compiled function's first call (almost all of it compiling).

Goals on a 2-core CPU (issue 32): compiled ISNet step ÷ eager plain step ≤ 2.0, compiled ISNet
step ÷ compiled plain step ≤ 2.3, compiled heatmap ÷ eager forward + backward ≤ 0.8.
The record goes to ``results/lrp_speed/<date>-<machine>.json`` (:mod:`benchmarks.record`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from isnet.compilation import EagerFallback
from isnet.loss import isnet_loss
from isnet.lrp.message import epsilon_message
from isnet.models import create_model
from isnet.wrapper import ISNet

GOALS = {"compiled_isnet_over_eager_plain": 2.0, "compiled_isnet_over_compiled_plain": 2.3,
         "compiled_heatmap_over_eager_forward_backward": 0.8}


RATIO_PAIRS = {
    "compiled_isnet_over_eager_plain": ("compiled_isnet_step", "eager_plain_step"),
    "compiled_isnet_over_compiled_plain": ("compiled_isnet_step", "compiled_plain_step"),
    "compiled_heatmap_over_eager_forward_backward": ("compiled_heatmap",
                                                     "eager_forward_backward"),
    "eager_isnet_over_eager_plain": ("eager_isnet_step", "eager_plain_step"),
    "eager_heatmap_over_eager_forward_backward": ("eager_heatmap", "eager_forward_backward"),
    "compiled_isnet_over_eager_isnet": ("compiled_isnet_step", "eager_isnet_step")}
"""Each reported ratio: (numerator, denominator), medians of per-round ratios."""


def _batch(size: int, batch: int, classes: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=generator)
    masks = torch.zeros(batch, 1, size, size)
    masks[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    return x, masks, torch.randint(0, classes, (batch,), generator=generator)


def training_step(name: str, isnet: bool, compiled: str | None, size: int, batch: int,
                  classes: int = 10, device: str = "cpu",
                  bf16: bool = False) -> tuple[Callable[[], None], Any]:
    """One SGD step (forward, loss, backward, clip, update) of a fresh model on ``device``
    (``bf16``: forward and loss under bf16 autocast), and the compiled part (an
    :class:`EagerFallback`, or None when eager)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes).train().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, masks, labels = (t.to(device) for t in _batch(size, batch, classes))
    net = ISNet(model, explain="selective", compile=compiled or False) if isnet else None
    forward = model if compiled is None or isnet else EagerFallback(model, "plain", compiled)
    part = net.compiled_walk if net is not None else (forward if compiled else None)

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
            if net is None:
                loss = torch.nn.functional.cross_entropy(forward(x), labels)
            else:
                logits, heatmaps = net(x)
                loss = isnet_loss(logits.float(), labels, heatmaps.float(), masks).total
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step, part


def explaining(name: str, compiled: str | None, size: int, batch: int, classes: int = 10,
               device: str = "cpu", bf16: bool = False
               ) -> tuple[Callable[[], None], Callable[[], None], Any]:
    """An eager forward + backward of the top logit, a heatmap of it (compiled or not), and the
    compiled part."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes).eval().to(device)
    x = _batch(size, batch, classes)[0].to(device)
    net = ISNet(model, explain="predicted", compile=compiled or False)
    autocast = torch.device(device).type

    def forward_backward() -> None:
        inputs = x.clone().requires_grad_(True)
        with torch.autocast(autocast, torch.bfloat16, enabled=bf16):
            logits = model(inputs)
        logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()

    def heatmap() -> None:
        with torch.no_grad(), torch.autocast(autocast, torch.bfloat16, enabled=bf16):
            net(x)

    return forward_backward, heatmap, net.compiled_walk


def _rounds(functions: dict[str, Callable[[], None]], repeats: int,
            cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall seconds of each function, ``repeats`` round-robin rounds (after the warm-ups); with
    ``cpu``, its CPU seconds go there (robust to other processes sharing the machine)."""
    times: dict[str, list[float]] = {key: [] for key in functions}
    for _ in range(repeats):
        for key, function in functions.items():
            start, used = time.perf_counter(), _cpu_seconds()
            function()
            _synchronize()
            times[key].append(time.perf_counter() - start)
            if cpu is not None:
                cpu.setdefault(key, []).append(_cpu_seconds() - used)
    return times


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (Inductor's C++ builds): the
    cost of a compile, whatever else shares the machine."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _synchronize() -> None:
    """Wait for queued GPU work, so that a wall time covers it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _ratio(times: dict[str, list[float]], top: str, bottom: str) -> float:
    return statistics.median(a / b for a, b in zip(times[top], times[bottom], strict=True))


def measure(name: str, size: int, batch: int, repeats: int, mode: str = "default",
            device: str = "cpu", bf16: bool = False) -> dict[str, Any]:
    """One row of the record: medians, ratios against the goals and compile seconds."""
    functions: dict[str, Callable[[], None]] = {}
    parts: dict[str, Any] = {}
    on = {"device": device, "bf16": bf16}
    functions["eager_plain_step"], _ = training_step(name, False, None, size, batch, **on)
    functions["eager_isnet_step"], _ = training_step(name, True, None, size, batch, **on)
    functions["compiled_plain_step"], parts["compiled_plain_step"] = training_step(
        name, False, mode, size, batch, **on)
    functions["compiled_isnet_step"], parts["compiled_isnet_step"] = training_step(
        name, True, mode, size, batch, **on)
    forward_backward, eager_heatmap, _ = explaining(name, None, size, batch, **on)
    functions["eager_forward_backward"] = forward_backward
    functions["eager_heatmap"] = eager_heatmap
    functions["compiled_heatmap"], parts["compiled_heatmap"] = explaining(
        name, mode, size, batch, **on)[1:]
    first_call: dict[str, float] = {}
    first_call_cpu: dict[str, float] = {}
    for key, function in functions.items():  # warm-ups; compiled ones compile here
        start, cpu = time.perf_counter(), _cpu_seconds()
        function()
        _synchronize()
        first_call[key] = time.perf_counter() - start
        first_call_cpu[key] = _cpu_seconds() - cpu
        print(f"  {key}: first call {first_call[key]:.1f} s ({first_call_cpu[key]:.1f} CPU-s)",
              flush=True)
    cpu: dict[str, list[float]] = {}
    times = _rounds(functions, repeats, cpu)
    ratios = {key: _ratio(times, *pair) for key, pair in RATIO_PAIRS.items()}
    failed = {key: repr(part.failed) for key, part in parts.items()
              if part is not None and part.failed is not None}
    return {"model": name, "size": size, "batch": batch, "mode": mode, "repeats": repeats,
            "device": device, "dtype": "bf16 autocast" if bf16 else "float32",
            "median_s": {key: round(statistics.median(v), 4) for key, v in times.items()},
            "median_cpu_s": {key: round(statistics.median(v), 4) for key, v in cpu.items()},
            "cpu_ratios": {key: round(_ratio(cpu, *pair), 3) for key, pair in RATIO_PAIRS.items()},
            "first_call_s": {key: round(v, 2) for key, v in first_call.items()},
            "first_call_cpu_s": {key: round(v, 2) for key, v in first_call_cpu.items()},
            "compile_s_estimate": {key: round(first_call[key] - statistics.median(times[key]), 2)
                                   for key in parts},
            "ratios": {key: round(v, 3) for key, v in ratios.items()},
            "goals": GOALS, "goals_met": {key: ratios[key] <= goal for key, goal in GOALS.items()},
            "compile_failed": failed}


WALK_MODULES = ("isnet.lrp.densenet", "isnet.lrp.resnet", "isnet.lrp.vgg", "isnet.lrp.residual",
                "isnet.lrp.fused")
"""The walk modules that call :func:`isnet.lrp.message.epsilon_message` by name."""


@contextlib.contextmanager
def compiled_message(mode: str = "default") -> Iterator[EagerFallback]:
    """Within the block, every walk calls the ε message compiled alone (the smallest piece:
    one elementwise chain with its hand-written backward, dynamic shapes so that the ~120
    calls of a DenseNet121 walk share a few compiles). A measurement device only: the walk
    modules' name for the message is swapped and restored."""
    piece = EagerFallback(epsilon_message, "the ε message", mode, dynamic=True)
    modules = [importlib.import_module(name) for name in WALK_MODULES]
    saved = [module.epsilon_message for module in modules]
    for module in modules:
        module.epsilon_message = piece
    try:
        yield piece
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.epsilon_message = original


def message_piece(name: str, size: int, batch: int, repeats: int, mode: str = "default"
                  ) -> dict[str, Any]:
    """An eager ISNet training step against one whose ε messages alone are compiled:
    medians, their ratio and the first call's extra seconds (the piece's compiles)."""
    eager_step, _ = training_step(name, True, None, size, batch)
    piece_step, _ = training_step(name, True, None, size, batch)
    eager_first = time.perf_counter()
    eager_step()
    eager_first = time.perf_counter() - eager_first
    with compiled_message(mode) as piece:
        start, cpu = time.perf_counter(), _cpu_seconds()
        piece_step()
        first, first_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        cpu: dict[str, list[float]] = {}
        times = _rounds({"eager_isnet_step": eager_step, "message_compiled_isnet_step": piece_step},
                        repeats, cpu)
    medians = {key: statistics.median(value) for key, value in times.items()}
    return {"model": name, "size": size, "batch": batch, "piece": "epsilon_message",
            "median_s": {key: round(value, 4) for key, value in medians.items()},
            "first_call_s": {"eager_isnet_step": round(eager_first, 2),
                             "message_compiled_isnet_step": round(first, 2)},
            "compile_s_estimate": round(first - medians["message_compiled_isnet_step"], 2),
            "first_call_cpu_s": round(first_cpu, 2),
            "ratio_compiled_over_eager": round(_ratio(times, "message_compiled_isnet_step",
                                                      "eager_isnet_step"), 3),
            "cpu_ratio_compiled_over_eager": round(_ratio(cpu, "message_compiled_isnet_step",
                                                          "eager_isnet_step"), 3),
            "compile_failed": None if piece.failed is None else repr(piece.failed)}


def report(row: dict[str, Any]) -> str:
    """The row as a few printed lines."""
    lines = [f"== {row['model']}, {row['size']} px, batch {row['batch']} (compile mode "
             f"{row['mode']}) =="]
    lines += [f"  {key}: {value:.3f} s" for key, value in row["median_s"].items()]
    lines += [f"  compile {key}: {value:.1f} s" for key, value in row["compile_s_estimate"].items()]
    for key, value in row["ratios"].items():
        goal = f" (goal <= {GOALS[key]})" if key in GOALS else ""
        lines.append(f"  {key}: {value:.2f}{goal}")
    if row["compile_failed"]:
        lines.append(f"  compile failed, eager instead: {row['compile_failed']}")
    return "\n".join(lines)
