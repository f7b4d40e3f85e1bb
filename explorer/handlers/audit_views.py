"""What the Audit tab shows of a finished audit (read back by
:func:`explorer.handlers.audit.read_audit`): the summary, the histogram, the most
background-reliant images, strategies per class (SpRAy) and the set to fine-tune on.
"""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import isnet
from explorer.errors import InputError
from explorer.handlers.audit import AuditData
from explorer.media import audit_plots
from explorer.media.tensors import display_image
from isnet import viz
from isnet.analysis.strategies import find_strategies
from isnet.data.folders import save_image_folder
from isnet.io.atomic import write_atomically

GALLERY_SIZE = 24
THUMB = 128


def summary(data: AuditData, threshold: float) -> str:
    """A Markdown table per model: images, accuracy, mean share, images over ``threshold``."""
    lines = [f"| model | n | acc. | mean bg share | bg > {threshold:.0%} |",
             "|---|---:|---:|---:|---:|"]
    for index, model in enumerate(data.record["models"]):
        correct = data.correct(index)
        share = data.share[index]
        finite = share[np.isfinite(share)]
        accuracy = "—" if correct is None else f"{correct.mean():.1%}"
        mean = f"{finite.mean():.1%}" if len(finite) else "— (no masks)"
        over = f"{int((finite > threshold).sum())}" if len(finite) else "—"
        lines.append(f"| {model['label']} | {data.record['count']} | {accuracy} | {mean} | "
                     f"{over} |")
    state = "" if data.record["complete"] else "\n\n*Stopped early: a partial audit.*"
    return "\n".join(lines) + state


def histogram(data: AuditData):
    """The per-class background-share histogram (a matplotlib Figure)."""
    shares = {model["label"]: data.share[i] for i, model in enumerate(data.record["models"])}
    return audit_plots.share_histogram(shares, data.labels, data.record["class_names"])


def ranking(data: AuditData, model: int) -> np.ndarray:
    """Image indices from the most to the least background-reliant for one model (by share;
    without masks, by the share of relevance outside the central half of the image)."""
    share = data.share[model].astype(np.float64)
    if not np.isfinite(share).any():
        share = _outer_share(data.relevance[model])
    share = np.where(np.isfinite(share), share, -1.0)
    return np.argsort(-share, kind="stable")


def _outer_share(relevance: np.ndarray) -> np.ndarray:
    """Σ|R| outside the central half of the frame / Σ|R| — a mask-free stand-in."""
    magnitude = np.abs(relevance)
    size = relevance.shape[-1]
    quarter = size // 4
    inner = magnitude[:, quarter:size - quarter, quarter:size - quarter].sum((1, 2))
    total = magnitude.sum((1, 2)).clip(min=1e-12)
    return 1.0 - inner / total


def caption(data: AuditData, index: int, model: int) -> str:
    """``#index class → prediction ✓/✗ · share``."""
    names = data.record["class_names"]
    model_names = data.record["models"][model]["class_names"]
    predicted = model_names[int(data.predictions[model][index])]
    correct = data.correct(model)
    mark = "" if correct is None else (" ✓" if correct[index] else " ✗")
    share = data.share[model][index]
    share_text = f" · bg {share:.0%}" if np.isfinite(share) else ""
    return f"#{index} {names[int(data.labels[index])]} → {predicted}{mark}{share_text}"


def overlay(data: AuditData, index: int, model: int, scale: float | None = None) -> np.ndarray:
    """One image with one model's heatmap over it (its own scale unless ``scale`` is given)."""
    relevance = data.relevance[model][index]
    bound = scale or viz.shared_scale([relevance])
    picture = display_image(data.images[index], THUMB)
    return viz.overlay(picture, relevance, bound, 0.7)


def top_gallery(data: AuditData, model: int,
                count: int = GALLERY_SIZE) -> tuple[list[tuple[np.ndarray, str]], list[int]]:
    """The ``count`` most background-reliant images as (overlay, caption), and their indices."""
    order = [int(i) for i in ranking(data, model)[:count]]
    return [(overlay(data, i, model), caption(data, i, model)) for i in order], order


@dataclass
class StrategyView:
    """Strategies of one class for one model (SpRAy).

    Attributes:
        means: (picture, caption) per cluster: its mean normalised heatmap.
        members: image indices per cluster (largest cluster first).
        eigengap: the eigenvalue plot (a Figure).
        text: Markdown summary.
    """

    means: list[tuple[np.ndarray, str]]
    members: list[list[int]]
    eigengap: object
    text: str


def strategies(data: AuditData, model: int, class_name: str) -> StrategyView:
    """Cluster the heatmaps of the images of ``class_name`` (their true class) into strategies.

    Raises:
        InputError: unknown class, or fewer than 3 images of it.
    """
    names = data.record["class_names"]
    if class_name not in names:
        raise InputError(f"The set has no class {class_name!r}.")
    members = np.flatnonzero(data.labels == names.index(class_name))
    if len(members) < 3:
        raise InputError(f"Only {len(members)} image(s) of {class_name}: strategy discovery "
                         f"needs at least 3 (audit more images).")
    found = find_strategies(torch.from_numpy(data.relevance[model][members]), seed=0)
    means, groups = [], []
    share = data.share[model]
    for cluster in range(found.num_clusters):
        chosen = members[found.labels == cluster]
        groups.append([int(i) for i in chosen])
        picture = viz.heatmap_to_rgb(found.mean_maps[cluster], 1.0, size=(THUMB, THUMB))
        mean_share = np.nanmean(share[chosen]) if np.isfinite(share[chosen]).any() else None
        extra = f" · mean bg {mean_share:.0%}" if mean_share is not None else ""
        means.append((picture, f"strategy {cluster + 1}: {len(chosen)} images{extra}"))
    text = (f"**{class_name}**, {data.record['models'][model]['label']}: {len(members)} images, "
            f"{found.num_clusters} strateg{'y' if found.num_clusters == 1 else 'ies'} "
            f"(eigengap). Click a strategy to see its members.")
    return StrategyView(means, groups, audit_plots.eigengap_figure(found.eigenvalues,
                                                                   found.num_clusters), text)


def members_gallery(data: AuditData, model: int,
                    indices: list[int]) -> list[tuple[np.ndarray, str]]:
    """(overlay, caption) of up to 48 members of one strategy."""
    return [(overlay(data, i, model), caption(data, i, model)) for i in indices[:48]]


def explain_input(data: AuditData, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(image, mask or None, true class) of one audited image, for the Explain tab."""
    if not 0 <= index < len(data.images):
        raise InputError(f"No image #{index} in this audit.")
    mask = None if data.masks is None else data.masks[index]
    return data.images[index], mask, data.record["class_names"][int(data.labels[index])]


def fine_tune_selection(data: AuditData, model: int, threshold: float) -> np.ndarray:
    """Indices of the images ``model`` got wrong or relied on the background for
    (share > ``threshold``)."""
    share = data.share[model]
    chosen = np.isfinite(share) & (share > threshold)
    correct = data.correct(model)
    if correct is not None:
        chosen |= ~correct
    return np.flatnonzero(chosen)


def fine_tune_zip(data: AuditData, model: int, threshold: float, folder: Path) -> tuple[str, int]:
    """Write the :func:`fine_tune_selection` as a zip the Fine-tune tab reads
    (``<class>/<name>.png`` + ``<class>/<name>.mask.png``); returns (path, images).

    Raises:
        InputError: no masks (a fine-tune needs them), or nothing selected.
    """
    if data.masks is None:
        raise InputError("This audit ran without masks; a fine-tuning set needs them (audit "
                         "with the set's masks or automatic masks).")
    chosen = fine_tune_selection(data, model, threshold)
    if len(chosen) == 0:
        raise InputError(f"No image was wrong or above {threshold:.0%} background share.")
    images = torch.from_numpy(data.images[chosen]).permute(0, 3, 1, 2).float() / 255.0
    masks = torch.from_numpy(data.masks[chosen].astype(np.float32))[:, None]
    image_set = isnet.ImageSet(images, masks, torch.from_numpy(data.labels[chosen]).long(),
                               list(data.record["class_names"]))
    stamp = time.time_ns()
    tree = folder / f"fine-tune-set-{stamp}"
    written = save_image_folder(image_set, tree)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree.rglob("*.png")):
            archive.write(path, path.relative_to(tree).as_posix())
    target = write_atomically(folder / f"audit-fine-tune-set-{stamp}.zip", buffer.getvalue())
    return str(target), len(written)
