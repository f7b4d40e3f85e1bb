"""``python -m isnet.train --data``: every family trains on files; resume, DDP and --init.

Runs are tiny (16–24 px images, tiny networks, float64 through Lightning's ``64-true``), in the
test process except the two-process DDP run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import isnet
from isnet.data.folders import save_image_folder
from isnet.train import main
from tests.test_streaming_data import tiny_set

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path) -> Path:
    """24 training images of 3 classes with masks, class-folder layout."""
    save_image_folder(tiny_set(count=24, size=16), tmp_path / "data")
    return tmp_path / "data"


def run(folder: Path, out: Path, *options: str) -> dict:
    status = main(["--data", str(folder), "--out", str(out), "--size", "16", "--batch-size", "4",
                   "--workers", "0", "--device", "cpu", "--precision", "64-true",
                   "--val-ratio", "0.25", "--test-ratio", "0", *options])
    assert status == 0
    return isnet.load_checkpoint(out)


@pytest.mark.parametrize("model", ["tiny_densenet", "tiny_resnet", "tiny_vgg"])
def test_every_family_trains_a_few_float64_steps_on_files(folder, tmp_path, model):
    fresh = isnet.create_model(model, num_classes=3)
    loaded, metadata = run(folder, tmp_path / "m.safetensors", "--model", model,
                           "--method", "selective", "--max-steps", "2", "--epochs", "1")
    assert metadata["metrics"]["steps"] == 2
    assert metadata["class_names"] == ["class0", "class1", "class2"]
    data = metadata["data"]
    assert data["splits"]["train"]["layout"] == "class-folders"
    assert data["splits"]["train"]["count"] == 18 and data["splits"]["val"]["count"] == 6
    assert data["transforms"]["size"] == 16 and metadata["normalisation"]["mean"] is None
    assert "val" in metadata["metrics"] and metadata["provenance"]["precision"] == "64-true"
    assert all(torch.isfinite(p).all() for p in loaded.parameters())
    changed = [name for name, p in loaded.state_dict().items()
               if p.is_floating_point() and p.shape == fresh.state_dict()[name].shape
               and not torch.equal(p, fresh.state_dict()[name].to(p.dtype))]
    assert changed  # it trained
    assert (tmp_path / "m.run" / "logs" / "attempt-1" / "metrics.csv").is_file()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_resume_continues_with_the_optimiser_state(folder, tmp_path, workers):
    common = ("--model", "tiny_densenet", "--method", "selective", "--lr", "0.05",
              "--workers", workers)  # with workers: the resumed epoch's order and augmentation
    straight, _ = run(folder, tmp_path / "straight.safetensors", *common, "--epochs", "2")
    run(folder, tmp_path / "part.safetensors", *common, "--epochs", "1")
    resumed, metadata = run(folder, tmp_path / "resumed.safetensors", *common, "--epochs", "2",
                            "--resume", "--run-dir", str(tmp_path / "part.run"))
    assert [h["epoch"] for h in metadata["metrics"]["history"]] == [1, 2]
    assert metadata["metrics"]["steps"] == 10  # 2 epochs × ceil(18 / 4)
    for name, value in straight.state_dict().items():  # momentum restored: the same weights
        assert torch.allclose(resumed.state_dict()[name], value, rtol=1e-10, atol=1e-12), name
    assert (tmp_path / "part.run" / "logs" / "attempt-2").is_dir()  # attempt 1 kept


def test_resume_without_a_run_says_what_to_do(folder, tmp_path):
    with pytest.raises(ValueError, match="no last.ckpt"):
        run(folder, tmp_path / "x.safetensors", "--model", "tiny_densenet", "--resume")


def test_init_from_torchvision_weights_takes_imagenet_normalisation(folder, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    loaded, metadata = run(folder, tmp_path / "r.safetensors", "--init", str(weights),
                           "--method", "selective", "--max-steps", "1", "--epochs", "1")
    assert metadata["model_name"] == "resnet18" and metadata["class_names"][0] == "class0"
    assert loaded.num_classes == 3  # a new head for the folder's classes
    mean = metadata["normalisation"]["mean"]
    assert mean == pytest.approx([0.485, 0.456, 0.406])
    assert metadata["bounds"][0][0] == pytest.approx(-0.485 / 0.229)
    assert metadata["config"]["normalisation"][0] == pytest.approx(mean)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_splits_the_files(folder, tmp_path):
    out = tmp_path / "ddp.safetensors"
    command = [sys.executable, "-m", "isnet.train", "--data", str(folder), "--out", str(out),
               "--model", "tiny_densenet", "--method", "selective", "--size", "16",
               "--val-ratio", "0", "--test-ratio", "0", "--epochs", "1", "--batch-size", "4",
               "--workers", "1", "--device", "cpu", "--devices", "2", "--strategy", "ddp",
               "--threads", "1", "--flip", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _, metadata = isnet.load_checkpoint(out)
    shares = metadata["provenance"]["rank_shares"]
    assert metadata["provenance"]["world_size"] == 2 and len(shares) == 2
    assert [share["images"] for share in shares] == [12, 12]  # each rank its own half
    assert sum(share["index_sum"] for share in shares) == sum(range(24))  # together: all files
    assert metadata["metrics"]["steps"] == 3


def test_the_run_device_follows_device_or_accelerator(monkeypatch):
    from isnet.training.files_run import run_device

    assert run_device("auto", "cpu").type == "cpu" and run_device("cpu", None).type == "cpu"
    with pytest.raises(ValueError, match="disagree"):
        run_device("cpu", "gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        run_device("auto", "gpu")
