"""Issue 34, items 3b, 6 and 7: large images, zips and image sets cannot take the server's memory.

* a large image is decoded reduced, straight to about the size that is used, and the app lets only
  a few large decodes run at once ("busy, try again" for the others);
* a zip whose end record understates its entries is refused after reading one central-directory
  record more than the limit, never parsed whole;
* an image set's pixels to decode are bounded from the headers before the first is decoded, large
  images are decoded reduced, and the reading stops when asked;
* only the stated formats are read (PPM, ICO, PCX, TGA and SGI are refused).
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app

from explorer.errors import InputError
from explorer.media.budget import DecodeBudget
from explorer.media.decode import decode_image as decode_upload
from explorer.media.decode import open_reduced
from isnet.data.decode import DecodeError, decode_image
from isnet.data.folders import ReadingStopped, load_image_folder
from isnet.io.limits import LimitError, UploadLimits, read_zip_members
from isnet.io.zip_directory import count_entries


def png_bytes(array: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


def smooth_picture(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: a smooth ramp, so a reduced decode and a full one agree closely."""
    rows = np.linspace(0, 255, height)[:, None]
    cols = np.linspace(0, 255, width)[None, :]
    return np.stack([rows + 0 * cols, 0 * rows + cols, (rows + cols) / 2], axis=2).astype(np.uint8)


# --- large images ------------------------------------------------------------------------------

def test_a_large_jpeg_is_decoded_reduced_to_about_the_size_used(tmp_path):
    picture = smooth_picture(3072, 4096)
    path = tmp_path / "big.jpg"
    Image.fromarray(picture).save(path, quality=95)
    image, header = open_reduced(str(path), max_side=1024)
    assert (header.width, header.height) == (4096, 3072)
    assert image.size == (1024, 768)  # libjpeg decoded at 1/4: never the 12.6 MP
    decoded = decode_upload(str(path), max_side=1024)
    assert decoded.image.shape == (768, 1024, 3)
    assert decoded.notices == ["Large image (4096×3072) downscaled to 1024×768."]
    expected = picture[::4, ::4].astype(float)  # the ramp sampled every fourth pixel
    assert np.abs(decoded.image.astype(float) - expected).mean() < 3.0


def test_a_large_png_is_reduced_before_it_becomes_floating_point(tmp_path):
    picture = smooth_picture(2500, 3000)
    path = tmp_path / "big.png"
    Image.fromarray(picture).save(path)
    image, _ = open_reduced(str(path), max_side=1024)
    assert image.size == (1500, 1250)  # reduced by 2 (3000 // 1024) as it is read
    decoded = decode_upload(str(path), max_side=1024)
    assert decoded.image.shape == (853, 1024, 3)
    assert decoded.notices == ["Large image (3000×2500) downscaled to 1024×853."]


def test_the_engine_decodes_a_large_image_reduced_never_below_the_size_asked():
    raw = png_bytes(smooth_picture(1000, 1200))
    assert decode_image(raw, "a.png")[0].shape == (1000, 1200, 3)
    assert decode_image(raw, "a.png", reduce_to=100)[0].shape == (125, 150, 3)  # 1/8
    assert decode_image(raw, "a.png", reduce_to=300)[0].shape == (500, 600, 3)  # 1/2
    assert decode_image(raw, "a.png", reduce_to=600)[0].shape == (1000, 1200, 3)


def test_over_the_decode_budget_a_large_image_is_refused_as_busy_not_decoded(tmp_path):
    budget = DecodeBudget(slots=1, wait_s=0, large_pixels=1_000_000)
    path = tmp_path / "big.png"
    Image.fromarray(smooth_picture(1200, 1200)).save(path)
    with budget.slot(2_000_000, mark=False):  # another request is decoding a large image
        with pytest.raises(InputError, match="busy decoding another large image"):
            open_reduced(str(path), 1024, budget)
        small, _ = open_reduced(png_bytes(smooth_picture(64, 64)), 1024, budget)  # no wait
    assert small.size == (64, 64)
    assert open_reduced(str(path), 1024, budget)[0].size == (1200, 1200)  # the slot is free


def test_the_app_tells_a_large_upload_to_retry_while_its_decode_budget_is_spent(tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    demo, url = launch_tiny_app(tmp_path)
    try:
        budget = demo.decode_budget
        assert isinstance(budget, DecodeBudget)
        budget.wait_s = 0
        path = tmp_path / "big.png"
        Image.fromarray(smooth_picture(2100, 2100)).save(path)  # 4.4 MP: a large decode
        client = Client(url, verbose=False)
        holders = [budget.slot(10**9, mark=False) for _ in range(budget.slots)]
        for holder in holders:
            holder.__enter__()
        try:
            with pytest.raises(AppError, match="busy decoding .* Try again"):
                client.predict(handle_file(str(path)), api_name="/load_image")
        finally:
            for holder in holders:
                holder.__exit__(None, None, None)
        answer = client.predict(handle_file(str(path)), api_name="/load_image")
        assert answer is not None
        client.close()
    finally:
        demo.close()


# --- zips --------------------------------------------------------------------------------------

def lying_zip(path, entries: int, declared: int, damaged_after: int):
    """A zip of ``entries`` tiny members whose end record declares ``declared`` entries and whose
    central directory is damaged from record ``damaged_after`` on (a reader that parses the
    whole directory fails there; one that stops at a limit below it never sees it)."""
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(entries):
            archive.writestr(f"cat/{index:04d}.txt", b"x")
    raw = bytearray(path.read_bytes())
    end = raw.rfind(b"PK\x05\x06")
    raw[end + 8:end + 12] = struct.pack("<HH", declared, declared)
    size, offset = struct.unpack("<II", raw[end + 12:end + 20])
    position = offset
    for _ in range(damaged_after):
        name, extra, comment = struct.unpack("<HHH", raw[position + 28:position + 34])
        position += 46 + name + extra + comment
    raw[position:position + 4] = b"JUNK"
    path.write_bytes(bytes(raw))
    return path


def test_a_zip_whose_end_record_lies_is_refused_at_the_limit_without_parsing_the_rest(tmp_path):
    path = lying_zip(tmp_path / "liar.zip", entries=40, declared=5, damaged_after=12)
    limits = UploadLimits(max_files=10)
    assert count_entries(path, 10) == 11  # stopped one record past the limit
    with pytest.raises(LimitError, match="more than 10 entries"):
        read_zip_members(path, limits)


def test_an_honest_zip_within_the_limit_is_still_read(tmp_path):
    path = tmp_path / "fine.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(4):
            archive.writestr(f"cat/{index}.txt", b"abc")
    assert count_entries(path, 10) == 4
    assert read_zip_members(path, UploadLimits(max_files=10)) == \
        {f"cat/{index}.txt": b"abc" for index in range(4)}


# --- image sets ----------------------------------------------------------------------------

def write_set(folder, side: int, per_class: int = 2):
    """``folder/<class>/<i>.png`` + masks: a bright square on dark (a) or the reverse (b)."""
    for class_name, value in (("a", 220), ("b", 30)):
        (folder / class_name).mkdir(parents=True)
        for index in range(per_class):
            image = np.full((side, side, 3), 255 - value, np.uint8)
            mask = np.zeros((side, side), np.uint8)
            mask[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 255
            image[mask > 0] = value
            Image.fromarray(image).save(folder / class_name / f"{index}.png")
            Image.fromarray(mask).save(folder / class_name / f"{index}.mask.png")
    return folder


def test_an_image_set_is_refused_from_its_headers_when_it_holds_too_many_pixels(tmp_path):
    folder = write_set(tmp_path / "set", side=100)  # 8 files of 10,000 pixels
    with pytest.raises(LimitError, match="more than 30,000 pixels to decode"):
        load_image_folder(folder, size=32, limits=UploadLimits(max_decoded_pixels=30_000))
    image_set, problems = load_image_folder(folder, size=32,
                                            limits=UploadLimits(max_decoded_pixels=80_000))
    assert len(image_set.labels) == 4 and problems == []


def test_large_images_of_a_set_are_decoded_reduced_and_their_masks_follow(tmp_path):
    folder = write_set(tmp_path / "set", side=1024)
    reduced, problems = load_image_folder(folder, size=64)
    assert problems == []
    assert tuple(reduced.images.shape) == (4, 3, 64, 64)
    inside = reduced.masks[:, 0, 24:40, 24:40]
    outside = reduced.masks[:, 0, :8, :8]
    assert bool((inside == 1).all()) and bool((outside == 0).all())
    centre = reduced.images[0, :, 32, 32]  # class a: bright square
    assert float(centre.min()) > 0.8


def test_reading_an_image_set_ends_when_asked_to_stop(tmp_path):
    folder = write_set(tmp_path / "set", side=32)
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(ReadingStopped):
        load_image_folder(folder, size=32, should_stop=should_stop)
    assert len(asked) == 3


# --- formats -----------------------------------------------------------------------------------

@pytest.mark.parametrize("format", ["PPM", "ICO", "PCX", "TGA", "SGI"])
def test_formats_outside_the_stated_list_are_refused(format):
    raw = png_bytes(smooth_picture(16, 16), format)
    with pytest.raises(DecodeError, match=f"is a {format} file; the formats read are PNG"):
        decode_image(raw, "x.png")
    with pytest.raises(InputError, match=f"is a {format} file"):
        decode_upload(raw)
