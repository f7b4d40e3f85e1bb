"""Issue 29 leftover (b): the streamed local audit prepares an ImageNet-style model's images
with torchvision's resize and centre crop (as Explain and ``python -m isnet.audit`` do), not
by squeezing a non-square photo to a square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F
from ui_fixtures import CLASSES, SIZE, tiny_models, write_samples

from explorer.handlers import audit as ha
from explorer.handlers import audit_stream as hs


def write_wide_folder(root: Path) -> dict[str, np.ndarray]:
    """Six 48 × 32 (W × H) photos with a left-to-right ramp and a stripe, in class folders with
    masks; returns {file name: pixels}."""
    written = {}
    for index in range(6):
        name = CLASSES[index % 3]
        pixels = np.zeros((32, 48, 3), np.uint8)
        pixels[..., 0] = np.linspace(0, 255, 48, dtype=np.uint8)[None]  # a ramp across
        pixels[:, 4 + index: 8 + index, 1] = 250  # a stripe near the left edge (cropped away)
        pixels[10:22, 18:30, 2] = 200
        mask = np.zeros((32, 48), np.uint8)
        mask[10:22, 18:30] = 255
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name / f"{name}_{index}.png")
        Image.fromarray(mask).save(root / name / f"{name}_{index}.mask.png")
        written[f"{name}/{name}_{index}.png"] = pixels
    return written


def test_a_streamed_audit_crops_a_wide_photo_as_torchvision_would(tmp_path):
    from explorer.app import make_context

    models = tiny_models()
    for _, metadata in models.values():
        metadata["data"] = {"transforms": {"resize": "crop"}}  # as an ImageNet model's preset
    images, masks = write_samples(tmp_path / "assets")
    ctx = make_context(models=models, samples_dir=images, masks_dir=masks,
                       work_dir=tmp_path / "work")
    pixels = write_wide_folder(tmp_path / "set")
    request = ha.AuditRequest(tuple(ctx.default_pair), source="folder",
                              folder=str(tmp_path / "set"))
    record = list(ha.run_audit(ctx, "s", request, None, local=True))[-1].record
    assert record["streamed"] and record["count"] == 6 and record["resize"] == "crop"
    data = hs.read_streamed(record)
    names = data.files["names"][data.entries]
    for position in range(6):
        image = torch.from_numpy(pixels[str(names[position])]).permute(2, 0, 1).float() / 255
        expected = F.center_crop(F.resize(image, [round(SIZE / 0.875)], antialias=True),
                                 [SIZE, SIZE])  # torchvision's preset: short side, then centre
        expected = (expected.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        kept = data.kept(position, 0)
        assert kept is not None  # all six are among the kept, most reliant images
        assert np.abs(kept[0].astype(int) - expected.astype(int)).max() <= 1
        reread, mask = data.image(position) if position else (None, None)
        if reread is not None:  # an image shown again is cut the same way
            assert np.abs(reread.astype(int) - expected.astype(int)).max() <= 1
