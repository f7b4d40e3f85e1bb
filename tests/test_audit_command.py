"""``python -m isnet.audit`` and the streamed audit: the same numbers as the in-memory audit."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import isnet
from isnet.analysis.audit import audit_images
from isnet.analysis.audit_summary import class_strategies, class_summaries
from isnet.analysis.stream_audit import audit_stream
from isnet.audit import main
from isnet.data.dataset_splits import open_evaluation
from isnet.data.folders import load_image_folder, save_image_folder
from isnet.data.transforms import Preprocessing
from tests.test_streaming_data import tiny_set


def read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return isnet.create_model("tiny_densenet", num_classes=3).double().eval()


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_audit_equals_the_in_memory_audit(tmp_path, model, workers):
    save_image_folder(tiny_set(count=14, size=16), tmp_path)
    memory, _ = load_image_folder(tmp_path)
    expected = audit_images(model, memory.images.double(), memory.masks.double(), memory.labels,
                            batch_size=4)
    dataset, _ = open_evaluation(tmp_path, Preprocessing(size=16))
    streamed = audit_stream(model, dataset, batch_size=4, workers=workers, keep_top=3)
    # the in-memory set is ordered by class, then file; map the streamed entries onto it
    names = [str(n) for n in dataset.catalogue.images[streamed.indices]]
    order = sorted(range(len(names)), key=lambda i: (names[i].split("/")[0], names[i]))
    assert np.allclose(streamed.background_share[order], expected.background_share.numpy(),
                       atol=1e-6)
    assert np.array_equal(streamed.predictions[order], expected.predictions.numpy())
    assert np.array_equal(streamed.labels[order], memory.labels.numpy())
    assert streamed.maps.shape == (14, 16, 16) and streamed.maps.dtype == np.float16
    top = sorted(streamed.background_share, reverse=True)[:3]
    assert [entry.share for entry in streamed.top] == pytest.approx(top)  # the heap kept the top
    assert streamed.top[0].picture.shape == (16, 16, 3)


def test_summaries_count_by_hand():
    from isnet.analysis.stream_audit import StreamAudit

    audit = StreamAudit(indices=np.arange(6), labels=np.array([0, 0, 0, 1, 1, 1]),
                        predictions=np.array([0, 1, 0, 1, 1, 1]),
                        confidence=np.ones(6, np.float32),
                        background_share=np.array([0.2, 0.8, np.nan, 0.6, 0.4, 0.9], np.float32),
                        maps=np.zeros((6, 4, 4), np.float16), top=[], skipped={})
    rows = class_summaries(audit, ["a", "b"], threshold=0.5)
    assert rows[0] == {"class": "a", "images": 3, "accuracy": pytest.approx(2 / 3),
                       "mean_share": pytest.approx(0.5), "median_share": pytest.approx(0.5),
                       "reliant": 1}
    assert rows[1]["reliant"] == 2 and rows[1]["accuracy"] == 1.0
    strategies = class_strategies(audit, ["a", "b"], limit=3)
    assert [s["class"] for s in strategies] == ["b"]  # a has 2 predictions: too few to cluster
    assert strategies[0]["clustered"] == 3 and strategies[0]["predicted"] == 4


def test_the_command_writes_every_file_and_refuses_to_overwrite(tmp_path, model):
    save_image_folder(tiny_set(count=12, size=16), tmp_path / "data")
    checkpoint = isnet.save_checkpoint(tmp_path / "m.safetensors", model.float(),
                                       class_names=["class0", "class1", "class2"],
                                       input_size=16)
    arguments = ["--data", str(tmp_path / "data"), "--checkpoint", str(checkpoint), "--out",
                 str(tmp_path / "audit"), "--device", "cpu", "--workers", "0"]
    assert main(arguments) == 0
    rows = read_rows(tmp_path / "audit" / "m" / "per_image.csv")
    assert len(rows) == 12 and {"file", "background_share", "prediction"} <= set(rows[0])
    summary = json.loads((tmp_path / "audit" / "summary.json").read_text())
    record = summary["checkpoints"][0]
    assert record["overall"]["images"] == 12 and summary["device"] == "CPU"
    assert record["preprocessing"]["resize"] == "squeeze" and record["preprocessing"]["size"] == 16
    shares = np.array([float(row["background_share"]) for row in rows])
    assert record["overall"]["mean_share"] == pytest.approx(shares.mean(), abs=1e-5)
    html = (tmp_path / "audit" / "report.html").read_text()
    assert "most background-reliant" in html and "data:image/png;base64" in html
    with pytest.raises(SystemExit, match="--overwrite"):
        main(arguments)
    assert main([*arguments, "--overwrite", "--limit", "5"]) == 0
    assert len(read_rows(tmp_path / "audit" / "m" / "per_image.csv")) == 5
