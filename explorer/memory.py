"""Memory handed back to the system after the big jobs (audits, fine-tunes, checkpoint loads).

CPython frees objects at once, but glibc's allocator keeps freed heap pages for later reuse, so
a server that ran four audits stayed at 5.6 GB until something trimmed it. After each event
named in :data:`RELEASED_AFTER` has finished (a generator: once it is exhausted, stopped or
fails), :func:`release_memory` collects garbage cycles, empties PyTorch's CUDA cache when CUDA
is in use, and asks glibc to return free pages (``malloc_trim(0)``, through ``ctypes``; on other
C libraries this step is skipped). :func:`release_after` installs that on a built app
(``explorer.app.build_demo`` calls it).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import torch

RELEASED_AFTER = ("audit", "fine_tune", "load_checkpoint", "audit_fine_tune_set",
                  "randomisation_test")
"""The endpoints after which memory is handed back."""


def release_memory() -> bool:
    """Collect garbage, empty the CUDA cache (if used) and trim glibc's heap.

    Returns:
        Whether glibc's ``malloc_trim`` ran (False elsewhere).
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):  # glibc's name on Linux: no search
        trim = ctypes.CDLL("libc.so.6").malloc_trim
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
        trim(0)
        return True
    return False


def resident_bytes() -> int:
    """This process's resident memory (RSS) in bytes, from ``/proc/self/statm`` (0 elsewhere)."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def release_after(demo: gr.Blocks, api_names: tuple[str, ...] = RELEASED_AFTER) -> list[str]:
    """Make every event of ``demo`` named in ``api_names`` call :func:`release_memory` once it
    has finished; returns the names wrapped."""
    wrapped = []
    for block_fn in demo.fns.values():
        if getattr(block_fn, "api_name", None) in api_names:
            block_fn.fn = _releasing(block_fn.fn)
            wrapped.append(block_fn.api_name)
    return wrapped


def _releasing(fn: Callable) -> Callable:
    """``fn`` (a generator function or not) followed by :func:`release_memory`, whatever its
    end; ``functools.wraps`` keeps the signature Gradio reads."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator:
            try:
                yield from fn(*args, **kwargs)
            finally:
                release_memory()
        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            release_memory()
    return call
