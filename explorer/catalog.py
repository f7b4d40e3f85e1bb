"""Where the explorer's default models and sample images come from.

* Models: the two checkpoints given with ``--checkpoint`` (standard first, ISNet second), else
  the bundled ones in ``assets/checkpoints/`` (picked by their metadata's training method: ISNet
  vs standard), else
  freshly initialised DenseNet121s with a visible "untrained demo models" notice, so the app
  always starts.
* Samples: ``assets/images/*.png`` with the mask of the same name in ``assets/masks/``; the true
  class comes from ``assets/images/labels.json`` ({file name: class name}) when present, else from
  the longest class name contained in the file name, ignoring case and punctuation
  (``"fashion_tshirt_top_19.png"`` → ``"T-shirt/top"``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

import isnet
from explorer.entries import ModelEntry, plain_metadata, trained_as
from explorer.handlers.lrp_modes import opening_mode
from explorer.media.decode import IMAGE_EXTENSIONS
from explorer.state import Sample
from isnet.data.fashion_mnist import FASHION_MNIST_CLASSES
from isnet.io.limits import CheckpointLimits

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
UNTRAINED_NOTICE = ("⚠️ Untrained demo models: no bundled checkpoints were found, so both "
                    "models are freshly initialised DenseNet121s. Their heatmaps show the "
                    "mechanics, not learned behaviour. Load trained ones in the Models tab or "
                    "start the app with --checkpoint STANDARD ISNET.")


def entry_from_checkpoint(path: str | Path, model_id: str, label: str | None = None,
                          owner: str | None = None,
                          limits: CheckpointLimits = CheckpointLimits()) -> ModelEntry:
    """Load a checkpoint file into a :class:`ModelEntry` (raises ``isnet.CheckpointError``).

    Any registered model family loads; how the model was trained (ISNet or standard) is read
    from the metadata's training method (see :func:`explorer.state.trained_as`); which LRP it
    opens with, from its layout (:func:`explorer.handlers.lrp_modes.opening_mode`). ``limits``
    bound the file (default: 1 GB).
    """
    model, metadata = isnet.load_checkpoint(path, limits)
    metadata = plain_metadata(metadata)
    mode, reason = opening_mode(path, metadata)  # the authors' files: their LRP as published
    metadata.update(lrp_mode=mode, lrp_mode_reason=reason)
    kind = {"isnet": "ISNet", "comparison": "Comparison"}.get(trained_as(metadata), "Standard")
    name = label or f"{kind} · {Path(path).stem}"
    return ModelEntry(model_id, name, model.eval(), metadata, owner=owner, path=str(path))


def untrained_pair(num_classes: int = 10, input_size: int = 64,
                   class_names: Sequence[str] | None = None) -> list[ModelEntry]:
    """Two freshly initialised DenseNet121s (seeded, so every start looks the same)."""
    names = list(class_names or FASHION_MNIST_CLASSES[:num_classes])
    entries = []
    for seed, (model_id, label, kind) in enumerate((("standard", "Standard DenseNet121 "
                                                        "(untrained)", "standard"),
                                                       ("isnet", "ISNet DenseNet121 (untrained)",
                                                        "isnet"))):
        torch.manual_seed(seed)
        model = isnet.densenet121(num_classes=len(names)).eval()
        metadata = plain_metadata({"class_names": names, "input_size": input_size,
                                   "trained_as": kind, "model_name": "densenet121",
                                   "family": "densenet",
                                   "provenance": {"source": "random initialisation (demo)"}})
        entries.append(ModelEntry(model_id, label, model, metadata))
    return entries


def default_models(checkpoints: Sequence[str] | None = None,
                   folder: Path = ASSETS / "checkpoints") -> tuple[list[ModelEntry], str]:
    """The two models compared at start, and a notice for the UI ("" when they are trained).

    Args:
        checkpoints: explicit (standard, ISNet) checkpoint paths; errors propagate.
        folder: where bundled checkpoints live.
    """
    if checkpoints:
        if len(checkpoints) != 2:
            raise ValueError("--checkpoint takes two paths: STANDARD ISNET")
        return [entry_from_checkpoint(checkpoints[0], "standard"),
                entry_from_checkpoint(checkpoints[1], "isnet")], ""
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    loaded: dict[str, ModelEntry] = {}
    for file in files:
        try:
            entry = entry_from_checkpoint(file, "pending")
        except ValueError as error:
            logger.warning("skipping bundled checkpoint %s: %s", file, error)
            continue
        loaded.setdefault(entry.trained_as, entry)
    if "standard" in loaded and "isnet" in loaded:
        pair = [loaded["standard"], loaded["isnet"]]
        for entry, model_id in zip(pair, ("standard", "isnet"), strict=True):
            entry.model_id = model_id
        return pair, ""
    return untrained_pair(), UNTRAINED_NOTICE


def bundled_checkpoints(folder: Path | None = None) -> list[str]:
    """File names of the bundled checkpoints (``assets/checkpoints/*.safetensors``), sorted."""
    folder = folder or ASSETS / "checkpoints"
    return sorted(p.name for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def find_samples(images: Path = ASSETS / "images", masks: Path = ASSETS / "masks",
                 class_names: Sequence[str] = ()) -> list[Sample]:
    """The bundled sample images with their masks and (where known) true classes."""
    if not images.is_dir():
        return []
    labels: dict[str, str] = {}
    for candidate in (images / "labels.json", images.parent / "labels.json"):
        if candidate.is_file():
            try:
                labels = {str(k): str(v) for k, v in json.loads(candidate.read_text()).items()}
            except (ValueError, AttributeError) as error:
                logger.warning("ignoring %s: %s", candidate, error)
            break
    def squash(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    by_length = sorted(class_names, key=lambda c: len(squash(c)), reverse=True)
    samples = []
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
        mask = next((m for m in (masks / path.name, masks / (path.stem + ".png")) if m.is_file()),
                    None)
        label = labels.get(path.name) or labels.get(path.stem)
        if label is None:  # the longest class name found in the file name
            label = next((c for c in by_length if squash(c) and squash(c) in squash(path.stem)),
                         None)
        samples.append(Sample(path.stem, str(path), str(mask) if mask else None, label))
    return samples
