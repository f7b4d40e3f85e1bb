"""Small generated hostile inputs for tests/test_serving.py: a PNG whose header lies about its
size, checkpoints without an architecture or with absurdly deep metadata JSON."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from ui_fixtures import CLASSES, tiny_models


def forged_png(path: Path, width: int, height: int) -> Path:
    """A ~100-byte PNG whose header claims ``width`` × ``height`` RGB pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def tiny_checkpoint(path: Path) -> tuple[dict, dict]:
    """Save a tiny checkpoint; its tensors and its metadata JSON (to be forged)."""
    from safetensors import safe_open

    from isnet.io.checkpoints import save_checkpoint

    save_checkpoint(path, tiny_models()["Tiny standard"][0], model_name="tiny_densenet",
                    class_names=list(CLASSES), input_size=32)
    with safe_open(str(path), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    return tensors, metadata


def no_architecture(folder: Path) -> Path:
    from safetensors.torch import save_file

    tensors, metadata = tiny_checkpoint(folder / "base.safetensors")
    (key, text), = metadata.items()
    document = json.loads(text)
    document.pop("architecture")
    save_file(tensors, str(folder / "no_architecture.safetensors"),
              metadata={key: json.dumps(document)})
    return folder / "no_architecture.safetensors"


def deep_metadata(folder: Path) -> Path:
    from safetensors.torch import save_file

    tensors, metadata = tiny_checkpoint(folder / "base2.safetensors")
    (key, text), = metadata.items()
    document = json.loads(text)
    document["data"] = "DEEP"
    deep = json.dumps(document).replace('"DEEP"', "[" * 5000 + "]" * 5000)
    save_file(tensors, str(folder / "deep.safetensors"), metadata={key: deep})
    return folder / "deep.safetensors"
