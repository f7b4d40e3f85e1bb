"""How things that go wrong reach the user: refusals as ``gr.Error``, notices as toasts.

Handlers raise :class:`InputError` for input they cannot use (its message is written for the
user) and return notices that should not stop the work as lists of strings. The tabs wrap their
event functions with :func:`guarded` (or :func:`guarded_stream` for generators), so every failure
shows a clear message in the UI and the app keeps serving; an unexpected exception is logged with
its traceback and shown as a short message (:func:`user_message`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator

import gradio as gr

logger = logging.getLogger("explorer")


class InputError(ValueError):
    """An input the explorer cannot use. The message is written for the user."""


def user_message(error: Exception) -> tuple[str, str]:
    """(title, message) to show the user for ``error``.

    An :class:`InputError` is shown as it is; an ``OSError`` (a path too long, a special file
    such as ``/proc/self/mem``) by its reason alone, never its path; anything else is
    unexpected, so it is named and the user is told that the app still runs.
    """
    if isinstance(error, InputError):
        return "Cannot do that", str(error)
    if isinstance(error, ValueError | OverflowError) and str(error).startswith(
            "cannot convert float"):  # int() of NaN or infinity: a whole-number field
        return "Cannot do that", ("A whole-number setting was given NaN or infinity; enter a "
                                  "finite whole number.")
    if isinstance(error, OSError):  # never echo the path: it may be long, or the server's
        reason = error.strerror or type(error).__name__
        return "Cannot do that", (f"That file or folder cannot be read: {reason}. Give a "
                                  f"regular image, zip or checkpoint file of a sensible name "
                                  f"(paths on disk must be short and readable).")
    return "Something went wrong", (f"Unexpected {type(error).__name__}: {error}. The app is "
                                    f"still running; please try again or change the input.")


def _as_gradio_error(error: Exception) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if not isinstance(error, InputError):
        logger.exception("unexpected error in a handler", exc_info=error)
    title, message = user_message(error)
    return gr.Error(message, title=title)


def guarded(fn: Callable) -> Callable:
    """Wrap a Gradio event function so any exception reaches the user as a ``gr.Error``.

    ``functools.wraps`` keeps the signature visible, so Gradio still injects ``gr.Request`` and
    ``gr.Progress`` parameters and names the API parameters after the function's.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 — every failure must reach the user
            raise _as_gradio_error(error) from error

    return wrapper


def guarded_stream(fn: Callable[..., Iterator]) -> Callable[..., Iterator]:
    """Like :func:`guarded` for generator event functions (long jobs that yield updates)."""

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
