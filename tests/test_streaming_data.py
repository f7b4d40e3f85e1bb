"""Datasets streamed from disk: the three layouts, joint transforms, named problems, splits.

Every set is written to disk inside the test (tiny PNGs); the in-memory loader
(:func:`isnet.data.folders.load_image_folder`) is the oracle for what the streamed path must give.
"""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch

from isnet.data.dataset_splits import open_evaluation, open_splits
from isnet.data.folders import load_image_folder, save_image_folder
from isnet.data.image_set import ImageSet
from isnet.data.layouts import detect_layout, read_layout
from isnet.data.splits import split_catalogue, stratified_splits
from isnet.data.streaming import SkipLog, StreamBatch, StreamingDataset, stream_loader
from isnet.data.transforms import Preprocessing


def tiny_set(count: int = 12, size: int = 20, classes: int = 3, seed: int = 0) -> ImageSet:
    """Random pictures with a random rectangle as object mask."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, size, size, generator=generator)
    masks = torch.zeros(count, 1, size, size)
    for i in range(count):
        top, left = (int(v) for v in torch.randint(0, size // 2, (2,), generator=generator))
        masks[i, 0, top:top + size // 2, left:left + size // 3] = 1
    labels = torch.arange(count) % classes
    return ImageSet(images, masks, labels, [f"class{c}" for c in range(classes)])


def write_mask_tree(image_set: ImageSet, root) -> None:
    """The same images as images/<class>/x.png + masks/<class>/x.png."""
    for i in range(len(image_set)):
        name = image_set.class_names[int(image_set.labels[i])]
        pixels = (image_set.images[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        for kind, array in (("images", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)),
                            ("masks", (image_set.masks[i, 0].numpy() * 255).astype(np.uint8))):
            path = root / kind / name / f"{name}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), array)


def write_manifest(root, rows, header=("image", "mask", "label", "split")) -> None:
    with open(root / "manifest.csv", "w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(header)
        table.writerows(rows)


def streamed(dataset: StreamingDataset, workers: int, batch_size: int = 5) -> StreamBatch:
    """Every batch of ``dataset`` joined into one."""
    batches = list(stream_loader(dataset, batch_size, workers))
    return StreamBatch(*(torch.cat([getattr(b, f) for b in batches])
                         for f in ("images", "masks", "labels", "indices", "has_mask")),
                       skipped=tuple(s for b in batches for s in b.skipped))


def by_name(image_set: ImageSet, root) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
    """The oracle: load_image_folder's tensors keyed by class and position (its file order)."""
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")
                   if not p.name.endswith(".mask.png"))
    order = sorted(names, key=lambda n: (n.split("/")[0], names.index(n)))
    return {name: (image_set.images[i], image_set.masks[i], int(image_set.labels[i]))
            for i, name in enumerate(order)}


@pytest.mark.parametrize("workers", [0, 2])
def test_class_folders_stream_the_same_tensors_as_the_in_memory_path(tmp_path, workers):
    save_image_folder(tiny_set(), tmp_path)
    oracle_set, problems = load_image_folder(tmp_path, size=16)
    assert problems == []
    oracle = by_name(oracle_set, tmp_path)
    dataset, listed = open_evaluation(tmp_path, Preprocessing(size=16))
    assert listed == [] and detect_layout(tmp_path) == "class-folders"
    batch = streamed(dataset, workers)
    assert batch.skipped == () and bool(batch.has_mask.all())
    for row, index in enumerate(batch.indices.tolist()):
        image, mask, label = oracle[str(dataset.catalogue.images[index])]
        assert torch.equal(batch.images[row], image)  # same decode, same INTER_AREA resize
        assert torch.equal(batch.masks[row], mask)
        assert int(batch.labels[row]) == label


@pytest.mark.parametrize("workers", [0, 2])
def test_mask_tree_and_manifest_give_the_class_folder_tensors(tmp_path, workers):
    image_set = tiny_set()
    save_image_folder(image_set, tmp_path / "folders")
    write_mask_tree(image_set, tmp_path / "tree")
    rows = [(f"tree/images/{c}/{c}_{i}.png", f"tree/masks/{c}/{c}_{i}.png", c, "")
            for i, c in ((i, image_set.class_names[int(image_set.labels[i])])
                         for i in range(len(image_set)))]
    write_manifest(tmp_path, rows)
    results = {}
    for source in ("folders", "tree", "manifest.csv"):
        dataset, problems = open_evaluation(tmp_path / source, Preprocessing(size=20))
        assert problems == [], source
        batch = streamed(dataset, workers)
        order = np.argsort([int(str(dataset.catalogue.images[i]).rsplit("_", 1)[1][:-4])
                            for i in batch.indices.tolist()])
        results[source] = (batch.images[order], batch.masks[order], batch.labels[order])
    assert detect_layout(tmp_path / "tree") == "mask-tree"
    assert detect_layout(tmp_path / "manifest.csv") == "manifest"
    for source in ("tree", "manifest.csv"):
        for ours, theirs in zip(results[source], results["folders"], strict=True):
            assert torch.equal(ours, theirs), source
    expected = (image_set.images * 255).round() / 255
    assert torch.allclose(results["folders"][0], expected, atol=1e-6)


def test_training_crop_and_flip_keep_the_mask_on_the_object():
    size = 48
    image = np.zeros((size, size, 3), np.float32)
    image[..., 2] = 1.0  # blue background
    mask = np.zeros((size, size), bool)
    mask[8:30, 20:44] = True  # an off-centre object, so flips and crops move it
    image[mask] = (1.0, 0.0, 0.0)  # red object
    transform = Preprocessing(size=32, crop_scale=(0.3, 0.6), flip=0.5, jitter=0.0).training()
    flips = set()
    for seed in range(20):
        torch.manual_seed(seed)
        picture, region = transform(image, mask)
        assert region.shape == (1, 32, 32) and set(region.unique().tolist()) <= {0.0, 1.0}
        red = (picture[0] > 0.9) & (picture[2] < 0.1)  # clearly object pixels
        blue = (picture[2] > 0.9) & (picture[0] < 0.1)  # clearly background
        assert bool((region[0][red] == 1).all()) and bool((region[0][blue] == 0).all())
        flips.add(bool(region[0, :, :8].sum() > region[0, :, -8:].sum()))
    assert flips == {True, False}  # both orientations were drawn


def test_training_augmentation_does_not_depend_on_the_workers(tmp_path):
    save_image_folder(tiny_set(), tmp_path)
    catalogue = read_layout(tmp_path)
    dataset = StreamingDataset(catalogue, Preprocessing(size=16).training(), seed=3)
    dataset.set_epoch(1)
    one, two = streamed(dataset, 0), streamed(dataset, 2)
    assert torch.equal(one.images, two.images) and torch.equal(one.masks, two.masks)
    dataset.set_epoch(2)
    assert not torch.equal(streamed(dataset, 0).images, one.images)  # a new draw per epoch


def test_manifest_problems_name_the_row_and_good_rows_load(tmp_path):
    image_set = tiny_set(count=6)
    save_image_folder(image_set, tmp_path / "f")
    good = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "f").rglob("*.png")
                  if not p.name.endswith(".mask.png"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    cv2.imwrite(str(tmp_path / "small.mask.png"), np.zeros((5, 5), np.uint8))
    rows = [(name, name[:-4] + ".mask.png", name.split("/")[1], "") for name in good]
    rows += [("f/missing.png", "", "class0", ""),              # row 8: missing file
             (good[0], good[0][:-4] + ".mask.png", "zebra", ""),  # row 9: unknown label
             (good[1], "small.mask.png", "class1", ""),           # row 10: mask size differs
             ("broken.png", "", "class2", "")]                    # row 11: unreadable image
    write_manifest(tmp_path, rows)
    dataset, problems = open_evaluation(tmp_path / "manifest.csv", Preprocessing(size=20),
                                        class_names=["class0", "class1", "class2"])
    assert any("manifest.csv row 8" in p and "not found" in p for p in problems)
    assert any("manifest.csv row 9" in p and "'zebra'" in p for p in problems)
    batch = streamed(dataset, 0)
    reasons = {item.name: item.reason for item in batch.skipped}
    assert any("row 10" in name and "mask is 5x5" in why for name, why in reasons.items())
    assert any("row 11" in name and "cannot be read" in why for name, why in reasons.items())
    assert len(batch.labels) == len(good)  # every good row, and only those
    log = SkipLog()
    log.add(batch.skipped)
    assert log.add(batch.skipped) == [] and len(log) == 2  # each file reported once
    assert log.summary().startswith("2 image(s) skipped")


def test_grey_16_bit_and_rgba_images_decode_in_the_stream(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    (tmp_path / "b").mkdir()
    grey16 = np.full((8, 8), 65535 // 2, np.uint16)
    cv2.imwrite(str(folder / "x.png"), grey16)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 128  # red (BGR order) at half alpha
    cv2.imwrite(str(tmp_path / "b" / "y.png"), rgba)
    dataset, _ = open_evaluation(tmp_path, Preprocessing(size=8))
    batch = streamed(dataset, 0)
    assert not bool(batch.has_mask.any()) and bool((batch.masks == 1).all())  # masks optional
    grey, red = batch.images[0], batch.images[1]
    assert torch.allclose(grey, torch.full_like(grey, (65535 // 2) / 65535))
    assert torch.equal(red[0], torch.ones(8, 8)) and float(red[1:].abs().max()) == 0.0


def test_stratified_split_is_seeded_and_keeps_class_shares(tmp_path):
    labels = np.repeat(np.arange(3), 40)
    first = stratified_splits(labels, 0.1, 0.2, seed=4)
    assert np.array_equal(first, stratified_splits(labels, 0.1, 0.2, seed=4))
    assert not np.array_equal(first, stratified_splits(labels, 0.1, 0.2, seed=5))
    for label in range(3):
        names, counts = np.unique(first[labels == label], return_counts=True)
        assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == {
            "test": 8, "train": 28, "val": 4}


def test_the_manifest_split_column_decides_and_training_needs_masks(tmp_path):
    save_image_folder(tiny_set(count=9), tmp_path / "f")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "f").rglob("*.png")
                   if not p.name.endswith(".mask.png"))
    splits = ["train"] * 5 + ["val", "val", "test", "train"]
    rows = [(n, n[:-4] + ".mask.png" if i != 8 else "", n.split("/")[1], s)
            for i, (n, s) in enumerate(zip(names, splits, strict=True))]
    write_manifest(tmp_path, rows)
    catalogue = read_layout(tmp_path / "manifest.csv")
    parts = split_catalogue(catalogue, 0.5, 0.3, seed=0)  # ratios unused: the column decides
    assert [len(parts[s]) for s in ("train", "val", "test")] == [6, 2, 1]
    opened = open_splits(tmp_path / "manifest.csv", Preprocessing(size=20))
    assert len(opened.train) == 5  # the unmasked training row is left out, by name
    assert any("row 10" in p and "no mask" in p for p in opened.problems)
    description = opened.describe()
    assert description["splits"]["train"]["count"] == 5
    assert len(description["splits"]["val"]["file_list_sha256"]) == 64


def test_unusable_inputs_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        read_layout(tmp_path / "nothing")
    (tmp_path / "bad.csv").write_text("path,class\nx.png,a\n")
    with pytest.raises(ValueError, match="missing image, label"):
        read_layout(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="no usable image"):
        read_layout(tmp_path, "class-folders")  # only bad.csv: not an image in a class folder
    with pytest.raises(ValueError, match="unknown layout"):
        read_layout(tmp_path, "zip")


def test_class_folders_pair_masks_whatever_the_suffix_case(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    picture = np.zeros((8, 8, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a" / "x.JPG"), picture)
    cv2.imwrite(str(tmp_path / "a" / "x.mask.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "b" / "y.png"), picture)
    (tmp_path / "b" / "y.mask.PNG").write_bytes((tmp_path / "a" / "x.mask.png").read_bytes())
    cv2.imwrite(str(tmp_path / "b" / "z.mask.png"), np.zeros((8, 8), np.uint8))
    catalogue = read_layout(tmp_path)
    assert dict(zip(catalogue.images.tolist(), catalogue.masks.tolist(), strict=True)) == {
        "a/x.JPG": "a/x.mask.png", "b/y.png": "b/y.mask.PNG"}
    assert catalogue.problems == ["b/z.mask.png: mask without an image next to it - left out"]
