"""The explorer's device (``app.py --device``): chosen from the flag, carried by the AppContext,
named in the model card and the status lines, and refused clearly when absent.

This machine has no GPU: CUDA is faked where a test needs torch to see one (``is_available``
and friends patched, models replaced by doubles that record where they were sent), and no CUDA
kernel ever runs. Everything real runs on the CPU.
"""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
import torch
from ui_fixtures import CLASSES, SIZE, object_image, tiny_models, write_samples

import app
from explorer.app import make_context
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers import models as handlers_models
from explorer.handlers import train as handlers_train
from explorer.handlers.explain import ExplainRequest, explain
from explorer.handlers.train_worker import WorkerJob, run_job
from explorer.media.editor import EditorInput, editor_value
from explorer.store import ModelStore
from isnet.devices import device_label


class RecordingModel(torch.nn.Module):
    """A stand-in for a network: remembers every device it is sent to and stays where it is
    (so that a faked CUDA device never reaches a CUDA kernel)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.sent_to: list[torch.device] = []

    def to(self, *args, **kwargs) -> RecordingModel:  # noqa: D102 — records instead of moving
        self.sent_to.append(torch.device(args[0] if args else kwargs["device"]))
        return self


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch sees one CUDA GPU called "Fake GPU" (nothing may run on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Fake GPU")


@pytest.fixture
def no_gpu(monkeypatch):
    """torch sees no CUDA GPU (whatever the machine has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def quiet_main(monkeypatch):
    """``app.main`` without its logging set-up (which would outlive the test)."""
    monkeypatch.setattr(app.logging, "basicConfig", lambda **options: None)


def recording_models() -> dict:
    """{label: (RecordingModel, metadata)} for a standard and an ISNet stand-in."""
    return {label: (RecordingModel(), {"class_names": list(CLASSES), "input_size": SIZE,
                                       "trained_as": kind})
            for label, kind in (("Double standard", "standard"), ("Double ISNet", "isnet"))}


# --- the flag ------------------------------------------------------------------------------

def test_device_flag_defaults_to_auto_and_takes_cpu_cuda_and_an_index():
    assert app.parse_args([]).device == "auto"
    for value in ("auto", "cpu", "cuda", "cuda:1"):
        assert app.parse_args(["--device", value]).device == value


@pytest.mark.usefixtures("fake_gpu", "quiet_main")
@pytest.mark.parametrize("flag,expected", [([], "cuda"), (["--device", "auto"], "cuda"),
                                           (["--device", "cpu"], "cpu"),
                                           (["--device", "cuda:0"], "cuda:0")])
def test_main_hands_the_chosen_device_to_build_demo(monkeypatch, capsys, flag, expected):
    import explorer.app

    handed = {}

    def build_demo(**options):
        handed.update(options)
        raise ValueError("stopped by the test before any model loads")

    monkeypatch.setattr(explorer.app, "build_demo", build_demo)
    assert app.main(flag) == 2
    assert handed["device"] == torch.device(expected)
    assert "stopped by the test" in capsys.readouterr().err


@pytest.mark.usefixtures("no_gpu", "quiet_main")
@pytest.mark.parametrize("value,words", [("cuda", "no CUDA GPU"), ("cuda:0", "no CUDA GPU"),
                                         ("tpu", "unknown device")])
def test_a_device_this_machine_lacks_exits_2_with_one_line(monkeypatch, capsys, value, words):
    import explorer.app

    def build_demo(**options):
        raise AssertionError("the explorer was built despite a bad --device")

    monkeypatch.setattr(explorer.app, "build_demo", build_demo)
    assert app.main(["--device", value]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Cannot start the explorer:")
    assert words in lines[0] and "Traceback" not in captured.err


# --- the context ---------------------------------------------------------------------------

@pytest.mark.usefixtures("fake_gpu")
def test_auto_picks_the_gpu_torch_sees_and_the_context_records_it(tmp_path):
    models = recording_models()
    images, masks = write_samples(tmp_path / "assets", per_class=1)
    ctx = make_context(models=models, samples_dir=images, masks_dir=masks,
                       work_dir=tmp_path / "work", device="auto")
    assert ctx.device == ctx.store.device == torch.device("cuda")
    assert device_label(ctx.device) == "cuda:0 (Fake GPU)"
    for model, _ in models.values():  # every model was sent there as it entered the store
        assert model.sent_to == [torch.device("cuda")]


@pytest.mark.usefixtures("fake_gpu")
def test_a_model_loaded_later_goes_to_the_store_device_too():
    store = ModelStore("cuda:0")
    entry = store.add(ModelEntry("loaded-1", "Loaded", RecordingModel(), {}, owner="alice"))
    assert entry.model.sent_to == [torch.device("cuda:0")]


@pytest.mark.usefixtures("no_gpu")
def test_cuda_without_a_gpu_is_refused_before_any_model_loads(tmp_path):
    with pytest.raises(ValueError, match="no CUDA GPU.*--device cpu"):
        make_context(checkpoints=[str(tmp_path / "missing.safetensors")] * 2,
                     work_dir=tmp_path / "work", device="cuda")


# --- on the CPU, end to end ----------------------------------------------------------------

@pytest.fixture
def cpu_context(tmp_path):
    images, masks = write_samples(tmp_path / "assets")
    return make_context(models=tiny_models(), samples_dir=images, masks_dir=masks,
                        work_dir=tmp_path / "work", device="cpu")


def test_explain_runs_on_the_cpu_end_to_end_and_says_so(cpu_context):
    ctx = cpu_context
    assert ctx.device == torch.device("cpu")
    assert all(entry.device == ctx.device for entry in ctx.store.visible(None))
    image, mask = object_image(1, size=64)
    pair = explain(ctx, None, ExplainRequest(EditorInput(editor_value(image, mask)), "standard",
                                             "isnet"))
    assert len(pair.views) == 2 and pair.summary.endswith("Computed on CPU.")
    for view in pair.views:
        assert view.overlay.dtype == np.uint8 and view.overlay.ndim == 3
        assert view.share is not None and 0.0 <= view.share <= 1.0
        assert abs(sum(view.probabilities.values()) - 1.0) < 1e-6


def test_model_card_names_the_device(cpu_context):
    card = handlers_models.model_card(cpu_context.store.get("isnet", None))
    assert "**Runs on:** CPU" in card


def test_fine_tune_hands_the_device_to_its_worker_with_the_model_on_the_cpu(cpu_context,
                                                                          monkeypatch):
    jobs = []

    class EndingWorker:
        """A worker double: keeps the job, reports a failure at once, never starts a process."""

        def __init__(self, job: WorkerJob) -> None:
            jobs.append(job)
            self.pid = None

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def alive(self) -> bool:
            return False

        def next_report(self, timeout: float = 0.2) -> tuple:
            return ("error", "ended by the test")

        def close(self, grace_s: float = 30.0) -> None:
            pass

        def exit_code(self) -> int:
            return 0

    monkeypatch.setattr(handlers_train, "FitWorker", EndingWorker)
    request = handlers_train.FineTuneRequest(base_id="standard", source="samples", epochs=1)
    updates = handlers_train.fine_tune(cpu_context, "dana", request)
    assert "on CPU" in next(updates).status
    with pytest.raises(InputError, match="ended by the test"):
        list(updates)
    job = jobs[0]
    assert job.device == "cpu"
    assert all(p.device.type == "cpu" for p in job.model.parameters())


def test_the_worker_trains_on_its_device_and_saves_cpu_tensors(tmp_path):
    from isnet.data.image_set import ImageSet
    from isnet.io.checkpoints import load_checkpoint
    from isnet.models.densenet import tiny_densenet
    from isnet.training.config import TrainConfig

    pictures = [object_image(i % 3, size=SIZE, seed=i) for i in range(6)]
    images = torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p, _ in pictures])
    masks = torch.stack([torch.from_numpy(m).float()[None] for _, m in pictures])
    data = ImageSet(images, masks, torch.arange(6) % 3, list(CLASSES))
    torch.manual_seed(0)
    config = TrainConfig(model="tiny_densenet", num_classes=3, method="selective",
                         input_size=SIZE, epochs=1, batch_size=3)
    path = tmp_path / "tuned.safetensors"
    reports: queue.Queue = queue.Queue()
    run_job(WorkerJob(tiny_densenet(num_classes=3), data, data.subset([0, 1, 2]), config,
                      str(path), dict(model_name="tiny_densenet", class_names=list(CLASSES),
                                      input_size=SIZE), device="cpu"),
            reports, threading.Event())
    answers = [reports.get_nowait() for _ in range(reports.qsize())]
    kind, summary = answers[-1]
    assert kind == "end" and summary["checkpoint"] == str(path), answers[-1]
    model, metadata = load_checkpoint(path)
    assert metadata["class_names"] == CLASSES
    assert all(p.device.type == "cpu" for p in model.parameters())
