"""Size limits that keep one user from starving the others, and sizes written as text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Size limits that keep one user from starving the others.

    Attributes:
        max_side: uploaded images are downscaled to this long side.
        max_file_size: largest accepted upload other than a checkpoint, e.g. "20mb".
        max_checkpoint_size: largest accepted checkpoint (upload or file on disk), e.g. "1gb"
            (a torchvision VGG16 is about 530 MB).
        local_paths: accept a checkpoint's path on disk (only when the app runs locally and is
            not shared; app.py sets it).
        max_train_images: largest fine-tuning set.
        max_epochs: longest fine-tune.
        display_side: heatmaps are enlarged to about this size for display.
        session_ttl_s: a session's models and files are removed after this many idle seconds
            (or when it ends, whichever comes first).
        leftover_age_s: at start-up, work folders of dead processes and partial files at least
            this old are removed.
        upload_ttl_s: an upload over ``max_file_size`` (only a checkpoint may be) is deleted
            after this many seconds unless a loaded model uses it.
    """

    max_side: int = 1024
    max_file_size: str = "25mb"
    max_checkpoint_size: str = "1gb"
    local_paths: bool = False
    max_train_images: int = 2000
    max_epochs: int = 20
    display_side: int = 256
    session_ttl_s: float = 3600.0
    leftover_age_s: float = 600.0
    upload_ttl_s: float = 600.0

    @property
    def upload_limit(self) -> str:
        """Gradio's ``max_file_size``: the larger of the two upload limits (a checkpoint is the
        largest thing one uploads); :class:`explorer.uploads.UploadGuard` deletes and refuses
        any other file over ``max_file_size`` right after it is stored."""
        return max(self.max_file_size, self.max_checkpoint_size, key=size_bytes)


def readable_size(text: str | int) -> str:
    """A size limit as people write it: ``"1gb"`` → ``"1 GB"``, ``26214400`` → ``"25 MB"``."""
    count = size_bytes(text)
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def size_bytes(text: str | int) -> int:
    """A size such as ``"25mb"``, ``"1gb"``, ``"300kb"`` or a number of bytes, in bytes
    (binary multiples, as Gradio reads them)."""
    if isinstance(text, int):
        return text
    value = text.strip().lower().replace(" ", "")
    for unit, scale in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("b", 1)):
        if value.endswith(unit):
            return int(float(value[:-len(unit)]) * scale)
    return int(float(value))
