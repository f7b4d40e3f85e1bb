"""Fair queues: long jobs cannot crowd out explanations.

Explanations, fine-tunes and audits run in separate Gradio queues (``concurrency_id`` "explain",
"train" and "audit", set where each event is wired), so an Explain never waits for a training
job to finish. But Gradio bounds all queues together (``demo.queue(max_size=…)``): queued
fine-tunes alone could fill it, and then every Explain would be refused with "Queue is full".

:func:`limit_long_jobs` gives the fine-tune and audit events a Gradio *validator*, which runs
when a request asks to join the queue, before it is queued. It refuses

* a second job of the same kind from one session (session hash and, under ``--auth``, login)
  while its first is queued or running, and
* any job of that kind while :data:`MAX_WAITING` of them are queued or running in the whole app
  (raw API calls without a session hash each get a new one), so long jobs never hold more than
  a small share of the queue.

The refusal is a message the user can act on, shown at the event's first input; nothing
was queued.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

LONG_JOBS = {"fine_tune": "fine-tune", "audit": "audit"}
"""Endpoint → what the user calls it: one queued or running per session."""
MAX_WAITING = 8
"""Most jobs of one kind queued or running in the whole app."""
BRIDGE_S = 5.0
"""How long a job accepted by the validator counts before Gradio lists it in its queue."""


class OnePerSession:
    """The validator of one long-job endpoint (see the module docstring).

    Args:
        demo: the app (its queue is read, never changed).
        api_name: the endpoint ("fine_tune", "audit").
        what: the job's name in messages.
        max_waiting: most jobs of this kind queued or running in the whole app.
    """

    def __init__(self, demo: gr.Blocks, api_name: str, what: str,
                 max_waiting: int = MAX_WAITING) -> None:
        self.demo, self.api_name, self.what = demo, api_name, what
        self.max_waiting = max_waiting
        self._accepted: list[tuple[float, str | None, str | None]] = []
        self._lock = threading.Lock()

    def jobs(self) -> list[tuple[str | None, str | None]]:
        """(session hash, login) of each job of this kind queued or running now."""
        queue = getattr(self.demo, "_queue", None)
        events = list(getattr(queue, "event_ids_to_events", {}).values())
        return [(event.session_hash, event.username) for event in events
                if getattr(event.fn, "api_name", None) == self.api_name]

    def admit(self, session_hash: str | None, login: str | None) -> str | None:
        """Accept a job of this session (None), or say why not.

        Refused: this session has one queued or running, or the app has ``max_waiting``. A
        raw API call without a session hash (Gradio gives it a new one later) counts only
        towards ``max_waiting``.
        """
        now = time.monotonic()
        with self._lock:  # two requests of one session at once: only one is accepted
            listed = self.jobs()
            self._accepted = [(t, s, u) for t, s, u in self._accepted
                              if now - t < BRIDGE_S and (s, u) not in listed]
            waiting = listed + [(s, u) for _, s, u in self._accepted]
            if session_hash is not None and (session_hash, login) in waiting:
                article = "an" if self.what[0] in "aeiou" else "a"
                return (f"This session already has {article} {self.what} queued or running; "
                        f"wait for it to finish (or stop it) before starting another.")
            if len(waiting) >= self.max_waiting:
                return (f"{len(waiting)} {self.what}s are queued or running, the most this app "
                        f"takes at once; try again in a few minutes.")
            self._accepted.append((now, session_hash, login))
            return None

    def started(self, session_hash: str | None, login: str | None) -> None:
        """The job of this session has started: Gradio lists it from now until it ends."""
        with self._lock:
            self._accepted = [(t, s, u) for t, s, u in self._accepted
                              if (s, u) != (session_hash, login)]

    def validator(self, request: gr.Request, *inputs: Any) -> list:
        """Gradio's validator signature: the request first (Gradio fills it in), then the
        event's inputs (only counted). A refusal is shown at the first input (HTTP 422 for API
        clients; ``gradio_client`` raises a ``ValidationError`` with the message)."""
        refusal = self.admit(getattr(request, "session_hash", None),
                             getattr(request, "username", None))
        valid = [gr.validate(True, "") for _ in inputs]
        if refusal is None or not valid:
            return valid
        return [gr.validate(False, refusal)] + valid[1:]


def limit_long_jobs(demo: gr.Blocks, max_waiting: int = MAX_WAITING) -> dict[str, OnePerSession]:
    """Give every :data:`LONG_JOBS` event of ``demo`` its :class:`OnePerSession` validator."""
    limits = {}
    for block_fn in demo.fns.values():
        what = LONG_JOBS.get(getattr(block_fn, "api_name", None) or "")
        if what and block_fn.validator is None:
            limit = OnePerSession(demo, block_fn.api_name, what, max_waiting)
            block_fn.validator = limit.validator
            block_fn.fn = _noting_start(block_fn.fn, limit)
            limits[block_fn.api_name] = limit
    return limits


def _noting_start(fn: Callable, limit: OnePerSession) -> Callable:
    """``fn`` (a generator function or not) telling ``limit`` when its job starts, so that a
    job that ends at once (a refused setting) does not leave its session refused for a while.
    ``functools.wraps`` keeps the signature Gradio reads (``gr.Request`` is filled in)."""
    def note(args: tuple, kwargs: dict) -> None:
        request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
        limit.started(getattr(request, "session_hash", None), getattr(request, "username", None))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator:
            note(args, kwargs)
            yield from fn(*args, **kwargs)
        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        note(args, kwargs)
        return fn(*args, **kwargs)
    return call
