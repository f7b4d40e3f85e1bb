"""A budget on concurrent large decodes for the whole app: a few at once, the others told to retry.

A 40-megapixel image, even decoded reduced (:mod:`explorer.media.decode`), costs a few hundred
megabytes while it is read; six at once across ``/explain``, ``/load_image`` and
``/mask_threshold`` once took the server to 10.3 GB. :class:`DecodeBudget` lets at most
``slots`` images larger than ``large_pixels`` be decoded at the same time; a request that finds
no free slot within ``wait_s`` seconds is refused with "busy, try again" (nothing decoded), while
small images never wait. Once a large decode has ended, the memory its full-size buffers took
is handed back to the system (:func:`explorer.memory.release_memory`): PIL allocates them in
16 MB blocks, which glibc would otherwise keep.

The budget belongs to one app: :func:`guard_large_files` (called by
:func:`explorer.app.build_demo`) hangs it on the ``gr.Blocks`` (beside ``explorer_context``), so
two apps in one process (tests) never share one, and there is no module-level state. It is held
at two levels, never twice by one request: a decode during Gradio's preprocessing (the image
editor's files) finds it through Gradio's request context (:func:`running_budget`); and every
event (other than the long jobs) that receives a large image *file* holds it for the whole event,
since a handler may decode in a thread of its own, where no request context is seen.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from explorer.errors import InputError
from explorer.memory import release_memory
from isnet.io.limits import check_image_header

LARGE_PIXELS = 4_000_000
"""An image above this many pixels (about 2000 × 2000) needs a slot of the budget."""
DEFAULT_SLOTS = 1
"""Large decodes at once in the whole app (a 40-megapixel PNG takes about 160 MB while PIL
decodes it; six at once with two slots still peaked at +564 MB)."""
DEFAULT_WAIT_S = 10.0
"""How long a large decode waits for the slot before it is refused (a 40-megapixel PNG takes a
few seconds to decode)."""
UNGUARDED = ("fine_tune", "audit", "api/audit")
"""Events whose files are not held for the whole event (they run for minutes; their images are
bounded and decoded reduced by :mod:`isnet.data.folders`)."""
_HOLDING: ContextVar[bool] = ContextVar("isnet_decode_slot_held", default=False)
"""Whether the running request already holds a slot (so an inner decode does not wait for it)."""


class DecodeBudget:
    """At most ``slots`` large decodes at once; see the module docstring.

    Args:
        slots: large decodes allowed at the same time.
        wait_s: how long one waits for a slot before "busy" (0: not at all).
        large_pixels: images above this many pixels need a slot.
    """

    def __init__(self, slots: int = DEFAULT_SLOTS, wait_s: float = DEFAULT_WAIT_S,
                 large_pixels: int = LARGE_PIXELS) -> None:
        if slots < 1:
            raise ValueError(f"a decode budget needs at least one slot, got {slots}")
        self.slots, self.wait_s, self.large_pixels = slots, wait_s, large_pixels
        self._free = threading.BoundedSemaphore(slots)

    @contextmanager
    def slot(self, pixels: int, name: str = "the image", mark: bool = True) -> Iterator[None]:
        """Hold a slot while decoding an image of ``pixels`` pixels (none for a small one, nor
        when this request holds one already). ``mark``: note in the request's context that it
        holds one (not from a generator, whose steps may run in other contexts).

        Raises:
            InputError: every slot stayed taken for ``wait_s`` seconds ("busy, try again").
        """
        if pixels <= self.large_pixels or _HOLDING.get():
            yield
            return
        taken = self._free.acquire(timeout=self.wait_s) if self.wait_s > 0 else \
            self._free.acquire(blocking=False)
        if not taken:
            others = "another large image" if self.slots == 1 else \
                f"{self.slots} other large images"
            raise InputError(f"The server is busy decoding {others}; "
                             f"{name} ({pixels / 1e6:.0f} megapixels) was not read. Try again "
                             f"in a few seconds, or upload a smaller image.")
        held = _HOLDING.set(True) if mark else None
        try:
            yield
        finally:
            if held is not None:
                _HOLDING.reset(held)
            self._free.release()
            release_memory()  # the full-size buffers are freed: hand their pages back


def running_budget() -> DecodeBudget | None:
    """The decode budget of the app serving the current request (None outside a request, or
    for an app built without one)."""
    from gradio.context import LocalContext  # lazy: the engine-side callers never need Gradio

    blocks = LocalContext.blocks.get(None)
    budget = getattr(blocks, "decode_budget", None)
    return budget if isinstance(budget, DecodeBudget) else None


def largest_image_file(values: tuple, large_pixels: int) -> tuple[int, str]:
    """(pixels, base name) of the largest image file among ``values`` (paths, or lists of
    them) above ``large_pixels``; (0, "") when there is none. Only headers are read."""
    best = (0, "")
    paths = [v for value in values for v in (value if isinstance(value, (list, tuple))
                                              else [value]) if isinstance(v, (str, os.PathLike))]
    for path in paths:
        try:
            if len(str(path)) > 4096 or not Path(path).is_file():
                continue
            header = check_image_header(path, max_pixels=1 << 62)
        except (OSError, ValueError):
            continue
        pixels = header.width * header.height
        if pixels > large_pixels and pixels > best[0]:
            best = (pixels, Path(path).name)
    return best


def guard_large_files(demo: Any, budget: DecodeBudget | None = None) -> DecodeBudget:
    """Give ``demo`` its decode budget (``demo.decode_budget``) and make every event but the
    :data:`UNGUARDED` ones hold a slot of it while it runs with a large image file among its
    inputs; returns the budget."""
    budget = budget or DecodeBudget()
    demo.decode_budget = budget
    for block_fn in demo.fns.values():
        if getattr(block_fn, "api_name", None) not in UNGUARDED:
            block_fn.fn = _holding_for_files(block_fn.fn, budget)
    return budget


def _holding_for_files(fn: Callable | None, budget: DecodeBudget) -> Callable | None:
    """``fn`` (a generator function or not) run inside ``budget.slot`` when one of its
    arguments is a large image file; ``functools.wraps`` keeps the signature Gradio reads."""
    if fn is None:
        return None
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator:
            pixels, name = largest_image_file((*args, *kwargs.values()), budget.large_pixels)
            with _refusal_shown(), budget.slot(pixels, name or "the image", mark=False):
                yield from fn(*args, **kwargs)
        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        pixels, name = largest_image_file((*args, *kwargs.values()), budget.large_pixels)
        with _refusal_shown(), budget.slot(pixels, name or "the image"):
            return fn(*args, **kwargs)
    return call


@contextmanager
def _refusal_shown() -> Iterator[None]:
    """A "busy" refusal raised by the slot (outside the handler's own ``guarded``) reaches the
    user as a ``gr.Error`` with its message."""
    try:
        yield
    except InputError as error:
        import gradio as gr

        raise gr.Error(str(error), title="Cannot do that") from None
