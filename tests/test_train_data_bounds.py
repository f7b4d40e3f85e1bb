"""Issue 34 item 6 and issue 29: the Fine-tune tab's set is bounded before decoding, can be stopped
while it is read, and reaches an ImageNet model as its evaluation does (torchvision's crop).

Handler level (:mod:`explorer.handlers.train_data`): these are the functions the Fine-tune
event calls before its worker starts.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from forged_inputs import forged_png
from PIL import Image
from ui_fixtures import make_context, object_image

from explorer.errors import InputError
from explorer.handlers.train_data import MAX_DECODED_PIXELS, samples_set, uploaded_set
from isnet.data.transforms import crop_pixels


def loose_files(folder, side: int = 64, per_class: int = 2) -> list[str]:
    """``<class>_<i>.png`` + ``.mask.png`` files of two classes, wider than tall (so a crop and
    a squeeze differ)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, name in enumerate(("circle", "square")):
        for index in range(per_class):
            image, mask = object_image(kind, size=side, seed=index)
            wide = np.concatenate([image, image[:, : side // 2]], axis=1)  # (S, 1.5 S, 3)
            wide_mask = np.concatenate([mask, np.zeros_like(mask[:, : side // 2])], axis=1)
            Image.fromarray(wide).save(folder / f"{name}_{index}.png")
            Image.fromarray(wide_mask.astype(np.uint8) * 255).save(
                folder / f"{name}_{index}.mask.png")
            paths += [str(folder / f"{name}_{index}.png"), str(folder / f"{name}_{index}.mask.png")]
    return paths


def test_an_upload_stops_being_read_once_the_stop_event_is_set(tmp_path):
    ctx = make_context(tmp_path)
    paths = loose_files(tmp_path / "upload")
    stop = threading.Event()
    stop.set()
    with pytest.raises(InputError, match="Stopped while reading the uploaded images"):
        uploaded_set(ctx, "session", paths, 32, stop=stop)
    image_set, _ = uploaded_set(ctx, "session", paths, 32, stop=threading.Event())
    assert len(image_set.labels) == 4


def test_an_upload_with_too_many_pixels_is_refused_from_its_headers_before_decoding(tmp_path):
    ctx = make_context(tmp_path)
    folder = tmp_path / "forged"
    folder.mkdir()
    per_file = 6000 * 6000  # each header claims 36 MP; the files hold no such pixels
    count = MAX_DECODED_PIXELS // per_file + 1
    paths = []
    for index in range(count):
        name = ("circle", "square")[index % 2]
        paths.append(str(forged_png(folder / f"{name}_{index}.png", 6000, 6000)))
    with pytest.raises(InputError, match="pixels to decode in all"):
        uploaded_set(ctx, "session", paths, 32)


def test_an_imagenet_models_set_is_cropped_as_torchvision_does_not_squeezed(tmp_path):
    ctx = make_context(tmp_path)
    paths = loose_files(tmp_path / "upload", per_class=1)
    cropped, _ = uploaded_set(ctx, "session", paths, 32, resize="crop")
    squeezed, _ = uploaded_set(ctx, "session", paths, 32)
    picture = np.asarray(Image.open(paths[0]).convert("RGB"))
    mask = np.asarray(Image.open(paths[1])) > 127
    expected, expected_mask = crop_pixels(picture, mask, 32)
    got = (cropped.images[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got - expected.astype(float)).max() <= 1.0
    assert np.array_equal(cropped.masks[0, 0].numpy() > 0.5, expected_mask)
    assert not np.allclose(cropped.images.numpy(), squeezed.images.numpy(), atol=0.05)


def test_the_bundled_samples_are_cropped_for_an_imagenet_model(tmp_path):
    ctx = make_context(tmp_path)
    classes = ["circle", "square", "triangle"]
    cropped = samples_set(ctx, 32, classes, resize="crop")
    squeezed = samples_set(ctx, 32, classes)
    sample = next(s for s in ctx.samples if s.mask_path is not None)
    picture = np.asarray(Image.open(sample.image_path).convert("RGB"))
    expected, _ = crop_pixels(picture, None, 32)
    got = (cropped.images[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got - expected.astype(float)).max() <= 1.0
    assert cropped.images.shape == squeezed.images.shape
