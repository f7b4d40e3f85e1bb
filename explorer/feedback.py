"""How handler outcomes reach the user: refusals become ``gr.Error``, notices become toasts.

Handlers raise :class:`explorer.uploads.InputError` for bad input and return notices as lists of
strings; the tab files wrap their callbacks with :func:`guarded` (or :func:`guarded_stream` for
generators) so that every failure shows a clear message in the UI and the app keeps serving.
An unexpected exception is logged with its traceback and shown as a short message.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator

import gradio as gr

from explorer.uploads import InputError

logger = logging.getLogger("explorer")


def _as_gradio_error(error: Exception) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, InputError):
        return gr.Error(str(error), title="Cannot do that")
    logger.exception("unexpected error in a handler", exc_info=error)
    return gr.Error(f"Unexpected {type(error).__name__}: {error}. The app is still running; "
                    f"please try again or change the input.", title="Something went wrong")


def guarded(fn: Callable) -> Callable:
    """Wrap a Gradio callback so any exception reaches the user as a ``gr.Error``.

    ``functools.wraps`` keeps the signature visible, so Gradio still injects ``gr.Request`` and
    ``gr.Progress`` parameters.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 — every failure must reach the user
            raise _as_gradio_error(error) from error

    return wrapper


def guarded_stream(fn: Callable[..., Iterator]) -> Callable[..., Iterator]:
    """Like :func:`guarded` for generator callbacks (long jobs that yield updates)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except GeneratorExit:
            raise
        except Exception as error:  # noqa: BLE001
            raise _as_gradio_error(error) from error

    return wrapper


def notify(notices: Iterable[str | None], level: str = "warning") -> None:
    """Show each non-empty notice as a toast (``gr.Warning`` or ``gr.Info``)."""
    for notice in notices:
        if notice:
            (gr.Info if level == "info" else gr.Warning)(notice)


def session_of(request: gr.Request | None) -> str | None:
    """The session hash of a request (None outside a request, e.g. direct calls in tests)."""
    return getattr(request, "session_hash", None) if request is not None else None
