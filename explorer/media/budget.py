"""A budget on concurrent large decodes for the whole app: a few at once, the others told to retry.

A 40-megapixel image, even decoded reduced (:mod:`explorer.media.decode`), costs a few hundred
megabytes while it is read; six at once across ``/explain``, ``/load_image`` and
``/mask_threshold`` once took the server to 10.3 GB. :class:`DecodeBudget` lets at most
``slots`` images larger than ``large_pixels`` be decoded at the same time; a request that finds
no free slot within ``wait_s`` seconds is refused with "busy, try again" (nothing decoded), while
small images never wait.

The budget belongs to one app: :func:`explorer.app.build_demo` makes it and hangs it on the
``gr.Blocks`` (beside ``explorer_context``), and :func:`running_budget` finds it for the request
being served (Gradio's request context names the app), so two apps in one process (tests) never
share one, and there is no module-level state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from explorer.errors import InputError

LARGE_PIXELS = 4_000_000
"""An image above this many pixels (about 2000 × 2000) needs a slot of the budget."""
DEFAULT_SLOTS = 2
"""Large decodes at once in the whole app."""
DEFAULT_WAIT_S = 3.0
"""How long a large decode waits for a free slot before it is refused."""


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
    def slot(self, pixels: int, name: str = "the image") -> Iterator[None]:
        """Hold a slot while decoding an image of ``pixels`` pixels (none for a small one).

        Raises:
            InputError: every slot stayed taken for ``wait_s`` seconds ("busy, try again").
        """
        if pixels <= self.large_pixels:
            yield
            return
        taken = self._free.acquire(timeout=self.wait_s) if self.wait_s > 0 else \
            self._free.acquire(blocking=False)
        if not taken:
            raise InputError(f"The server is busy decoding {self.slots} other large images; "
                             f"{name} ({pixels / 1e6:.0f} megapixels) was not read. Try again "
                             f"in a few seconds, or upload a smaller image.")
        try:
            yield
        finally:
            self._free.release()


def running_budget() -> DecodeBudget | None:
    """The decode budget of the app serving the current request (None outside a request, or
    for an app built without one)."""
    from gradio.context import LocalContext  # lazy: the engine-side callers never need Gradio

    blocks = LocalContext.blocks.get(None)
    budget = getattr(blocks, "decode_budget", None)
    return budget if isinstance(budget, DecodeBudget) else None
