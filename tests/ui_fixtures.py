"""Shared helpers for the explorer's tests: tiny models, a tiny sample folder, a launched app.

Imported by test_handlers.py, test_app.py and test_browser.py (pytest puts ``tests/`` on the
import path). Everything is small enough to run in seconds on two CPU cores.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CLASSES = ["circle", "square", "triangle"]
SIZE = 32


def tiny_models(seed: int = 0) -> dict:
    """{label: (tiny DenseNet, metadata)} for a standard and an "ISNet" model (3 classes, 32 px).

    They are untrained, so their metadata says how they count (``trained_as``) rather than a
    training method.
    """
    from isnet.models.densenet import tiny_densenet

    models = {}
    for offset, (label, kind) in enumerate((("Tiny standard", "standard"),
                                               ("Tiny ISNet", "isnet"))):
        torch.manual_seed(seed + offset)
        metadata = {"class_names": list(CLASSES), "input_size": SIZE, "trained_as": kind,
                    "model_name": "tiny_densenet"}
        models[label] = (tiny_densenet(num_classes=3).eval(), metadata)
    return models


def object_image(kind: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright object of class ``kind`` on a dark noisy background, and its mask.

    Returns:
        (size, size, 3) uint8 image, (size, size) bool mask.
    """
    rng = np.random.default_rng(seed)
    image = (rng.random((size, size, 3)) * 40).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c, r = size / 2, size / 4
    if kind == 0:
        mask = (yy - c) ** 2 + (xx - c) ** 2 <= r ** 2
    elif kind == 1:
        mask = (abs(yy - c) <= r) & (abs(xx - c) <= r)
    else:
        mask = (yy >= c - r) & (yy <= c + r) & (abs(xx - c) <= (yy - (c - r)) / 2)
    image[mask] = (200 + 20 * kind, 180, 120)
    return image, mask


def write_samples(root: Path, per_class: int = 2) -> tuple[Path, Path]:
    """Write sample images + masks named ``<class>_<i>.png``; returns (images dir, masks dir)."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for kind, name in enumerate(CLASSES):
        for i in range(per_class):
            image, mask = object_image(kind, seed=10 * kind + i)
            Image.fromarray(image).save(images / f"{name}_{i}.png")
            Image.fromarray((mask * 255).astype(np.uint8)).save(masks / f"{name}_{i}.png")
    return images, masks


def make_context(tmp_path: Path):
    """An AppContext with the tiny models and samples (no Gradio server)."""
    from explorer.app import make_context as build

    images, masks = write_samples(tmp_path / "assets")
    return build(models=tiny_models(), samples_dir=images, masks_dir=masks,
                 work_dir=tmp_path / "work")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the system just reported free."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_tiny_app(tmp_path: Path, max_file_size: str = "25mb", max_epochs: int = 20,
                    attempts: int = 5, auth: list[tuple[str, str]] | None = None,
                    work_dir: Path | None = None):
    """Build the explorer on tiny models, launch it on a free port of 127.0.0.1, with the app's
    theme and CSS and :func:`explorer.serving.launch_options` (as ``app.py`` launches it), and
    ``auth`` logins if given.

    Never a fixed port (tests may run side by side); should another process take the port
    between asking and binding, the launch is retried on a new one.

    Returns:
        (demo, url).
    """
    from explorer.app import build_demo
    from explorer.limits import Limits
    from explorer.serving import launch_options
    from explorer.theme import CSS, THEME

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=work_dir or tmp_path / "work",
                      limits=Limits(max_file_size=max_file_size, max_epochs=max_epochs))
    demo.queue(default_concurrency_limit=2)
    for attempt in range(attempts):
        try:
            _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1",
                                    server_port=free_port(), quiet=True, theme=THEME, css=CSS,
                                    max_file_size=demo.explorer_context.limits.max_file_size,
                                    auth=auth, **launch_options(demo))
            return demo, url
        except OSError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def named(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """An endpoint's answer read by name (``explorer.components.*_OUTPUTS``)."""
    assert len(names) == len(values), f"{len(values)} outputs for the names {list(names)}"
    return dict(zip(names, values, strict=True))


def build_tiny_demo(folder: Path, **options: Any):
    """The app's Blocks on the tiny models and written samples (not launched); ``options`` go to
    :func:`explorer.app.build_demo` (e.g. ``arena_dir``)."""
    from explorer.app import build_demo

    images, masks = write_samples(folder / "assets")
    return build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=folder / "work", **options)


def only_block(demo: Any, kind: type, **attributes: Any) -> Any:
    """The one block of ``kind`` whose attributes equal ``attributes`` (fails on none or many)."""
    found = [b for b in demo.blocks.values() if isinstance(b, kind)
             and all(getattr(b, k, None) == v for k, v in attributes.items())]
    assert len(found) == 1, (kind, attributes, found)
    return found[0]


def events_of(demo: Any, block: Any, event: str) -> list:
    """The app's event functions that ``event`` of ``block`` triggers."""
    return [f for f in demo.fns.values() if (block._id, event) in f.targets]
