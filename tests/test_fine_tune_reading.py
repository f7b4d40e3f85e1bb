"""The Fine-tune event's reading of its set (issue 34 item 6, issue 29 leftovers).

* A Stop pressed while the set is read ends the run there with "Stopped": no worker process is
  ever made, nothing is saved.
* An ImageNet-normalised model's set reaches the worker centre-cropped as torchvision's preset
  does (short side resized, centre crop), not squeezed: compared pixel by pixel with
  ``torchvision.transforms.v2`` itself.

The worker is replaced by :class:`RecordingWorker`, which keeps the job it was given (the sets
the run would train on) and trains nothing.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from ui_fixtures import make_context, object_image

from explorer.entries import ModelEntry, plain_metadata
from explorer.handlers import train as handlers_train
from isnet.io.imagenet import imagenet_preprocessing
from isnet.models.densenet import tiny_densenet

SIDE = 32


class RecordingWorker:
    """FitWorker's interface: keeps its job, reports a stopped run at once."""

    jobs: list = []

    def __init__(self, job) -> None:
        RecordingWorker.jobs.append(job)
        self.pid, self.stopped = 4242, False

    def start(self) -> None:
        pass

    def alive(self) -> bool:
        return False

    def next_report(self, timeout: float = 0.2):
        if self.stopped:
            return None
        self.stopped = True
        return ("end", {"status": "stopped"})

    def stop(self) -> None:
        pass

    def exit_code(self) -> int:
        return 0

    def close(self, grace_s: float = 30.0) -> None:
        pass


@pytest.fixture
def worker(monkeypatch):
    RecordingWorker.jobs = []
    monkeypatch.setattr(handlers_train, "FitWorker", RecordingWorker)
    return RecordingWorker


def wide_files(folder) -> dict[str, str]:
    """One wider-than-tall ``<class>_0.png`` (+ mask) per class, so a crop and a squeeze
    differ; {class: image path}; all paths in ``wide_files.paths``."""
    folder.mkdir(parents=True)
    images, paths = {}, []
    for kind, name in enumerate(("circle", "square")):
        image, mask = object_image(kind, size=48, seed=kind)
        wide = np.concatenate([image, image[:, :24] // 2], axis=1)  # (48, 72, 3)
        wide_mask = np.concatenate([mask, np.zeros_like(mask[:, :24])], axis=1)
        Image.fromarray(wide).save(folder / f"{name}_0.png")
        Image.fromarray(wide_mask.astype(np.uint8) * 255).save(folder / f"{name}_0.mask.png")
        images[name] = str(folder / f"{name}_0.png")
        paths += [images[name], str(folder / f"{name}_0.mask.png")]
    wide_files.paths = paths
    return images


def imagenet_model(ctx, session: str) -> str:
    """A tiny DenseNet with torchvision's ImageNet metadata (1000 classes, its normalisation),
    owned by ``session``; returns its id."""
    facts = imagenet_preprocessing()
    torch.manual_seed(0)
    metadata = plain_metadata({"class_names": list(facts.class_names), "input_size": SIDE,
                               "model_name": "tiny_densenet", "trained_as": "standard",
                               "normalisation": {"mean": list(facts.mean),
                                                 "std": list(facts.std)}})
    entry = ModelEntry("imagenet-tiny", "Tiny ImageNet-normalised",
                       tiny_densenet(num_classes=1000).eval(), metadata, owner=session)
    return ctx.store.add(entry).model_id


def request(paths, **settings):
    values = dict(base_id="standard", source="upload", paths=tuple(paths), method="standard",
                  epochs=1)
    return handlers_train.FineTuneRequest(**(values | settings))


def test_a_stop_while_the_set_is_read_ends_the_run_with_stopped(tmp_path, worker):
    ctx = make_context(tmp_path)
    wide_files(tmp_path / "upload")
    stop = threading.Event()
    run = handlers_train.fine_tune(ctx, "ann", request(wide_files.paths), stop=stop)
    first = next(run)
    assert first.status.startswith("Starting") and "reading the uploaded images" in first.status
    stop.set()  # pressed while the set is being read (it is read right after this update)
    rest = list(run)
    assert rest[-1].status.startswith("Stopped after") and "reading" in rest[-1].status
    assert rest[-1].entry is None and rest[-1].checkpoint is None
    assert worker.jobs == []  # before the fix the whole set was read and a worker made
    assert not list(ctx.session_dir("ann").glob("*.safetensors"))


def test_an_imagenet_models_fine_tune_set_is_centre_cropped_as_torchvision_does(tmp_path,
                                                                                worker):
    ctx = make_context(tmp_path)
    images = wide_files(tmp_path / "upload")
    base = imagenet_model(ctx, "bea")
    list(handlers_train.fine_tune(ctx, "bea", request(wide_files.paths, base_id=base)))
    [job] = worker.jobs
    image_set = job.train_set
    preset = v2.Compose([v2.Resize(round(SIDE / 0.875), antialias=True), v2.CenterCrop(SIDE)])
    for index, label in enumerate(image_set.labels.tolist()):
        name = image_set.class_names[label]
        picture = torch.from_numpy(np.array(Image.open(images[name]).convert("RGB")))
        expected = preset(picture.permute(2, 0, 1)).float() / 255  # (3, S, S)
        squeezed = v2.Resize((SIDE, SIDE), antialias=True)(picture.permute(2, 0, 1)).float() / 255
        got = image_set.images[index]
        assert got.shape == (3, SIDE, SIDE)
        assert (got - expected).abs().max() <= 1.5 / 255, name  # uint8 rounding only
        assert (got - squeezed).abs().max() > 0.1  # a squeeze would differ plainly
