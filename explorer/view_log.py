"""The per-visitor log of views: what each session looked at, for the export buttons and the
session report (:mod:`explorer.handlers.export` writes it)."""

from __future__ import annotations

import threading


class ViewLog:
    """What each session looked at (newest last, at most ``capacity`` per session): small plain
    dicts written by :mod:`explorer.handlers.export` for the export buttons and the report."""

    def __init__(self, capacity: int = 40) -> None:
        self._views: dict[str, list[dict]] = {}
        self._capacity = capacity
        self._lock = threading.Lock()
        self._writers: dict[str, threading.Lock] = {}

    def recording(self, session: str | None) -> threading.Lock:
        """The session's writer lock: hold it while writing a view's files and adding the view,
        so that files shared between views (named by content) are never removed by a
        concurrent event of the same session that drops an older view."""
        with self._lock:
            return self._writers.setdefault(session or "anonymous", threading.Lock())

    def add(self, session: str | None, view: dict) -> list[dict]:
        """Append ``view`` to the session's list; returns the oldest views dropped to stay
        within capacity (their files may be deleted)."""
        with self._lock:
            views = self._views.setdefault(session or "anonymous", [])
            views.append(view)
            dropped = views[:-self._capacity]
            del views[:-self._capacity]
        return dropped

    def of(self, session: str | None) -> list[dict]:
        """The session's views, oldest first (a copy)."""
        with self._lock:
            return list(self._views.get(session or "anonymous", []))

    def drop(self, session: str | None) -> None:
        """Forget a session's views."""
        with self._lock:
            self._views.pop(session or "anonymous", None)
            self._writers.pop(session or "anonymous", None)
