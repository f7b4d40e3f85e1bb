"""Who owns the files and models a session makes, and how long they live.

Every file the explorer writes for a user (editor images, unpacked uploads, fine-tuned
checkpoints) lies in that session's folder under the process's work folder, and every model a
user loads or fine-tunes is owned by the session's key in the :class:`ModelStore`.

* A session's **key** (:func:`session_key`) is its Gradio session hash, joined to the login
  under ``--auth``: another login that sends the same hash is another session, and finds none
  of its models.
* A session's **folder** (:meth:`SessionJanitor.folder_name`) is named by a keyed hash (a secret
  of this process) of the login and of the key, never by the session hash itself: file URLs
  reveal nothing a client could use to act as that session, and :mod:`explorer.serving` can tell
  from a URL's folder which login owns a file.

The :class:`SessionJanitor` removes a session's work only when it was idle for ``ttl_s``
seconds. A disconnect (``demo.unload``, which Gradio fires whenever the heartbeat stream
breaks, even for a two-second network blip) counts as activity and deletes nothing: a client
that reconnects with the same hash finds its models and files. Clients of the raw HTTP API,
which never "close a page", are cleaned up by the same time to live.

Big uploads (checkpoints) that no model uses are deleted by the same sweeps once older than
``Limits.upload_ttl_s`` (:class:`explorer.uploads.BigUploads`).

Idle sessions are swept lazily (whenever a session is used, at most every ``sweep_every_s``
seconds) and by a small daemon thread, which ends when the janitor is garbage-collected.
Folders the janitor has never seen in use (left from before a restart with the same work folder)
age by their modification time.

:func:`sweep_leftovers` removes what earlier, dead processes left behind, at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from explorer.uploads import BigUploads
from isnet.io.leftovers import sweep_partial_files, sweep_stale_folders

logger = logging.getLogger(__name__)

WORK_PREFIX = "isnet-explorer-"
"""Name prefix of per-process work folders: ``isnet-explorer-<pid>-<random>``."""


LOGIN_SEPARATOR = "\x00"
"""Between the login and the session hash in a session key (no login can contain it)."""


def session_key(session_hash: str | None, login: str | None = None) -> str | None:
    """The key a session's models, files and views are owned by: the session hash, joined to
    the login when the app requires one (None without a session hash)."""
    if not session_hash:
        return None
    return f"{login}{LOGIN_SEPARATOR}{session_hash}" if login else session_hash


def login_of(session: str | None) -> str:
    """The login part of a session key ("" without a login)."""
    login, separator, _ = (session or "").partition(LOGIN_SEPARATOR)
    return login if separator else ""


class SessionJanitor:
    """Removes a session's models and folder when it idled longer than ``ttl_s``.

    Args:
        store: the model store (its ``drop_session`` forgets a session's models).
        work_dir: the folder holding one sub-folder per session.
        ttl_s: idle time after which a session's work is removed (a disconnect does not
            shorten it: it counts as activity).
        sweep_every_s: shortest interval between two sweeps.
    """

    def __init__(self, store, work_dir: Path, ttl_s: float = 3600.0,
                 sweep_every_s: float = 60.0) -> None:
        self.store, self.work_dir = store, Path(work_dir)
        self.ttl_s, self.sweep_every_s = float(ttl_s), float(sweep_every_s)
        self._seen: dict[str, float] = {}
        self._folders: dict[str, str] = {}  # folder name -> session key
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()
        self._secret = secrets.token_bytes(32)
        self.on_forget: Callable[[str | None], None] | None = None
        """Called with each session whose work is removed (the context drops its views)."""
        self.uploads = BigUploads()
        """Big (checkpoint) uploads, deleted by :meth:`sweep` when old and used by no model."""

    def login_tag(self, login: str | None) -> str:
        """The first part of the folder names of ``login``'s sessions ("" for no login)."""
        return hmac.new(self._secret, b"login:" + (login or "").encode(),
                        hashlib.sha256).hexdigest()[:16]

    def folder_name(self, session: str | None) -> str:
        """The folder name of a session: ``<login tag>-<keyed hash of the key>``; the session
        hash cannot be read back from it."""
        key = (session or "anonymous").encode("utf-8", "surrogatepass")
        digest = hmac.new(self._secret, b"session:" + key, hashlib.sha256).hexdigest()[:32]
        return f"{self.login_tag(login_of(session))}-{digest}"

    def touch(self, session: str | None) -> None:
        """Note that ``session`` is in use now (and sweep idle ones when it is time)."""
        now = time.monotonic()
        key = session or "anonymous"
        folder = self.folder_name(session)
        with self._lock:
            self._seen[key] = now
            self._folders[folder] = key
            due = now - self._last_sweep >= self.sweep_every_s
        if due:
            self.sweep()

    def disconnected(self, session: str | None) -> None:
        """The session's page or heartbeat went away (``demo.unload``): nothing is deleted; its
        work is kept for another ``ttl_s`` seconds, for the client to reconnect."""
        self.touch(session)

    def forget(self, session: str | None) -> None:
        """Remove ``session``'s models and folder now."""
        key = session or "anonymous"
        folder = self.folder_name(session)
        with self._lock:
            self._seen.pop(key, None)
            self._folders.pop(folder, None)
        self.store.drop_session(session)
        if self.on_forget is not None:
            self.on_forget(session)
        shutil.rmtree(self.work_dir / folder, ignore_errors=True)

    def active(self, session: str | None) -> bool:
        """Whether ``session`` was in use within the last ``ttl_s`` seconds."""
        with self._lock:
            seen = self._seen.get(session or "anonymous")
        return seen is not None and time.monotonic() - seen < self.ttl_s

    def forget_runs(self, record: dict | None) -> None:
        """Remove the models and checkpoints listed in a fine-tune record (``gr.State`` value,
        which Gradio drops on its own clock), unless their session is still active."""
        for run in (record or {}).get("runs", []):
            if self.active(self.store.owner_of(run.get("model_id"))):
                continue
            self.store.drop_model(run.get("model_id"))
            if run.get("checkpoint"):
                Path(run["checkpoint"]).unlink(missing_ok=True)

    def sweep(self) -> list[str]:
        """Forget every session idle for ``ttl_s`` seconds, and remove folders of no known
        session as old as that; returns the removed folders' names."""
        now, wall = time.monotonic(), time.time()
        with self._lock:
            self._last_sweep = now
            idle = [key for key, seen in self._seen.items() if now - seen >= self.ttl_s]
            known = set(self._folders)
        removed = [self.folder_name(key) for key in idle]
        for key in idle:
            self.forget(key)
        if self.work_dir.is_dir():
            for folder in self.work_dir.iterdir():
                try:
                    if (folder.is_dir() and folder.name not in known
                            and wall - folder.stat().st_mtime >= self.ttl_s):
                        shutil.rmtree(folder, ignore_errors=True)
                        removed.append(folder.name)
                except OSError:
                    continue
        if removed:
            logger.info("removed the work of %d idle session(s)", len(removed))
        self.uploads.sweep(self.paths_in_use())
        return sorted(set(removed))

    def paths_in_use(self) -> set[str]:
        """The files of every model a known session (or everyone) can use."""
        with self._lock:
            keys = list(self._seen)
        paths = {entry.path for entry in self.store.visible(None) if entry.path}
        for key in keys:
            paths |= {entry.path for entry in self.store.visible(key) if entry.path}
        return {str(path) for path in paths}

    def start_thread(self) -> threading.Thread:
        """Sweep every ``sweep_every_s`` seconds in a daemon thread, while this janitor lives."""
        reference = weakref.ref(self)
        interval = self.sweep_every_s

        def run() -> None:
            while True:
                time.sleep(interval)
                janitor = reference()
                if janitor is None:
                    return
                try:
                    janitor.sweep()
                except Exception:  # noqa: BLE001 — a failed sweep must not end the sweeping
                    logger.exception("session sweep failed")
                del janitor

        thread = threading.Thread(target=run, name="session-janitor", daemon=True)
        thread.start()
        return thread


def sweep_leftovers(root: Path, keep: Path | None = None, older_than_s: float = 600.0) -> list:
    """Remove work folders of dead earlier processes in ``root`` and partial files of killed
    saves below it; returns what was removed.

    Args:
        root: the folder holding ``isnet-explorer-<pid>-…`` work folders (Gradio's temp folder).
        keep: this process's own work folder.
        older_than_s: only folders and partial files at least this old are removed.
    """
    removed = list(sweep_stale_folders(root, WORK_PREFIX, older_than_s,
                                       keep=(keep,) if keep else ()))
    removed += sweep_partial_files(root, older_than_s, recursive=True)
    return removed
