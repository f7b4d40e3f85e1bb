"""Leftovers of killed processes: partial files of interrupted saves, and stale work folders.

:func:`isnet.io.atomic.write_atomically` writes to ``.<name>.<random>.tmp`` next to the target and
removes it on any error, but a process killed with SIGKILL (or a power cut) leaves it behind.
:func:`sweep_partial_files` removes such files once they are older than any save could take.

A serving process keeps per-process work in folders named ``<prefix><pid>…`` (for example
``isnet-explorer-4242-ab12``); :func:`sweep_stale_folders` removes those of earlier processes at
start-up: old enough, and not belonging to a process that is still running.

Both only touch what they are asked to: entries directly in the given folder (or below it, for
partial files with ``recursive=True``), matching the name pattern, never following symbolic
links. Each returns what it removed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

from isnet.io.atomic import TEMPORARY_SUFFIX

logger = logging.getLogger(__name__)

_LEADING_PID = re.compile(r"(\d+)")


def sweep_partial_files(folder: str | os.PathLike, older_than_s: float = 3600.0,
                        recursive: bool = False) -> list[Path]:
    """Remove partial files (``.<name>.<random>.tmp``) left by interrupted atomic writes.

    Args:
        folder: where the atomic writes went (a missing folder is fine: nothing to do).
        older_than_s: only files last modified at least this many seconds ago are removed, so
            a save in progress in another process is left alone.
        recursive: also sweep every sub-folder (symbolic links are not followed).

    Returns:
        The removed files.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    pattern = f".*{TEMPORARY_SUFFIX}"
    candidates = root.rglob(pattern) if recursive else root.glob(pattern)
    deadline = time.time() - older_than_s
    removed = []
    for path in sorted(candidates):
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_mtime > deadline:
                continue
            path.unlink()
        except OSError as error:  # vanished meanwhile, or not ours to remove
            logger.debug("could not remove %s: %s", path.name, error)
            continue
        removed.append(path)
    if removed:
        logger.info("removed %d partial file(s) of interrupted saves in %s", len(removed),
                    root.name)
    return removed


def sweep_stale_folders(parent: str | os.PathLike, prefix: str, older_than_s: float = 3600.0,
                        keep: tuple[str | os.PathLike, ...] = ()) -> list[Path]:
    """Remove per-process work folders ``parent/<prefix>…`` left by earlier processes.

    A folder is removed when its name starts with ``prefix``, it was last modified at least
    ``older_than_s`` seconds ago, it is not in ``keep``, and — if the name continues with a
    process id (``<prefix><pid>…``) — that process is no longer running.

    Args:
        parent: the folder holding the work folders (missing: nothing to do).
        prefix: the name prefix of the work folders (must not be empty).
        older_than_s: minimal age (seconds since the folder's last modification).
        keep: folders never removed (e.g. this process's own).

    Returns:
        The removed folders.

    Raises:
        ValueError: ``prefix`` is empty (that would match every folder).
    """
    if not prefix:
        raise ValueError("sweep_stale_folders needs a non-empty name prefix")
    root = Path(parent)
    if not root.is_dir():
        return []
    kept = {Path(path).resolve() for path in keep}
    deadline = time.time() - older_than_s
    removed = []
    for path in sorted(root.glob(f"{_glob_escape(prefix)}*")):
        try:
            if (path.is_symlink() or not path.is_dir() or path.resolve() in kept
                    or path.stat().st_mtime > deadline or _owner_alive(path.name[len(prefix):])):
                continue
            shutil.rmtree(path)
        except OSError as error:
            logger.debug("could not remove %s: %s", path.name, error)
            continue
        removed.append(path)
    if removed:
        logger.info("removed %d stale work folder(s) %s* in %s", len(removed), prefix, root.name)
    return removed


def _glob_escape(text: str) -> str:
    """``text`` with glob wildcards (``*``, ``?``, ``[``) matched literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _owner_alive(rest: str) -> bool:
    """Whether the process id at the start of ``rest`` (if any) is a running process."""
    found = _LEADING_PID.match(rest)
    if found is None:
        return False
    pid = int(found.group(1))
    if pid == os.getpid():
        return True
    if pid <= 0 or pid > 2**22:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True
