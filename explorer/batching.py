"""One LRP call for Explain requests that arrive together.

Every Explain runs LRP once per model on one image. Under load several visitors' requests wait
for the same model at the same moment; running them as one batch pays the walk's per-layer
overhead once instead of once per image. :class:`MicroBatcher` does that:

* a request joins the open *group* of its model, LRP settings and kind of target (a class, the
  predicted class, the selective map); the first request of a group is its *leader*;
* the leader waits until no batch of the same key is running (one batch per model in flight:
  while it runs, the next one fills) and for a free *lane* (at most ``lanes`` LRP calls run at
  once, so the work stays bounded however many events Gradio lets in);
* then, if fewer requests have joined than are *expected* — the most requests that were inside
  the batcher at once lately (this and the previous ``window_s``), at most ``max_batch`` — it
  waits at most ``gather_s`` more for them. One visitor's requests never wait (never more than
  one inside); eight visitors clicking in a loop fall into step and fill batches of eight. The
  group closes when the leader takes it or when it holds ``max_batch`` (later requests open a
  new one);
* the leader stacks the images, calls the engine once with one target per image, splits the
  logits, maps and conservation readouts, and hands each request its own;
* if the batched call fails, every request of the group is run on its own, so one bad request
  (a class the model does not have) fails alone.

Batching does not change an answer: each sample's logits, heatmap and ledger depend on that
sample only (the models are in ``eval()``, so BatchNorm uses its running statistics), equal to
one-by-one to float rounding (``tests/test_batching.py``).

:meth:`MicroBatcher.model_maps` has the contract of :func:`explorer.handlers.lrp_modes.model_maps`
for one image; :func:`explorer.handlers.explain.explain_cached` passes it to
:func:`~explorer.handlers.explain.engine_explain`. The batcher is owned by the app context
(:attr:`explorer.state.AppContext.batcher`); ``max_batch=1`` turns batching off
(``python app.py --explain-batch 1``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import Tensor

import isnet
from explorer.entries import ModelEntry
from explorer.handlers.lrp_modes import model_maps
from isnet.lrp.conservation import Conservation
from isnet.lrp.registry import is_lrp_ready

Maps = tuple[Tensor, Tensor, Conservation | None]
"""One image's logits (1, K), heatmaps (1, 1, C, S, S) and conservation readout (or None)."""


@dataclass
class _Request:
    """One image waiting in a group: its input, its target, and what comes back."""

    x: Tensor  # (1, C, S, S)
    target: int | str | None
    done: threading.Event = field(default_factory=threading.Event)
    result: Maps | None = None
    error: BaseException | None = None


@dataclass
class _Group:
    """Requests for one model, one LRP setting and one kind of target; closes when full or
    when its leader takes it."""

    expected: int
    requests: list[_Request] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    """Set once the group holds ``expected`` requests (or is closed)."""


class RecentPeak:
    """How many requests are inside the batcher now, and the most there were lately (this
    window and the one before). Not thread-safe: the batcher's lock guards it."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.inside = 0
        self._peak = self._previous = 0
        self._started = time.monotonic()

    def enter(self) -> int:
        """Count a request in; the recent peak, this request included."""
        self.inside += 1
        now = time.monotonic()
        if now - self._started > self.window_s:
            self._previous, self._peak, self._started = self._peak, self.inside, now
        self._peak = max(self._peak, self.inside)
        return max(self._peak, self._previous)

    def leave(self) -> None:
        """Count a request out (answered or failed)."""
        self.inside -= 1


class MicroBatcher:
    """Gathers concurrent single-image LRP calls into batched ones.

    Args:
        max_batch: most images in one LRP call (1: every request runs alone as soon as a
            lane is free, no gathering, no waiting for the same model's batch).
        gather_s: at most how long a leader with a free lane waits for the expected number of
            requests to join.
        lanes: most LRP calls running at once (each on its own thread).
        expect: a fixed expected group size (None: the recent peak of requests inside).
        window_s: how long a peak counts (it is forgotten after one to two windows).
    """

    def __init__(self, max_batch: int = 8, gather_s: float = 0.03, lanes: int = 2,
                 expect: int | None = None, window_s: float = 2.0) -> None:
        if max_batch < 1 or lanes < 1 or gather_s < 0 or (expect is not None and expect < 1):
            raise ValueError("max_batch, lanes and expect must be at least 1 and gather_s at "
                             f"least 0 (got {max_batch}, {lanes}, {expect}, {gather_s})")
        self.max_batch = max_batch
        self.gather_s = gather_s
        self.expect = expect
        self._peaks = RecentPeak(window_s)
        self._lanes = threading.BoundedSemaphore(lanes)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._groups: dict[tuple, _Group] = {}
        self._running: set[tuple] = set()  # keys with a batch in flight
        self.batch_sizes: Counter[int] = Counter()
        """How many LRP calls of each batch size were made so far (tests and logs read it)."""

    def model_maps(self, entry: ModelEntry, x: Tensor, target: int | str | None,
                   config: isnet.LRPConfig) -> Maps:
        """:func:`explorer.handlers.lrp_modes.model_maps` for one image, batched with the
        requests that arrive together for the same model, settings and kind of target.

        Shapes:
            x: (1, C, S, S) → logits (1, K), heatmaps (1, 1, C or 1, S, S) on the CPU.
        """
        if x.shape[0] != 1:
            raise ValueError(f"one image per request, got a batch of {x.shape[0]}")
        request = _Request(x, target)
        key = (entry.model_id, id(entry.model), repr(config), _kind(target), tuple(x.shape))
        with self._lock:
            group = self._groups.get(key)
            leader = group is None
            inside = self._peaks.enter()
            if group is None:
                group = self._groups[key] = _Group(min(self.max_batch, self.expect or inside))
            group.requests.append(request)
            if len(group.requests) >= self.max_batch:
                self._close(key, group)
            elif len(group.requests) >= group.expected:
                group.ready.set()
        try:
            if leader:
                self._lead(key, group, entry, config)
            request.done.wait()
        finally:
            with self._lock:
                self._peaks.leave()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _lead(self, key: tuple, group: _Group, entry: ModelEntry,
              config: isnet.LRPConfig) -> None:
        """Wait until no batch of the same key runs and a lane is free (the group keeps
        filling meanwhile), then at most ``gather_s`` for the expected size; close, run."""
        batching = self.max_batch > 1
        if batching:
            with self._changed:
                while key in self._running:
                    self._changed.wait()
                self._running.add(key)
        try:
            with self._lanes:
                if batching:
                    group.ready.wait(self.gather_s)
                with self._lock:
                    self._close(key, group)
                self._run(entry, config, group.requests)
        finally:
            if batching:
                with self._changed:
                    self._running.discard(key)
                    self._changed.notify_all()

    def _close(self, key: tuple, group: _Group) -> None:
        """No more requests join ``group`` (call with the lock held)."""
        if self._groups.get(key) is group:
            del self._groups[key]
        group.ready.set()

    def _run(self, entry: ModelEntry, config: isnet.LRPConfig,
             requests: list[_Request]) -> None:
        """One call for the whole group; on failure, each request alone. Every request is
        answered (a result or an error) whatever happens."""
        try:
            with self._lock:
                self.batch_sizes[len(requests)] += 1
            try:
                results = batch_maps(entry, torch.cat([r.x for r in requests]),
                                     [r.target for r in requests], config)
            except Exception:  # noqa: BLE001 — retried one by one below, errors kept apart
                if len(requests) == 1:
                    raise
                results = None
            for index, request in enumerate(requests):
                try:
                    request.result = results[index] if results is not None else \
                        model_maps(entry, request.x, request.target, config)
                except Exception as error:  # noqa: BLE001 — handed to its own request
                    request.error = error
        except BaseException as error:  # noqa: BLE001 — every waiting request gets it
            for request in requests:
                if request.result is None and request.error is None:
                    request.error = error
        finally:
            for request in requests:
                request.done.set()


def _kind(target: int | str | None) -> str:
    """Requests batch together when their targets are of one kind: a class index (one per
    image), the predicted class (None) or an explain mode ("selective")."""
    if target is None:
        return "predicted"
    return f"mode:{target}" if isinstance(target, str) else "class"


def batch_maps(entry: ModelEntry, x: Tensor, targets: list[int | str | None],
               config: isnet.LRPConfig) -> list[Maps]:
    """One engine call for a batch of images of one kind of target, split per image.

    Args:
        x: (B, C, S, S), normalised as the model expects.
        targets: B targets of one kind (all None, all one mode name, or class indices).

    Returns:
        B tuples of logits (1, K), heatmaps (1, 1, C or 1, S, S) and a conservation readout
        (None for a network explained by its native map), each its own copy on the CPU.
    """
    first = targets[0]
    target: int | str | Tensor | None = first if first is None or isinstance(first, str) \
        else torch.tensor([int(t) for t in targets])  # type: ignore[arg-type]
    if not is_lrp_ready(entry.model):
        logits, maps, _ = model_maps(entry, x, target, config)
        return [(logits[i:i + 1].clone(), maps[i:i + 1].clone(), None) for i in range(len(x))]
    with torch.no_grad():  # as model_maps, keeping every image's ledger, not only the first
        which = {"mode": target} if isinstance(target, str) else {"target": target}
        logits, maps, books = isnet.explain(entry.model, x.to(entry.device), lrp=config,
                                            return_conservation=True, **which)
    logits, maps = logits.cpu(), maps.cpu()
    return [(logits[i:i + 1].clone(), maps[i:i + 1].clone(), books[i][0])
            for i in range(len(x))]
