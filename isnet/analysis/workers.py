"""Batches of a long computation on several CPU cores, results in order, with a clean stop.

A dataset audit explains thousands of small images in batches. On the CPU, one torch thread per
batch and one batch per core beats several torch threads on one batch: the threads of one
operation wait for each other at every step (and spin while they wait, which on a busy machine
makes them 3–4× slower than one thread), while batches on their own threads never wait. Torch
releases the GIL inside its kernels, so Python threads suffice.

:func:`ordered_map` runs a function over items on a few worker threads and yields the results in
the items' order. The stop is deterministic: the caller checks its stop condition between two
yielded results, and what it was given before it stopped is exactly what it keeps; results of
items still in flight are dropped (their threads finish in the background).
:func:`default_workers` picks how many workers the cores allow.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")


def default_workers(device: torch.device | str = "cpu", limit: int = 4) -> int:
    """Workers for :func:`ordered_map`: the cores this process may use, divided by torch's
    threads per operation (so that workers × threads never exceeds the cores), between 1 and
    ``limit`` (each worker holds a batch's activations: ~0.8 GB for 64 DenseNet121 explanations
    at 64 px); 1 on an accelerator, which runs one batch at a time anyway."""
    if torch.device(device).type != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(limit, cores // max(1, torch.get_num_threads())))


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item], workers: int = 1,
                should_stop: Callable[[], bool] | None = None) -> Iterator[Result]:
    """``function(item)`` for each item, on ``workers`` threads, yielded in the items' order.

    At most ``workers`` items are in flight. ``should_stop`` is checked before each item is
    started and after each result is yielded: once it returns True, no item starts, and the
    results of items in flight are not yielded. Closing the generator stops it the same way.
    With ``workers=1`` everything runs in the caller's thread, one item after the other.

    Raises:
        ValueError: ``workers`` < 1.
        Whatever ``function`` raises, when its result is due.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    stopped = should_stop or (lambda: False)
    if workers == 1:
        for item in items:
            if stopped():
                return
            yield function(item)
        return
    pending = iter(items)
    in_flight: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="isnet-batch")
    try:
        while True:
            while len(in_flight) < workers and not stopped():
                try:
                    item = next(pending)
                except StopIteration:
                    break
                in_flight.append(pool.submit(function, item))
            if not in_flight or stopped():
                return
            yield in_flight.popleft().result()
    finally:
        for future in in_flight:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)

