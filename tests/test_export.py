"""Specification of exports (isnet.io.export): round trips, strict JSON, offline HTML."""

import hashlib
import json

import numpy as np
import pytest
import torch

from isnet.io.export import file_sha256, html_report, plain, write_json, write_npy, write_report


def test_json_holds_the_numbers_and_settings_as_plain_values(tmp_path):
    record = {"share": torch.tensor(0.25), "accuracy": np.float32(0.5), "missing": float("nan"),
              "bounds": (0.0, 1.0), "classes": torch.tensor([1, 2]), "file": tmp_path}
    path = write_json(tmp_path / "view.json", record)
    loaded = json.loads(path.read_text())
    assert loaded == {"share": 0.25, "accuracy": 0.5, "missing": None, "bounds": [0.0, 1.0],
                      "classes": [1, 2], "file": str(tmp_path)}
    with pytest.raises(FileExistsError):
        write_json(path, {"other": 1})  # never overwritten silently
    assert json.loads(path.read_text()) == loaded


def test_npy_round_trips_the_heatmap_exactly(tmp_path, generator):
    heatmap = torch.randn(2, 1, 3, 8, 8, generator=generator, dtype=torch.float64)
    path = write_npy(tmp_path / "heat.npy", heatmap)
    back = np.load(path, allow_pickle=False)
    assert back.dtype == np.float64 and np.array_equal(back, heatmap.numpy())


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc" * 1000)
    assert file_sha256(path) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_html_report_is_self_contained(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    text = html_report("Session <1>", [{"title": "Explain", "text": "a & b",
                                        "images": [("heat", image)], "numbers": {"share": 0.5}}])
    assert "data:image/png;base64," in text and "Session &lt;1&gt;" in text
    assert "http" not in text and "<script" not in text
    assert plain({"x": [np.int64(3)]}) == {"x": [3]}
    path = write_report(tmp_path / "report.html", "r", [{"title": "t"}])
    assert path.read_text().startswith("<!doctype html>")
