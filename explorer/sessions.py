"""Who owns the files and models a session makes, and how long they live.

Every file the explorer writes for a user (editor images, unpacked uploads, fine-tuned
checkpoints) lies in that session's folder under the process's work folder, and every model a
user loads or fine-tunes is owned by the session's hash in the :class:`ModelStore`. The
:class:`SessionJanitor` removes both:

* when the session ends (``demo.unload``, or a ``gr.State``'s ``delete_callback``), or
* when the session was idle for ``ttl_s`` seconds — what cleans up after clients of the raw HTTP
  API, which never "close a page": each of their calls has its own session hash.

Idle sessions are swept lazily (whenever a session is used, at most every ``sweep_every_s``
seconds) and by a small daemon thread, which ends when the janitor is garbage-collected.
Folders the janitor has never seen in use (left from before a restart with the same work folder)
age by their modification time.

:func:`sweep_leftovers` removes what earlier, dead processes left behind, at start-up.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import weakref
from pathlib import Path

from isnet.io.leftovers import sweep_partial_files, sweep_stale_folders

logger = logging.getLogger(__name__)

WORK_PREFIX = "isnet-explorer-"
"""Name prefix of per-process work folders: ``isnet-explorer-<pid>-<random>``."""


def safe_name(session: str | None) -> str:
    """A folder name for a session hash (letters, digits, ``-``, ``_``; "anonymous" if empty)."""
    safe = "".join(c for c in (session or "anonymous") if c.isalnum() or c in "-_")[:64]
    return safe or "anonymous"


class SessionJanitor:
    """Removes a session's models and folder when it ends or idles longer than ``ttl_s``.

    Args:
        store: the model store (its ``drop_session`` forgets a session's models).
        work_dir: the folder holding one sub-folder per session.
        ttl_s: idle time after which a session's work is removed.
        sweep_every_s: shortest interval between two sweeps.
    """

    def __init__(self, store, work_dir: Path, ttl_s: float = 3600.0,
                 sweep_every_s: float = 60.0) -> None:
        self.store, self.work_dir = store, Path(work_dir)
        self.ttl_s, self.sweep_every_s = float(ttl_s), float(sweep_every_s)
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def touch(self, session: str | None) -> None:
        """Note that ``session`` is in use now (and sweep idle ones when it is time)."""
        now = time.monotonic()
        with self._lock:
            self._seen[safe_name(session)] = now
            due = now - self._last_sweep >= self.sweep_every_s
        if due:
            self.sweep()

    def forget(self, session: str | None) -> None:
        """Remove ``session``'s models and folder now (the session ended)."""
        name = safe_name(session)
        with self._lock:
            self._seen.pop(name, None)
        self.store.drop_session(session)
        if name != session:  # a folder name found by a sweep, or a session hash made safe
            self.store.drop_session(name)
        shutil.rmtree(self.work_dir / name, ignore_errors=True)

    def forget_runs(self, record: dict | None) -> None:
        """Remove the models and checkpoints listed in a fine-tune record (``gr.State`` value)."""
        for run in (record or {}).get("runs", []):
            self.store.drop_model(run.get("model_id"))
            if run.get("checkpoint"):
                Path(run["checkpoint"]).unlink(missing_ok=True)

    def sweep(self) -> list[str]:
        """Forget every session idle for ``ttl_s`` seconds; returns their folder names."""
        now, wall = time.monotonic(), time.time()
        with self._lock:
            self._last_sweep = now
            idle = {name for name, seen in self._seen.items() if now - seen >= self.ttl_s}
            known = set(self._seen)
        if self.work_dir.is_dir():
            for folder in self.work_dir.iterdir():
                try:
                    if (folder.is_dir() and folder.name not in known
                            and wall - folder.stat().st_mtime >= self.ttl_s):
                        idle.add(folder.name)
                except OSError:
                    continue
        for name in sorted(idle):
            self.forget(name)
        if idle:
            logger.info("removed the work of %d idle session(s)", len(idle))
        return sorted(idle)

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
