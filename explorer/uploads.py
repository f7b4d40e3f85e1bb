"""Uploads: 1 GB only for checkpoints, small limits for the rest, and big files not kept unused.

Gradio has one ``max_file_size`` for every upload, and the explorer needs 1 GB for checkpoints
(``Limits.max_checkpoint_size``), so any endpoint accepted 1 GB. Two things close that:

* :class:`UploadGuard` (ASGI middleware on Gradio's ``/upload`` route) looks at each file right
  after Gradio stored it: a file over ``Limits.max_file_size`` whose name is not a checkpoint's
  (:data:`CHECKPOINT_SUFFIXES`) is deleted at once and the upload answered with 413 and a
  message; an empty file (0 bytes) likewise (400), so empty files do not pile up; a big checkpoint
  upload is noted in the :class:`BigUploads` of the app.
* :class:`BigUploads` deletes a noted upload once it is older than ``Limits.upload_ttl_s``
  seconds unless a loaded model still uses the file (its path), so a 900 MB file that no one
  loads is gone within minutes, not after Gradio's hourly cache sweep. The sessions' janitor
  sweeps it (:meth:`explorer.sessions.SessionJanitor.sweep`).

Messages name only a file's base name.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from explorer.limits import readable_size, size_bytes

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
"""File names that may use the checkpoint limit (the Models tab's accepted types)."""


class BigUploads:
    """Uploads over the small limit (checkpoints), each deleted when old and unused.

    Args:
        max_age_s: how long an upload may stay without a model using it.
    """

    def __init__(self, max_age_s: float = 600.0) -> None:
        self.max_age_s = max_age_s
        self._noted: dict[str, float] = {}
        self._lock = threading.Lock()

    def note(self, path: str | Path) -> None:
        """Remember a big upload from now."""
        with self._lock:
            self._noted[str(path)] = time.monotonic()

    def sweep(self, in_use: Iterable[str | None]) -> list[str]:
        """Delete every noted upload older than ``max_age_s`` that no path in ``in_use``
        names; returns the deleted paths."""
        used = {str(path) for path in in_use if path}
        now = time.monotonic()
        with self._lock:  # a file in use stays noted: it goes once its model is gone
            due = [path for path, noted in self._noted.items()
                   if now - noted >= self.max_age_s and path not in used]
            for path in due:
                del self._noted[path]
        removed = []
        for path in due:
            try:
                Path(path).unlink(missing_ok=True)
                removed.append(path)
            except OSError as error:
                logger.debug("could not remove an upload: %s", error)
        return removed


class UploadGuard:
    """ASGI middleware: non-checkpoint uploads over ``small_limit`` are deleted and refused.

    Args:
        app: the next ASGI application.
        small_limit: the limit for files other than checkpoints (e.g. "25mb").
        big_uploads: where accepted big uploads are noted.
    """

    def __init__(self, app: Any, small_limit: str | int, big_uploads: BigUploads) -> None:
        self.app, self.big_uploads = app, big_uploads
        self.small_limit = size_bytes(small_limit)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or \
                not str(scope.get("path", "")).rstrip("/").endswith("/upload"):
            await self.app(scope, receive, send)
            return
        held: list[dict] = []

        async def hold(message: dict) -> None:
            held.append(message)

        await self.app(scope, receive, hold)  # Gradio moves the files before it returns
        refusal = self.check(held)
        if refusal is None:
            for message in held:
                await send(message)
            return
        status, text = refusal
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def check(self, held: list[dict]) -> tuple[int, str] | None:
        """Delete the uploaded files and return a message when one is empty, or over the small
        limit and not a checkpoint ((400 or 413, message)); note big checkpoint uploads; None
        when all is well."""
        start = next((m for m in held if m.get("type") == "http.response.start"), {})
        if start.get("status") != 200:
            return None
        try:
            paths = json.loads(b"".join(m.get("body", b"") for m in held
                                        if m.get("type") == "http.response.body"))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(paths, list):
            return None
        sizes = {}
        for path in paths:
            try:
                sizes[str(path)] = Path(path).stat().st_size
            except (OSError, TypeError, ValueError):
                continue
        empty = [path for path, size in sizes.items() if size == 0]
        if empty:
            for path in sizes:
                Path(path).unlink(missing_ok=True)
            return 400, f"{Path(empty[0]).name} is empty (0 bytes); nothing was kept."
        refused = [path for path, size in sizes.items() if size > self.small_limit
                   and not path.lower().endswith(CHECKPOINT_SUFFIXES)]
        if not refused:
            for path, size in sizes.items():
                if size > self.small_limit:
                    self.big_uploads.note(path)
            return None
        for path in sizes:
            Path(path).unlink(missing_ok=True)
        name = Path(refused[0]).name
        return 413, (f"{name} is {readable_size(sizes[refused[0]])}; files other than "
                     f"checkpoints ({', '.join(CHECKPOINT_SUFFIXES)}) may be at most "
                     f"{readable_size(self.small_limit)}. It was deleted; upload a smaller "
                     f"file.")
