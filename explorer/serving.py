"""What the server checks before Gradio's own routes see a request (an ASGI middleware).

Under ``--auth`` Gradio asks for the login on every route but one: ``GET
/gradio_api/heartbeat/<session hash>``, whose end fires ``demo.unload`` and cancels that
session's queued events. :class:`LoginGuard` refuses it without a login (401). It also makes the
files of a session's folder (:meth:`explorer.sessions.SessionJanitor.folder_name`: fine-tuned
checkpoints, exports, editor pictures) belong to the login that made them: another login that
asks for one by its URL gets 404, as for a file that does not exist.

Without ``--auth`` there is no login to check; a session's folder name is then a keyed hash
that reveals nothing of its session hash.

:class:`LoginThrottle` limits password guessing: after :data:`MAX_LOGIN_FAILURES` failed logins
from one client address within :data:`LOGIN_WINDOW_S` seconds, its further logins are answered
429 until that window has passed. (Behind a proxy or a share link every client may have the
proxy's address: then the bound holds for all of them together.)

``launch(..., **launch_options(demo))`` installs it (``app.py`` and the tests' launched apps).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.middleware import Middleware
from starlette.requests import HTTPConnection

from explorer.sessions import SessionJanitor
from explorer.uploads import UploadGuard

FILE_MARKERS = ("/file=", "/file/")
"""Where Gradio's file routes put the file's path (``/gradio_api/file=<path>``)."""
MAX_LOGIN_FAILURES = 5
"""Failed logins one client address may make within :data:`LOGIN_WINDOW_S` seconds."""
LOGIN_WINDOW_S = 300.0
"""The window of :data:`MAX_LOGIN_FAILURES`, in seconds."""


class LoginGuard:
    """ASGI middleware: the heartbeat needs the login, and session files their owner's login.

    Args:
        app: the next ASGI application.
        janitor: the sessions' janitor (folder names and login tags).
    """

    def __init__(self, app: Any, janitor: SessionJanitor) -> None:
        self.app, self.janitor = app, janitor
        self.work_dir = Path(janitor.work_dir).resolve()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        gradio_app = scope.get("app")
        if scope.get("type") != "http" or getattr(gradio_app, "auth", None) is None:
            await self.app(scope, receive, send)  # no login to check
            return
        path = scope.get("path", "")
        user = current_user(gradio_app, scope)
        if "/heartbeat/" in path and user is None:
            await respond(send, 401, "Not authenticated")
            return
        folder = self.session_folder(path)
        if folder is not None and not folder.startswith(self.janitor.login_tag(user) + "-"):
            await respond(send, 404, "File not found")
            return
        await self.app(scope, receive, send)

    def session_folder(self, path: str) -> str | None:
        """The session folder a file route's path lies in, or None (another file or route)."""
        for marker in FILE_MARKERS:
            if marker in path:
                target = unquote(path.split(marker, 1)[1])
                break
        else:
            return None
        try:
            relative = Path(target).resolve().relative_to(self.work_dir)
        except (ValueError, OSError, RuntimeError):
            return None
        return relative.parts[0] if relative.parts else None


class LoginThrottle:
    """ASGI middleware: a client address with too many failed logins lately gets 429.

    Args:
        app: the next ASGI application.
        max_failures: failed logins allowed within ``window_s`` seconds.
        window_s: how far back failures count.
        clock: seconds (monotonic); tests pass their own.
    """

    def __init__(self, app: Any, max_failures: int = MAX_LOGIN_FAILURES,
                 window_s: float = LOGIN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.max_failures, self.window_s, self.clock = app, max_failures, window_s, clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        if scope.get("type") != "http" or scope.get("method") != "POST" or \
                not path.endswith("/login"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        if self.failures(client) >= self.max_failures:
            await respond(send, 429, f"Too many failed logins from this address; try again in "
                                     f"{self.window_s / 60:.0f} minutes.")
            return
        status: list[int] = []

        async def watch(message: dict) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message.get("status", 0)))
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] in (400, 401, 403):
            with self._lock:
                self._failures.setdefault(client, []).append(self.clock())

    def failures(self, client: str) -> int:
        """Failed logins of ``client`` within the window (older ones are forgotten)."""
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            return len(recent)


def current_user(gradio_app: Any, scope: dict) -> str | None:
    """The login of a request, as Gradio's own ``get_current_user`` reads it (its cookie)."""
    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(gradio_app, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or \
        cookies.get(f"access-token-unsecure-{cookie_id}")
    return getattr(gradio_app, "tokens", {}).get(token) if token else None


async def respond(send: Any, status: int, detail: str) -> None:
    """A small JSON error answer."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def launch_options(demo: Any) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch`` that install :class:`LoginThrottle`,
    :class:`LoginGuard` and
    :class:`explorer.uploads.UploadGuard` (small limits for files other than checkpoints; big
    uploads deleted after ``Limits.upload_ttl_s`` seconds unused)."""
    ctx = demo.explorer_context
    janitor, limits = ctx.sessions, ctx.limits
    janitor.uploads.max_age_s = limits.upload_ttl_s
    return {"app_kwargs": {"middleware": [
        Middleware(LoginThrottle),
        Middleware(LoginGuard, janitor=janitor),
        Middleware(UploadGuard, small_limit=limits.max_file_size, big_uploads=janitor.uploads)]}}
