"""Reliability: every untrusted input bounded before the work, clean refusals, no leftovers.

Each test builds a small hostile input itself: zips whose headers lie, zip bombs, PNG headers
claiming huge sizes, checkpoints whose metadata declares a huge model or nests deeply, non-finite
training settings, and partial files of killed saves.
"""

from __future__ import annotations

import copy
import io
import json
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from isnet.data.decode import orient
from isnet.data.folders import load_image_folder
from isnet.data.image_set import ImageSet
from isnet.io.checkpoints import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from isnet.io.leftovers import sweep_partial_files, sweep_stale_folders
from isnet.io.limits import (
    CheckpointLimits,
    LimitError,
    UploadLimits,
    check_image_header,
    check_json_depth,
    read_zip_members,
)
from isnet.models.densenet import tiny_densenet
from isnet.training.config import TrainConfig
from isnet.training.loop import fit, non_finite_tensors

SEED = 0xDEADBEEF


# --- small generated inputs ------------------------------------------------------------------

def png_bytes(array: np.ndarray, **save_options) -> bytes:
    """An RGB or grey uint8 array as PNG bytes (PIL; options such as ``exif=``)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save_options)
    return buffer.getvalue()


def forged_png(width: int, height: int) -> bytes:
    """A PNG of ~70 bytes whose IHDR claims ``width × height`` RGB pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def image_pair(value: int) -> tuple[bytes, bytes]:
    """A 16×16 image of one grey level and its mask (a central square)."""
    image = np.full((16, 16, 3), value, np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    return png_bytes(image), png_bytes(mask)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def two_classes() -> dict[str, bytes]:
    members = {}
    for class_name, value in (("cat", 60), ("dog", 200)):
        image, mask = image_pair(value)
        members[f"{class_name}/a.png"] = image
        members[f"{class_name}/a.mask.png"] = mask
    return members


def set_declared_size(path: Path, member: str, size: int) -> None:
    """Rewrite a member's uncompressed size in its local and central headers (a lying header)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data[info.header_offset + 22: info.header_offset + 26] = struct.pack("<I", size)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_length = struct.unpack("<H", data[central + 28:central + 30])[0]
        if data[central + 46:central + 46 + name_length].decode() == member:
            data[central + 24:central + 28] = struct.pack("<I", size)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


# --- zip uploads -----------------------------------------------------------------------------

@pytest.mark.parametrize("declared", [1000, 9000])
def test_zip_member_whose_header_lies_about_its_size_is_refused(tmp_path, declared):
    members = two_classes()
    members["cat/b.png"] = b"\x89PNG" + bytes(range(256)) * 16  # 4,100 bytes really
    path = write_zip(tmp_path / "upload.zip", members)
    set_declared_size(path, "cat/b.png", declared)  # fewer, then more bytes than it holds
    with pytest.raises(ValueError, match="cat/b.png") as caught:
        load_image_folder(path)
    assert "header" in str(caught.value) and "declare" in str(caught.value)
    assert str(tmp_path) not in str(caught.value) and "upload.zip" in str(caught.value)


def test_zip_bomb_is_refused_by_ratio_and_by_size_before_reading(tmp_path):
    members = two_classes()
    members["cat/bomb.png"] = bytes(3 << 20)  # 3 MB of zeros: deflates about 1000-fold
    path = write_zip(tmp_path / "bomb.zip", members)
    with pytest.raises(LimitError, match=r"cat/bomb.png expands .*the limit is 100-fold"):
        load_image_folder(path)
    with pytest.raises(LimitError, match=r"cat/bomb.png is 3 MB uncompressed; the limit per file "
                                         r"is 1 MB"):
        load_image_folder(path, limits=UploadLimits(max_file_bytes=1 << 20, max_ratio=1e9))
    with pytest.raises(LimitError, match="more than 2 MB uncompressed"):
        load_image_folder(path, limits=UploadLimits(max_total_bytes=2 << 20, max_ratio=1e9))
    image_set, _ = load_image_folder(path, limits=UploadLimits(max_ratio=1e9))  # bounds hold
    assert len(image_set) == 2


def test_too_many_members_are_refused_from_the_end_record(tmp_path):
    members = {f"cat/{i}.txt": b"x" for i in range(30)} | two_classes()
    path = write_zip(tmp_path / "many.zip", members)
    with pytest.raises(LimitError, match=r"many.zip holds 34 entries; the limit is 10"):
        read_zip_members(path, UploadLimits(max_files=10))
    assert len(read_zip_members(path, UploadLimits(max_files=34))) == 34


def test_absolute_and_climbing_member_names_are_ignored_with_a_problem(tmp_path):
    members = two_classes()
    members["/y.png"], members["../up/z.png"] = image_pair(10)
    image_set, problems = load_image_folder(write_zip(tmp_path / "names.zip", members))
    assert image_set.class_names == ["cat", "dog"]
    assert any(line.startswith("/y.png: an absolute or climbing path") for line in problems)
    assert any(line.startswith("../up/z.png: an absolute or climbing path") for line in problems)


def test_a_folder_is_bounded_like_a_zip(tmp_path):
    for name, data in two_classes().items():
        (tmp_path / "set" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / name).write_bytes(data)
    with pytest.raises(LimitError, match="the limit per file"):
        load_image_folder(tmp_path / "set", limits=UploadLimits(max_file_bytes=50))
    with pytest.raises(LimitError, match="more than 4 entries"):
        load_image_folder(tmp_path / "set", limits=UploadLimits(max_files=4))
    with pytest.raises(LimitError, match="pixels in all"):
        load_image_folder(tmp_path / "set", limits=UploadLimits(max_total_pixels=300))


# --- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("width, height", [(30_000, 30_000), (7_000, 7_000)])
def test_png_header_claiming_huge_dimensions_is_refused_without_decoding(width, height):
    data = forged_png(width, height)
    assert len(data) < 100
    with pytest.raises(LimitError, match=r"huge.png is too large: .*the limit is 40,000,000 "
                                         r"pixels \(40 megapixels\)"):
        check_image_header(data, name="huge.png")
    if width * height < 100_000_000:  # PIL itself refuses beyond about 179 million
        header = check_image_header(data, max_pixels=width * height)
        assert (header.width, header.height, header.format) == (width, height, "PNG")


def test_too_large_image_inside_an_upload_is_skipped_with_a_reason(tmp_path):
    members = two_classes()
    members["cat/huge.png"] = forged_png(7_000, 7_000)
    members["cat/huge.mask.png"] = image_pair(0)[1]
    image_set, problems = load_image_folder(write_zip(tmp_path / "set.zip", members))
    assert len(image_set) == 2
    assert any(line.startswith("cat/huge.png is too large: 7000×7000") and "skipped" in line
               for line in problems)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pil(tmp_path, orientation):
    generator = np.random.default_rng(orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    members, expected = {}, {}
    for class_name in ("cat", "dog"):
        image = generator.integers(0, 256, (6, 10, 3), dtype=np.uint8)
        mask = (generator.random((6, 10)) > 0.5).astype(np.uint8) * 255
        members[f"{class_name}/a.png"] = png_bytes(image, exif=exif.tobytes())
        members[f"{class_name}/a.mask.png"] = png_bytes(mask, exif=exif.tobytes())
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(members[f"{class_name}/a.png"])))
        upright_mask = ImageOps.exif_transpose(
            Image.open(io.BytesIO(members[f"{class_name}/a.mask.png"])))
        expected[class_name] = (np.asarray(upright), np.asarray(upright_mask) > 0)
    image_set, problems = load_image_folder(write_zip(tmp_path / "exif.zip", members))
    assert problems == []
    for index, class_name in enumerate(image_set.class_names):
        pixels = np.round(image_set.images[index].permute(1, 2, 0).numpy() * 255)
        np.testing.assert_array_equal(pixels, expected[class_name][0])
        np.testing.assert_array_equal(image_set.masks[index, 0].numpy() > 0,
                                      expected[class_name][1])
    assert orient(np.zeros((2, 3)), orientation).shape == ((3, 2) if orientation > 4 else (2, 3))


def test_multi_frame_image_gets_a_notice_and_its_first_frame_is_used(tmp_path):
    frames = [Image.fromarray(np.full((16, 16, 3), value, np.uint8)) for value in (60, 250)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    members = two_classes()
    members["cat/a.png"] = buffer.getvalue()  # an animated GIF named .png
    assert check_image_header(members["cat/a.png"]).frames == 2
    image_set, problems = load_image_folder(write_zip(tmp_path / "gif.zip", members))
    assert problems == ["cat/a.png: has 2 frames (animated or multi-page); only the first is used"]
    assert abs(float(image_set.images[0].mean()) - 60 / 255) < 0.01


# --- checkpoints -----------------------------------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path) -> Path:
    torch.manual_seed(SEED)
    return save_checkpoint(tmp_path / "good.safetensors", tiny_densenet(num_classes=3),
                           model_name="tiny_densenet", class_names=["a", "b", "c"],
                           input_size=32)


def with_metadata(source: Path, target: Path, text: str) -> Path:
    """``source``'s tensors with ``text`` as the ISNet metadata."""
    target.write_bytes(safetensors_save(safetensors_load(source.read_bytes()),
                                        metadata={"isnet": text}))
    return target


def test_tiny_metadata_declaring_a_huge_model_is_refused_before_building(
        checkpoint, tmp_path, no_building):
    metadata = read_metadata(checkpoint)
    metadata["architecture"]["num_classes"] = 200_000
    metadata["class_names"] = [str(i) for i in range(3)]
    path = with_metadata(checkpoint, tmp_path / "huge.safetensors", json.dumps(metadata))
    assert path.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"huge.safetensors: the metadata declares "
                                              r"num_classes=200000 but the weights hold "
                                              r"num_classes=3"):
        load_checkpoint(path)
    print(f"refused in {1e3 * (time.perf_counter() - start):.1f} ms")  # reported, not asserted
    assert no_building == []


def test_header_shapes_not_backed_by_data_are_refused_before_building(
        checkpoint, tmp_path, no_building):
    raw = checkpoint.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    features = header["classifier.weight"]["shape"][1]
    header["classifier.weight"]["shape"] = [200_000, features]
    metadata = json.loads(header["__metadata__"]["isnet"])
    metadata["architecture"]["num_classes"] = 200_000
    header["__metadata__"]["isnet"] = json.dumps(metadata)
    forged = json.dumps(header).encode()
    path = tmp_path / "forged.safetensors"
    path.write_bytes(len(forged).to_bytes(8, "little") + forged + raw[8 + length:])
    with pytest.raises(CheckpointError, match="classifier.weight.*truncated or forged"):
        load_checkpoint(path)
    assert no_building == []


def test_metadata_too_large_and_header_too_large_are_refused(checkpoint, tmp_path):
    metadata = read_metadata(checkpoint)
    metadata["provenance"]["note"] = "x" * (1 << 20)
    path = with_metadata(checkpoint, tmp_path / "big.safetensors", json.dumps(metadata))
    for call in (load_checkpoint, read_metadata):
        with pytest.raises(CheckpointError, match=r"big.safetensors: its metadata is 1 MB; the "
                                                  r"limit is 1 MB") as caught:
            call(path)
        assert str(tmp_path) not in str(caught.value)
    with pytest.raises(CheckpointError, match="safetensors header is .*; the limit is 1 KB"):
        load_checkpoint(checkpoint, CheckpointLimits(max_header_bytes=1024))
    with pytest.raises(CheckpointError, match="the limit for a checkpoint is 1 KB"):
        load_checkpoint(checkpoint, CheckpointLimits(max_file_bytes=1024))


def test_header_longer_than_the_file_is_refused(checkpoint, tmp_path):
    raw = checkpoint.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(raw[:2000])
    with pytest.raises(CheckpointError, match="cut.safetensors: its header claims"):
        load_checkpoint(path)


def test_deeply_nested_metadata_is_refused_without_recursion_error(checkpoint, tmp_path):
    metadata = read_metadata(checkpoint)
    text = json.dumps(metadata)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = with_metadata(checkpoint, tmp_path / "deep.safetensors", text)
    for call in (load_checkpoint, read_metadata):
        with pytest.raises(CheckpointError, match=r"deep.safetensors: metadata: JSON nested "
                                                  r"100001 levels deep; the limit is 32"):
            call(path)
    check_json_depth('{"a": "[[[[{{{{ \\" [[["}', 1, "strings are not counted")
    with pytest.raises(LimitError, match="nested 3 levels"):
        check_json_depth(b'{"a": [{"b": 1}]}', 2, "x")


@pytest.mark.parametrize("key", ["architecture"])
def test_metadata_without_a_required_key_names_it(checkpoint, tmp_path, key):
    metadata = read_metadata(checkpoint)
    del metadata[key]
    path = with_metadata(checkpoint, tmp_path / "bare.safetensors", json.dumps(metadata))
    for call in (load_checkpoint, read_metadata):
        with pytest.raises(CheckpointError, match=f"bare.safetensors: the metadata has no "
                                                  f"'{key}' entry"):
            call(path)
    path = with_metadata(checkpoint, tmp_path / "list.safetensors", "[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_checkpoint(path)


def test_pickle_refusal_gives_no_unsafe_advice_and_no_path(tmp_path):
    class Opens:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"x": Opens()}, path)
    with pytest.raises(CheckpointError, match="refused") as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "weights_only" not in message and str(tmp_path) not in message
    assert message.startswith("evil.pt: refused") and "open" in message
    assert not (tmp_path / "pwned").exists()


def test_good_checkpoint_still_loads(checkpoint):
    model, metadata = load_checkpoint(checkpoint)
    assert model.num_classes == 3 and metadata["class_names"] == ["a", "b", "c"]


# --- training settings -----------------------------------------------------------------------

def tiny_config(**changes) -> TrainConfig:
    values = dict(model="tiny_densenet", num_classes=3, method="standard", epochs=1,
                  batch_size=4, input_size=32, seed=7)
    return TrainConfig(**{**values, **changes})


@pytest.mark.parametrize("field, value, message", [
    ("learning_rate", float("nan"), "learning_rate must be a finite number, got nan"),
    ("learning_rate", float("inf"), "learning_rate must be a finite number, got inf"),
    ("learning_rate", 1e30, r"learning_rate must lie in \(0, 10\], got 1e\+30"),
    ("learning_rate", 0.0, r"learning_rate must lie in \(0, 10\], got 0"),
    ("epochs", float("nan"), "epochs must be a finite number, got nan"),
    ("epochs", 2.5, "epochs must be a whole number"),
    ("epochs", 1001, r"epochs must lie in \[1, 1000\]"),
    ("batch_size", 5000, r"batch_size must lie in \[1, 4096\]"),
    ("momentum", float("-inf"), "momentum must be a finite number"),
    ("heat_weight", "0.5", "heat_weight must be a number"),
    ("foreground_range", (1.0, float("nan")), "foreground_range must be a finite number"),
    ("zb", "yes", "zb must be True or False"),
])
def test_train_config_refuses_non_finite_and_out_of_range_values(field, value, message):
    with pytest.raises(ValueError, match=f"TrainConfig.{message}"):
        tiny_config(**{field: value})


def test_train_config_keeps_what_it_is_given():
    config = tiny_config(learning_rate=0.5, epochs=3.0, batch_size=np.int64(8))
    assert config.learning_rate == 0.5
    assert config.epochs == 3 and type(config.epochs) is int
    assert config.batch_size == 8 and type(config.batch_size) is int
    assert TrainConfig.from_dict(config.to_dict()) == config


def biased_set(count: int = 8) -> ImageSet:
    generator = torch.Generator().manual_seed(SEED)
    images = torch.rand(count, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = torch.zeros(count, 1, 32, 32, dtype=torch.float64)
    masks[:, :, 8:24, 8:24] = 1
    return ImageSet(images, masks, torch.arange(count) % 3, ["a", "b", "c"])


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return tiny_densenet(num_classes=3).double()


def test_fit_with_a_learning_rate_that_blows_up_is_never_completed():
    config = tiny_config(grad_clip_norm=None, momentum=0.0, epochs=2)
    object.__setattr__(config, "learning_rate", 1e30)  # as an unchecked caller could pass it
    result = fit(tiny_model(), biased_set(), None, config)
    assert result.status in ("diverged", "failed") and not result.usable
    assert "learning rate" in result.advice or "learning_rate" in result.advice
    assert non_finite_tensors(result.model) == []


def test_fit_whose_weights_end_non_finite_reports_failed():
    model = tiny_model()
    with torch.no_grad():
        model.classifier.bias[0] = float("inf")  # NaN loss at once; no finite weights to restore
    initial = copy.deepcopy(model.state_dict())
    result = fit(model, biased_set(), None, tiny_config())
    assert result.status == "failed" and not result.usable
    assert "classifier.bias" in result.advice and "Do not use this model" in result.advice
    assert torch.equal(result.model.classifier.weight, initial["classifier.weight"])


def test_a_normal_fit_is_usable():
    result = fit(tiny_model(), biased_set(), None, tiny_config(learning_rate=0.01))
    assert result.status == "completed" and result.usable


# --- leftovers -------------------------------------------------------------------------------

def age(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    os.utime(path, (when, when))
    return path


def test_partial_tmp_files_of_killed_saves_are_swept(tmp_path):
    def file(relative: str, seconds: float) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a checkpoint")
        return age(path, seconds)

    old = file(".m.safetensors.k2j4x.tmp", 7200)  # the name write_atomically gives
    fresh = file(".n.safetensors.a8f3b.tmp", 10)  # a save in progress elsewhere
    keep = [file("m.safetensors", 7200), file("notes.tmp", 7200)]
    nested = file("sub/.x.png.q1w2e.tmp", 7200)
    assert sweep_partial_files(tmp_path, older_than_s=3600) == [old]
    assert fresh.exists() and nested.exists() and all(path.exists() for path in keep)
    assert sweep_partial_files(tmp_path, older_than_s=3600, recursive=True) == [nested]
    assert sweep_partial_files(tmp_path / "missing") == []


def test_stale_work_folders_are_swept_by_prefix_age_and_owner(tmp_path):
    def folder(name: str, seconds: float) -> Path:
        (tmp_path / name / "inner").mkdir(parents=True)
        (tmp_path / name / "inner" / "tuned-1.safetensors").write_bytes(b"x")
        return age(tmp_path / name, seconds)

    dead = folder("isnet-work-999999999-a", 7200)  # no such process id
    unnamed = folder("isnet-work-old", 7200)
    alive = folder(f"isnet-work-{os.getpid()}-b", 7200)
    fresh = folder("isnet-work-1-c", 10)
    kept = folder("isnet-work-kept", 7200)
    other = folder("other-999999999", 7200)
    (tmp_path / "isnet-work-file").write_bytes(b"not a folder")
    age(tmp_path / "isnet-work-file", 7200)
    removed = sweep_stale_folders(tmp_path, "isnet-work-", older_than_s=3600, keep=(kept,))
    assert sorted(removed) == sorted([dead, unnamed])
    assert all(path.exists() for path in (alive, fresh, kept, other))
    assert (tmp_path / "isnet-work-file").exists()
    with pytest.raises(ValueError, match="non-empty"):
        sweep_stale_folders(tmp_path, "")
