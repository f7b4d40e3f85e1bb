"""Specification of the datasets: Fashion-MNIST (IDX), the colour synthetic set, user folders.

What must hold: every loader pairs each image with its own mask and label; masks are binary and
solid; results are deterministic by seed; bad folders give one message per bad file, naming it.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from isnet.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    load_fashion_mnist,
    read_idx,
    solid_mask,
)
from isnet.data.folders import load_image_folder, save_image_folder, write_png
from isnet.data.image_set import ImageMaskDataset, ImageSet
from isnet.data.synthetic import OBJECT_NAMES, synthetic_shapes


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """Write a uint8 array as an IDX file (the format Fashion-MNIST ships in)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    """Six 28 px 'products': a bright 6x6 square whose top-left is (2 + 3 * label, 4)."""
    labels = np.array([0, 3, 1, 5, 2, 4], np.uint8)
    images = np.zeros((6, 28, 28), np.uint8)
    for index, label in enumerate(labels):
        top = 2 + 3 * int(label)
        images[index, top : top + 6, 4:10] = 200
        images[index, top + 2 : top + 4, 6:8] = 0  # a hole the mask must fill
    for prefix, compress in (("train", False), ("t10k", True)):
        suffix = ".gz" if compress else ""
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return tmp_path


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_folder_pairs_images_masks_and_labels(idx_folder, split):
    data = load_fashion_mnist(idx_folder, split=split, size=40, padding=6)  # 40 px = 28 + 2 * 6
    assert data.images.shape == (6, 3, 40, 40) and data.images.dtype == torch.float32
    assert data.labels.tolist() == [0, 3, 1, 5, 2, 4]
    assert data.class_names == list(FASHION_MNIST_CLASSES)
    for index, label in enumerate(data.labels.tolist()):
        expected = torch.zeros(40, 40)
        top = 6 + 2 + 3 * label
        expected[top : top + 6, 10:16] = 1  # solid: the hole is filled
        assert torch.equal(data.masks[index, 0], expected), index
    assert torch.equal(data.images[:, 0], data.images[:, 2])


def test_missing_and_corrupt_idx_files_say_how_to_fix(tmp_path, idx_folder):
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")
    broken = idx_folder / "train-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_fashion_mnist(idx_folder, split="train")
    with pytest.raises(ValueError, match="split must be"):
        load_fashion_mnist(idx_folder, split="validation")


@pytest.mark.skipif(not FASHION_MNIST_ROOT.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_masks_cover_the_object_and_subsets_are_seeded():
    data = load_fashion_mnist(split="test", size=48, limit=40, seed=3)
    again = load_fashion_mnist(split="test", size=48, limit=40, seed=3)
    assert data.images.numpy().tobytes() == again.images.numpy().tobytes()
    assert set(data.masks.unique().tolist()) <= {0.0, 1.0}
    bright = data.images[:, 0] > 0.04
    assert not (bright & (data.masks[:, 0] == 0)).any(), "object pixels outside the mask"
    for image, mask in zip(data.images[:, 0].numpy(), data.masks[:, 0].numpy(), strict=False):
        assert np.array_equal(solid_mask(image, 0.04), mask.astype(np.uint8))
        assert 0.05 < mask.mean() < 0.8  # an object, with background left for a mark
    raw_labels = read_idx(FASHION_MNIST_ROOT / "t10k-labels-idx1-ubyte.gz")
    keep = np.sort(np.random.default_rng(3).permutation(10000)[:40])
    assert data.labels.tolist() == raw_labels[keep].tolist()


def test_synthetic_masks_are_exactly_the_object():
    data = synthetic_shapes(12, size=64, num_classes=4, seed=2)
    assert data.images.shape == (12, 3, 64, 64) and data.class_names == list(OBJECT_NAMES[:4])
    assert torch.bincount(data.labels, minlength=4).tolist() == [3, 3, 3, 3]
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    for image, mask in zip(data.images, data.masks[:, 0], strict=False):
        inside = mask > 0
        assert 0.03 < float(mask.mean()) < 0.6
        # The object is one colour times a linear lighting ramp: a plane fits it exactly
        # (where not clipped); a mask shifted onto background pixels would not fit.
        pixels = image[:, inside].T  # (P, 3)
        design = torch.stack([torch.ones_like(rows[inside]), rows[inside], cols[inside]], 1)
        unclipped = (pixels < 1.0).all(1)
        solution = torch.linalg.lstsq(design[unclipped].double(), pixels[unclipped].double())
        residual = design[unclipped].double() @ solution.solution - pixels[unclipped].double()
        assert residual.abs().max() < 1e-5


def test_synthetic_is_deterministic_by_seed():
    first, again = synthetic_shapes(5, size=48, seed=1), synthetic_shapes(5, size=48, seed=1)
    assert first.images.numpy().tobytes() == again.images.numpy().tobytes()
    assert not torch.equal(first.images, synthetic_shapes(5, size=48, seed=2).images)
    with pytest.raises(ValueError, match="num_classes"):
        synthetic_shapes(4, num_classes=9)


def test_image_mask_dataset_yields_triples_and_checks_lengths():
    data = synthetic_shapes(6, size=32, num_classes=2)
    dataset = ImageMaskDataset.from_image_set(data)
    image, mask, label = dataset[4]
    assert torch.equal(image, data.images[4]) and torch.equal(mask, data.masks[4])
    assert int(label) == int(data.labels[4])
    images, masks, labels = next(iter(DataLoader(dataset, batch_size=6)))
    assert images.shape == (6, 3, 32, 32) and masks.shape == (6, 1, 32, 32) and labels.shape == (6,)
    with pytest.raises(ValueError, match="same length"):
        ImageMaskDataset(data.images, data.masks[:3], data.labels)
    with pytest.raises(ValueError, match="labels must lie"):
        ImageSet(data.images, data.masks, data.labels + 5, data.class_names)


def _square(top: int, size: int = 32, value: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a white 8 px square at row ``top``, and its mask."""
    image = np.full((size, size, 3), 40, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    image[top : top + 8, 4:12] = value
    mask[top : top + 8, 4:12] = 255
    return image, mask


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """Two good classes, one image per problem the loader promises to report."""
    root = tmp_path / "data"
    for class_name, tops in (("cat", (2, 6)), ("dog", (12, 16))):
        for top in tops:
            image, mask = _square(top)
            write_png(root / class_name / f"{class_name}_{top}.png", image)
            write_png(root / class_name / f"{class_name}_{top}.mask.png", mask)
    write_png(root / "cat" / "lonely.png", _square(3)[0])  # no mask
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    write_png(root / "dog" / "broken.mask.png", _square(3)[1])
    write_png(root / "dog" / "small.png", _square(3, size=24)[0])
    write_png(root / "dog" / "small.mask.png", _square(3)[1])  # 32 px mask for a 24 px image
    grey_mask = _square(20)[1] // 2 + 60  # values 60 and 187: not binary
    write_png(root / "cat" / "soft.png", _square(20)[0])
    write_png(root / "cat" / "soft.mask.png", grey_mask)
    write_png(root / "cat" / "orphan.mask.png", _square(3)[1])
    (root / "README.txt").write_text("not an image")
    return root


def test_user_folder_loads_the_good_files_and_names_each_bad_one(user_folder):
    data, problems = load_image_folder(user_folder)
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1]
    text = "\n".join(problems)
    for expected in ("cat/lonely.png: no mask; add cat/lonely.mask.png",
                     "dog/broken.png: cannot be read",
                     "dog/small.mask.png: size 32x32 differs from its image 24x24",
                     "cat/soft.mask.png: not binary",
                     "cat/orphan.mask.png: mask without an image",
                     "README.txt: not an image inside a class folder"):
        assert expected in text, text
    assert len(problems) == 6
    # pairing: each loaded mask marks exactly the white square of its own image
    for image, mask in zip(data.images, data.masks[:, 0], strict=False):
        assert torch.equal(mask > 0, image[0] > 0.9)


def test_images_without_masks_can_be_kept_with_an_all_foreground_mask(user_folder):
    data, problems = load_image_folder(user_folder, require_masks=False)
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1]  # cat/lonely.png is kept
    assert not any("no mask" in problem for problem in problems)
    kept = [i for i, mask in enumerate(data.masks[:, 0]) if bool((mask > 0).all())]
    assert len(kept) == 1  # its mask is the whole image; the other masks are still read
    assert len(problems) == 5


def test_zip_of_the_folder_gives_the_same_set(user_folder, tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(user_folder.rglob("*")):
            handle.write(path, Path("data") / path.relative_to(user_folder))
    from_zip, problems = load_image_folder(archive)
    from_folder, _ = load_image_folder(user_folder)
    assert torch.equal(from_zip.images, from_folder.images)
    assert torch.equal(from_zip.masks, from_folder.masks)
    assert len(problems) == 6


def test_size_resizes_everything_and_mixed_sizes_are_reported(tmp_path):
    root = tmp_path / "mixed"
    for class_name, size in (("a", 32), ("b", 32), ("b", 48)):
        image, mask = _square(4, size=size)
        write_png(root / class_name / f"{size}.png", image)
        write_png(root / class_name / f"{size}.mask.png", mask)
    data, problems = load_image_folder(root)
    assert len(data) == 2 and any("pass size=" in line for line in problems)
    resized, problems = load_image_folder(root, size=16)
    assert resized.images.shape == (3, 3, 16, 16) and problems == []


def test_one_class_or_missing_folder_is_an_error(tmp_path):
    image, mask = _square(4)
    write_png(tmp_path / "only" / "x.png", image)
    write_png(tmp_path / "only" / "x.mask.png", mask)
    with pytest.raises(ValueError, match="need at least two"):
        load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "missing")


def test_save_then_load_round_trip_and_no_silent_overwrite(tmp_path):
    data = synthetic_shapes(4, size=32, num_classes=2, seed=3)
    save_image_folder(data, tmp_path / "out")
    loaded, problems = load_image_folder(tmp_path / "out")
    assert problems == [] and sorted(loaded.labels.tolist()) == sorted(data.labels.tolist())
    assert (loaded.images.sum() - data.images.sum()).abs() < 4 * 32 * 32 * 3 / 255
    with pytest.raises(ValueError, match="exists"):
        save_image_folder(data, tmp_path / "out")


@pytest.mark.skipif(not FASHION_MNIST_ROOT.is_dir(), reason="dataset-fashion-mnist not installed")
def test_committed_assets_are_exactly_what_make_assets_writes(tmp_path):
    from scripts.make_assets import write_assets

    written = write_assets(tmp_path)
    committed = Path(__file__).resolve().parents[1] / "assets"
    assert sorted(p.name for p in (committed / "images").glob("*.png")) == \
        sorted(p.name for p in written)
    for path in written:
        for folder in ("images", "masks"):
            fresh = (tmp_path / folder / path.name).read_bytes()
            assert fresh == (committed / folder / path.name).read_bytes(), (folder, path.name)
    readme = (committed / "README.md").read_text()
    assert all(f"`{path.name}`" in readme for path in written), "every asset needs a README line"
    with pytest.raises(ValueError, match="--force"):
        write_assets(tmp_path)
