"""Issue 30 defect 6, the engine side: class folders match a model's class names forgivingly
(case, ``/`` ↔ ``-`` ``_`` and spaces, an optional ``classes.csv``), and the match says which
folder became which class and which did not."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import isnet
from isnet.data.layouts import read_layout
from isnet.data.layouts.class_matching import (
    in_model_classes,
    match_classes,
    read_mapping,
    spelling_key,
)

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def test_spellings_that_differ_only_in_case_and_separators_match():
    assert spelling_key("T-shirt/top") == spelling_key("t_shirt top") == "t shirt top"
    match = match_classes(["t-shirt_top", "ANKLE BOOT", "ankle-boot2", "Bag"], FASHION)
    assert match.matched == {"t-shirt_top": "T-shirt/top", "ANKLE BOOT": "Ankle boot",
                             "Bag": "Bag"}
    assert match.unmatched == ("ankle-boot2",) and not match.complete and match.any
    assert "Dress" in match.missing and "Bag" not in match.missing
    text = " ".join(match.lines())
    assert "3 of 4 folder(s)" in text and "t-shirt_top → T-shirt/top" in text
    assert "ankle-boot2" in text and "classes.csv" in text


def test_a_mapping_names_a_folders_class_outright_and_a_wrong_one_is_refused(tmp_path):
    (tmp_path / "classes.csv").write_text("folder,class\ntops,T-shirt/top\nboots,ankle boot\n")
    mapping = read_mapping(tmp_path)
    match = match_classes(["tops", "boots", "Coat"], FASHION, mapping)
    assert match.matched == {"tops": "T-shirt/top", "boots": "Ankle boot", "Coat": "Coat"}
    assert match.complete and match.mapped == ("tops", "boots")
    with pytest.raises(ValueError, match="not one of the model's classes"):
        match_classes(["tops"], FASHION, {"tops": "Hat"})
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as archive:  # inside a zip's top folder
        archive.writestr("set/classes.csv", "tops,Coat\n")
    assert read_mapping(tmp_path / "set.zip") == {"tops": "Coat"}
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "classes.csv").write_text("tops\n")
    with pytest.raises(ValueError, match="row 1: expected folder,class"):
        read_mapping(tmp_path / "bad")


def test_a_set_is_relabelled_into_the_models_classes_and_unmatched_folders_dropped():
    images = torch.zeros(4, 3, 8, 8)
    image_set = isnet.ImageSet(images, torch.ones(4, 1, 8, 8), torch.tensor([0, 1, 2, 1]),
                               ["bag", "odd", "t_shirt-top"])
    match = match_classes(image_set.class_names, FASHION)
    relabelled = in_model_classes(image_set, match)
    assert relabelled.class_names == FASHION
    assert relabelled.labels.tolist() == [8, 0]  # bag → Bag, t_shirt-top → T-shirt/top


def test_the_class_folder_layout_reads_misspelt_folders_as_the_models_classes(tmp_path):
    for folder in ("t-shirt_top", "ANKLE BOOT", "hats"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / folder / "a.png")
    (tmp_path / "classes.csv").write_text("folder,class\n")  # not reported as a stray file
    catalogue = read_layout(tmp_path, class_names=FASHION)
    assert catalogue.class_names == FASHION
    assert sorted(catalogue.labels.tolist()) == [0, 9]
    assert any("hats/a.png" in line for line in catalogue.problems)
    assert not any("classes.csv" in line for line in catalogue.problems)


def test_classes_that_read_the_same_match_only_their_exact_folder():
    names = ["Cardigan", "cardigan", "crane", "crane", "Bag"]  # as ImageNet's list has them
    match = match_classes(["cardigan", "CARDIGAN", "crane", "bag"], names)
    assert match.matched == {"cardigan": "cardigan", "crane": "crane", "bag": "Bag"}
    assert match.unmatched == ("CARDIGAN",)
