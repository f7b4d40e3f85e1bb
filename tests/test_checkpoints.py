"""Checkpoints: round trip, fp16 storage, safety against code-running pickles, atomic writes."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from isnet.io.atomic import write_atomically
from isnet.io.checkpoints import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from isnet.models.densenet import architecture_from_state_dict, tiny_densenet


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0xDEADBEEF)
    net = tiny_densenet(num_classes=3)
    net.train()
    net(torch.rand(4, 3, 32, 32))  # move the BatchNorm running statistics away from defaults
    return net.eval()


class _CreatesFile:
    """Unpickling this object calls ``open(marker, "w")``: a stand-in for arbitrary code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_round_trip_restores_weights_and_metadata(model, tmp_path):
    config = {"model": "tiny_densenet", "learning_rate": 0.01, "heat_weight": 0.7, "seed": 7}
    path = save_checkpoint(tmp_path / "m.safetensors", model, class_names=["a", "b", "c"],
                           input_size=32, seed=7, config=config, metrics={"accuracy": 0.5},
                           provenance={"command": "pytest"})
    loaded, metadata = load_checkpoint(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert metadata["config"] == config
    assert metadata["class_names"] == ["a", "b", "c"]
    assert metadata["model_name"] == "tiny_densenet"
    assert (metadata["input_size"], metadata["seed"]) == (32, 7)
    assert metadata["metrics"] == {"accuracy": 0.5}
    assert metadata["provenance"]["command"] == "pytest"
    assert "created_utc" in metadata["provenance"]
    assert read_metadata(path) == metadata
    assert list_checkpoints(tmp_path) == {"m": metadata}
    assert not loaded.training


def test_half_storage_is_smaller_and_close(model, tmp_path):
    full = save_checkpoint(tmp_path / "full.safetensors", model)
    half = save_checkpoint(tmp_path / "half.safetensors", model, half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded, metadata = load_checkpoint(half)
    assert metadata["storage_dtype"] == "float16"
    x = torch.rand(2, 3, 32, 32)
    assert loaded.classifier.weight.dtype == torch.float32
    torch.testing.assert_close(loaded(x), model(x), atol=2e-2, rtol=2e-2)


def test_existing_file_is_not_overwritten_unless_asked(model, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", model, seed=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_checkpoint(path, model, seed=2)
    assert read_metadata(path)["seed"] == 1
    save_checkpoint(path, model, seed=2, overwrite=True)
    assert read_metadata(path)["seed"] == 2


def test_interrupted_save_leaves_previous_file_intact(model, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", model, seed=1)
    before = path.read_bytes()

    def chunks_then_interrupt():
        yield b"partial bytes of a new checkpoint"
        raise KeyboardInterrupt  # e.g. Ctrl-C or a crash half-way through the write

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, chunks_then_interrupt(), overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp left
    assert load_checkpoint(path).metadata["seed"] == 1


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_running_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"state_dict": {"x": torch.zeros(1)}, "evil": _CreatesFile(str(marker))}
    path = tmp_path / "evil.ckpt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # The payload is real: an unsafe loader would have run it.
    torch.load(path, weights_only=False) if writer == "torch.save" else pickle.loads(
        path.read_bytes())
    assert marker.exists()


def test_plain_state_dict_loads_with_inferred_architecture(model, tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(model.state_dict(), path)
    loaded, metadata = load_checkpoint(path)
    assert metadata["model_name"] == "tiny_densenet"
    assert metadata["architecture"] == architecture_from_state_dict(model.state_dict())
    assert loaded.num_classes == 3
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))


def test_authors_lightning_layout_loads(model, tmp_path):
    state = {f"DenseNet.{k}": v for k, v in model.state_dict().items()}
    state = {k.replace("DenseNet.classifier.", "DenseNet.classifier.1."): v
             for k, v in state.items()}
    state["LRPBlock.LRPFinalLayers.Dense.layer.weight"] = model.classifier.weight
    path = tmp_path / "authors.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"classes": 3, "P": 0.7}}, path)
    loaded, metadata = load_checkpoint(path)
    assert metadata["architecture"]["num_classes"] == 3
    torch.testing.assert_close(loaded.classifier.weight, model.classifier.weight)


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint", b"\x00" * 64])
def test_non_checkpoints_raise_clear_errors(tmp_path, content):
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.bin"):
        load_checkpoint(path)


def test_missing_file_and_foreign_safetensors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="without ISNet metadata"):
        load_checkpoint(tmp_path / "other.safetensors")
    assert list_checkpoints(tmp_path) == {}


def test_bad_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="class_names"):
        save_checkpoint(tmp_path / "m.safetensors", model, class_names=["only one"])
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "m.safetensors", model, metrics={"x": object()})
    with pytest.raises(ValueError, match="backbone"):
        save_checkpoint(tmp_path / "m.safetensors", torch.nn.Linear(2, 2))
    assert not Path(tmp_path / "m.safetensors").exists()
