"""Atomic file writes: a partial file never appears under its final name.

The bytes go to a hidden temporary file in the target's folder, are flushed and fsynced, and only
then renamed over the target (``os.replace``, atomic on one file system). Scratch files that can
be made again (cached pictures) may skip the fsync (``durable=False``): readers still never see a
partial file; only a power cut could leave one empty. If anything fails or is
interrupted before the rename, the temporary file is removed and any previous target is intact.
An existing target is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"
"""Suffix of in-progress files (``.<name>.<random>.tmp``), so leftovers can be swept."""


def write_atomically(target: str | os.PathLike, chunks: Iterable[bytes] | bytes,
                     overwrite: bool = False, mode: int = 0o644, durable: bool = True) -> Path:
    """Write ``chunks`` (or one ``bytes``) to ``target`` atomically and return its path.

    Args:
        target: final path; its folder is created if missing.
        chunks: the content, as one ``bytes`` or an iterable of pieces (streamed to disk).
        overwrite: replace an existing file; without it an existing target raises.
        mode: permission bits of the written file (``mkstemp`` would leave 0600).
        durable: fsync before the rename (False: for files that can be made again; a few
            milliseconds saved per file).

    Raises:
        FileExistsError: ``target`` exists (or appeared while writing) and ``overwrite`` is False.
    """
    pieces = [chunks] if isinstance(chunks, (bytes, bytearray, memoryview)) else chunks

    def write(temporary: Path) -> None:
        with temporary.open("wb") as stream:
            for piece in pieces:
                stream.write(piece)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())

    return write_with(target, write, overwrite, mode)


def write_with(target: str | os.PathLike, writer: Callable[[Path], None],
               overwrite: bool = False, mode: int = 0o644) -> Path:
    """Like :func:`write_atomically`, for libraries that write to a path themselves
    (``writer(temporary_path)``, e.g. ``figure.savefig``)."""
    final = Path(target)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; pass overwrite=True (or --force) to "
                              "replace it, or choose another path")
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TEMPORARY_SUFFIX,
                                    dir=final.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        writer(temporary)
        os.chmod(temporary, mode)
        if final.exists() and not overwrite:
            raise FileExistsError(f"{final} appeared while writing; pass overwrite=True to "
                                  "replace it")
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return final
