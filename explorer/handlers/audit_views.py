"""What the Audit tab shows of a finished audit (read back by
:func:`explorer.handlers.audit.read_audit`): the summary, the histogram, the most
background-reliant images, strategies per class (SpRAy) and the set to fine-tune on.

Each takes an in-memory :class:`~explorer.handlers.audit.AuditData` or a streamed
:class:`~explorer.handlers.audit_stream.StreamedData` (a local folder of any size): there,
strategies cluster the 16 px heatmaps (a seeded sample of :data:`SPRAY_LIMIT` per class), and
an image the audit did not keep is re-read from the folder and shown with its 16 px heatmap.
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
from explorer.handlers.audit_conservation import conservation_lines
from explorer.handlers.audit_conservation import read as read_conservation
from explorer.handlers.audit_stream import (
    FINE_TUNE_LIMIT,
    SPRAY_LIMIT,
    StreamedData,
    write_fine_tune_tree,
)
from explorer.media import audit_plots
from explorer.media.tensors import display_image
from explorer.plain_text import plain
from isnet import viz
from isnet.analysis.strategies import MIN_FOR_EIGENGAP, find_strategies
from isnet.data.folders import save_image_folder
from isnet.io.atomic import write_atomically

Audit = AuditData | StreamedData
GALLERY_SIZE = 24
THUMB = 128


def model_lists(choices: list[tuple[str, str]]) -> tuple[list[tuple[str, str]],
                                                         list[tuple[str, str]]]:
    """The Audit tab's two model lists from the store's (label, id) choices for a session:
    every model it may use, whatever its classes (a loaded 1000-class ImageNet model too: an
    audit of a set with other classes ranks by background share, without accuracy), and the
    second list with "(none)" first."""
    return list(choices), [("(none)", "(none)"), *choices]


def summary(data: AuditData, threshold: float) -> str:
    """A Markdown table per model: images, accuracy, mean share, images over ``threshold``;
    for a half-marked set, the marked and the clean images apart too. A model whose classes
    differ from the set's has no accuracy, which a line below says; how the set's folders
    matched the model's classes follows."""
    lines = [f"| model | n | acc. | mean bg share | bg > {threshold:.0%} |",
             "|---|---:|---:|---:|---:|"]
    marks = data.marks()
    parts = [("", np.ones(len(marks), bool))]
    if (marks == 1).any() and (marks == 0).any():
        parts += [(" · marked", marks == 1), (" · clean", marks == 0)]
    for index, model in enumerate(data.record["models"]):
        for suffix, chosen in parts:
            lines.append(_summary_row(data, index, f"{plain(model['label'])}{suffix}", chosen,
                                      threshold))
    others = [plain(model["label"]) for index, model in enumerate(data.record["models"])
              if data.correct(index) is None]
    if others:
        lines.append(f"\n*{', '.join(others)}: other classes than the set's, so no accuracy; "
                     f"the images are ranked by background share alone.*")
    match = data.record.get("class_match")
    if match:
        lines.append("\n" + match_text(match))
    lines += ["\n" + line for line in conservation_lines(read_conservation(data.record))]
    state = "" if data.record["complete"] else "\n\n*Stopped early: a partial audit.*"
    return "\n".join(lines) + state


def _summary_row(data: AuditData, model: int, label: str, chosen: np.ndarray,
                 threshold: float) -> str:
    """One table row: the ``chosen`` images (N,) bool of one model."""
    correct = data.correct(model)
    share = np.asarray(data.share[model])[chosen]
    finite = share[np.isfinite(share)]
    accuracy = "—" if correct is None else f"{correct[chosen].mean():.1%}"
    mean = f"{finite.mean():.1%}" if len(finite) else "— (no masks)"
    over = f"{int((finite > threshold).sum())}" if len(finite) else "—"
    return f"| {label} | {int(chosen.sum())} | {accuracy} | {mean} | {over} |"


def match_text(match: dict) -> str:
    """How the set's class folders matched the model's classes, in a sentence or two."""
    renamed = [f"{folder} → {name}" + (" (classes.csv)" if folder in match.get("mapped", [])
                                        else "")
               for folder, name in match["matched"].items()]
    text = f"*Class folders: {'; '.join(renamed)}.*"
    if match["unmatched"]:
        text += (f" *No class for {', '.join(match['unmatched'])}: left out (rename the "
                 "folder or add a classes.csv of folder,class rows).*")
    if match["missing"]:
        text += f" *No folder for {', '.join(match['missing'])}.*"
    return text


def histogram(data: AuditData):
    """The per-class background-share histogram (a matplotlib Figure)."""
    shares = {model["label"]: data.share[i] for i, model in enumerate(data.record["models"])}
    return audit_plots.share_histogram(shares, data.labels, data.record["class_names"])


def ranking(data: AuditData, model: int) -> np.ndarray:
    """Image indices from the most to the least background-reliant for one model (by share;
    without masks, by the share of relevance outside the central half of the image)."""
    share = data.share[model].astype(np.float64)
    if not np.isfinite(share).any():
        share = _outer_share(np.asarray(data.maps[model], np.float32)
                             if isinstance(data, StreamedData) else data.relevance[model])
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


def caption(data: Audit, index: int, model: int) -> str:
    """``file · class → prediction ✓/✗ · share`` (the file, or ``<split> #<index>`` for a
    bundled image, so every picture leads back to its source)."""
    names = data.record["class_names"]
    model_names = data.record["models"][model]["class_names"]
    predicted = model_names[int(data.predictions[model][index])]
    correct = data.correct(model)
    mark = "" if correct is None else (" ✓" if correct[index] else " ✗")
    share = data.share[model][index]
    share_text = f" · bg {share:.0%}" if np.isfinite(share) else ""
    name = str(data.image_names()[index])
    return f"{name} · {names[int(data.labels[index])]} → {predicted}{mark}{share_text}"


def overlay(data: Audit, index: int, model: int,
            scale: float | None = None) -> np.ndarray:
    """One image with one model's heatmap over it (its own scale unless ``scale`` is given);
    a streamed audit's image that was not kept: re-read, with its 16 px heatmap."""
    if isinstance(data, StreamedData):
        kept = data.kept(index, model)
        image, relevance = ((kept[0], kept[1]) if kept is not None else
                            (data.image(index)[0], np.asarray(data.maps[model][index], np.float32)))
    else:
        image, relevance = data.images[index], data.relevance[model][index]
    bound = scale or viz.shared_scale([relevance])
    return viz.overlay(display_image(image, THUMB), relevance, bound, 0.7)


def shown(data: Audit, indices: list[int],
          model: int) -> list[tuple[np.ndarray, str]]:
    """(overlay, caption) of each image; "16 px map" marks a streamed image not kept."""
    return [(overlay(data, i, model), caption(data, i, model)
             + (" · 16 px map" if isinstance(data, StreamedData)
                and data.kept(i, model) is None else "")) for i in indices]


def top_gallery(data: AuditData, model: int,
                count: int = GALLERY_SIZE) -> tuple[list[tuple[np.ndarray, str]], list[int]]:
    """The ``count`` most background-reliant images as (overlay, caption), and their indices."""
    order = [int(i) for i in ranking(data, model)[:count]]
    return shown(data, order, model), order


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


def strategies(data: AuditData, model: int, class_name: str,
               num_clusters: int | None = None) -> StrategyView:
    """Cluster the heatmaps of the images of ``class_name`` (their true class) into strategies:
    as many as the eigengap finds, or ``num_clusters`` (the user's *k*; None or 0: automatic).
    A class with too few images for the eigengap (:data:`MIN_FOR_EIGENGAP`) says so.

    Raises:
        InputError: unknown class, fewer than 3 images of it, or a *k* it cannot have.
    """
    names = data.record["class_names"]
    if class_name not in names:
        raise InputError(f"The set has no class {class_name!r}.")
    members = np.flatnonzero(data.labels == names.index(class_name))
    if len(members) < 3:
        raise InputError(f"Only {len(members)} image(s) of {class_name}: strategy discovery "
                         f"needs at least 3 (audit more images).")
    total, note = len(members), ""
    if isinstance(data, StreamedData):
        if total > SPRAY_LIMIT:  # spectral clustering needs an N × N affinity
            members = np.sort(np.random.default_rng(0).choice(members, SPRAY_LIMIT,
                                                               replace=False))
            note = f" (a seeded sample of {SPRAY_LIMIT})"
        note += ", 16 px heatmaps"
        heatmaps = torch.from_numpy(np.asarray(data.maps[model][members], np.float32))
    else:
        heatmaps = torch.from_numpy(data.relevance[model][members])
    k = int(num_clusters) if num_clusters else None
    if k is not None and not 1 <= k <= min(len(members), 12):
        raise InputError(f"Strategies (k) must lie between 1 and {min(len(members), 12)} for "
                         f"the {len(members)} images of {class_name}, got {k} (0 = automatic).")
    found = find_strategies(heatmaps, seed=0, num_clusters=k)
    means, groups = [], []
    share = data.share[model]
    for cluster in range(found.num_clusters):
        chosen = members[found.labels == cluster]
        groups.append([int(i) for i in chosen])
        picture = viz.heatmap_to_rgb(found.mean_maps[cluster], 1.0, size=(THUMB, THUMB))
        mean_share = np.nanmean(share[chosen]) if np.isfinite(share[chosen]).any() else None
        extra = f" · mean bg {mean_share:.0%}" if mean_share is not None else ""
        means.append((picture, f"strategy {cluster + 1}: {len(chosen)} images{extra}"))
    text = (f"**{plain(class_name)}**, {plain(data.record['models'][model]['label'])}: "
            f"{total} images{note}, "
            f"{found.num_clusters} strateg{'y' if found.num_clusters == 1 else 'ies'} "
            f"({'your k' if found.chosen_by == 'user' else 'eigengap'}). Click a strategy to "
            "see its members.")
    if found.few and found.chosen_by == "eigengap":
        verdict = ("one strategy is no finding" if found.num_clusters == 1
                   else "this split is a guess")
        text += (f"\n\n⚠️ Only {total} images of {class_name}: too few for the eigengap to "
                 f"find strategies (it needs {MIN_FOR_EIGENGAP} or more), so {verdict}. Audit "
                 "more images, or set *k* to split them your way.")
    elif found.num_clusters == 1 and found.chosen_by == "eigengap":
        text += ("\n\nThe eigengap found no gap: these heatmaps look alike (one strategy). "
                 "Set *k* to split them anyway.")
    return StrategyView(means, groups, audit_plots.eigengap_figure(found.eigenvalues,
                                                                   found.num_clusters), text)


def members_gallery(data: AuditData, model: int,
                    indices: list[int]) -> list[tuple[np.ndarray, str]]:
    """(overlay, caption) of up to 48 members of one strategy."""
    return shown(data, indices[:48], model)


def explain_input(data: AuditData, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(image, mask or None, true class) of one audited image, for the Explain tab (a
    streamed audit's image: kept, or re-read from the folder)."""
    if not 0 <= index < len(data.labels):
        raise InputError(f"No image #{index} in this audit.")
    if isinstance(data, StreamedData):
        image, mask = data.image(index)
        return image, mask, data.record["class_names"][int(data.labels[index])]
    mask = None if data.masks is None else data.masks[index]
    return data.images[index], mask, data.record["class_names"][int(data.labels[index])]


def fine_tune_selection(data: Audit, model: int, threshold: float) -> np.ndarray:
    """Indices of the images ``model`` got wrong or relied on the background for
    (share > ``threshold``)."""
    share = data.share[model]
    chosen = np.isfinite(share) & (share > threshold)
    correct = data.correct(model)
    if correct is not None:
        chosen |= ~correct
    return np.flatnonzero(chosen)


def fine_tune_zip(data: Audit, model: int, threshold: float,
                  folder: Path) -> tuple[str, int]:
    """Write the :func:`fine_tune_selection` as a zip the Fine-tune tab reads
    (``<class>/<name>.png`` + ``<class>/<name>.mask.png``); returns (path, images). A streamed
    audit's images are re-read from the folder: those with a mask file, the most reliant
    first, at most :data:`FINE_TUNE_LIMIT`.

    Raises:
        InputError: no masks (a fine-tune needs them), or nothing selected.
    """
    if (data.record["masks"] == "none" if isinstance(data, StreamedData)
            else data.masks is None):
        raise InputError("This audit ran without masks; a fine-tuning set needs them (audit "
                         "with the set's masks or automatic masks).")
    chosen = fine_tune_selection(data, model, threshold)
    if isinstance(data, StreamedData):
        chosen = chosen[data.has_mask(chosen)]
        chosen = chosen[np.argsort(-data.share[model][chosen], kind="stable")][:FINE_TUNE_LIMIT]
    if len(chosen) == 0:
        raise InputError(f"No image was wrong or above {threshold:.0%} background share.")
    stamp = time.time_ns()
    tree = folder / f"fine-tune-set-{stamp}"
    if isinstance(data, StreamedData):
        written = write_fine_tune_tree(data, chosen, tree)
    else:
        assert data.masks is not None  # refused above
        images = torch.from_numpy(data.images[chosen]).permute(0, 3, 1, 2).float() / 255.0
        masks = torch.from_numpy(data.masks[chosen].astype(np.float32))[:, None]
        written = save_image_folder(isnet.ImageSet(
            images, masks, torch.from_numpy(data.labels[chosen]).long(),
            list(data.record["class_names"])), tree)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree.rglob("*.png")):
            parts = path.relative_to(tree).parts  # streamed: part-<k>/<class>/<name>
            name = "/".join(parts) if len(parts) == 2 else f"{parts[1]}/{parts[0]}-{parts[2]}"
            archive.write(path, name)
    target = write_atomically(folder / f"audit-fine-tune-set-{stamp}.zip", buffer.getvalue())
    return str(target), len(written)
