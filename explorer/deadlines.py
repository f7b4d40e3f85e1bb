"""Actions that end: a wait with a time limit, and a message that says how to try again.

Issue 30 saw the mask editor say "processing" for more than 250 s after sample → stroke →
upload. Whatever holds an action up (a busy machine, a large decode, GrabCut on a big photo),
the user must get an answer: :func:`within` runs the work in a helper thread and waits at most
``limit_s`` seconds. Past that it raises :class:`TookTooLong`, an
:class:`explorer.errors.InputError` whose message names the action, the limit and the way to
retry; the work itself cannot be interrupted (Python threads cannot be killed), so it finishes
in the background and its result is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from explorer.errors import InputError

Result = TypeVar("Result")

IMAGE_ACTION_S = 60.0
"""Most seconds an action that sets the editor's image or mask (upload, sample, automatic mask,
mask file, clear) may take before the user is told to try again."""


class TookTooLong(InputError):
    """An action ran past its time limit; the message says how to try again."""


def within(limit_s: float, what: str, retry: str, work: Callable[[], Result]) -> Result:
    """``work()``'s result, or :class:`TookTooLong` after ``limit_s`` seconds.

    Args:
        limit_s: the most seconds to wait.
        what: the action, as the subject of a sentence ("Loading the image").
        retry: how to try again ("Upload it again.").
        work: the action; its exceptions reach the caller unchanged.

    Raises:
        TookTooLong: the work did not finish in time (it goes on in the background, unseen).
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # noqa: BLE001 — handed to the waiting caller
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"deadline: {what}", daemon=True)
    worker.start()
    worker.join(limit_s)
    if worker.is_alive():
        raise TookTooLong(f"{what} took longer than {limit_s:g} s, so the explorer stopped "
                          f"waiting (the server may be busy). Nothing was changed. {retry}")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
