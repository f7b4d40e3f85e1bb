"""Plain functions between the Explain tab's widgets and the engine (no Gradio needed to call them).

Widget values come in (file paths, the image editor's ``{"background", "layers", "composite"}``
dict, strings, numbers); engine calls happen through :mod:`isnet`; plain Python comes out:
``uint8`` arrays, ``float`` (never NumPy scalars), dicts of ``str → float``. Bad input raises
:class:`explorer.uploads.InputError` with a message for the user; notices that should not stop
the work are returned in a ``notices`` list.

The other tabs have their own handler modules (``handlers_bias``, ``handlers_train``,
``handlers_models``); they share :func:`read_editor`, :func:`explain_models` and
:func:`predict_models` from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from explorer import editor, masking
from explorer.state import AppContext, ModelEntry, image_digest
from explorer.uploads import InputError, decode_image, decode_mask
from isnet import viz

PREDICTED = "predicted class"


@dataclass
class ModelView:
    """What one model says about one image, ready for widgets.

    Attributes:
        label: model name.
        top: top-k {class name: probability} (plain floats).
        predicted: name of the top class.
        target: name of the explained class.
        heatmap: (h, w, 3) uint8, the map alone (shared scale).
        overlay: (H, W, 3) uint8, the map over the image.
        share: background relevance share in [0, 1], or None without a usable mask.
        probabilities: {class name: probability} for every class.
    """

    label: str
    top: dict[str, float]
    predicted: str
    target: str
    heatmap: np.ndarray
    overlay: np.ndarray
    share: float | None
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass
class PairView:
    """Both models' views on one colour scale, plus what to tell the user."""

    views: list[ModelView]
    scale: float
    colorbar: np.ndarray
    mask_preview: np.ndarray
    summary: str
    notices: list[str] = field(default_factory=list)


def editor_value(image: np.ndarray, mask: np.ndarray | None) -> dict:
    """An editor value with ``mask`` as its one painted layer (what a script would send)."""
    layers = [masking.mask_layer(mask)] if mask is not None and mask.any() else []
    return {"background": image, "layers": layers, "composite": None}


def load_upload(ctx: AppContext, path: str | None) -> tuple[np.ndarray, np.ndarray | None,
                                                              list[str]]:
    """Decode an uploaded image: (image (H, W, 3) uint8, alpha mask or None, notices).

    Raises:
        InputError: no file, not an image, damaged, too large.
    """
    if not path:
        raise InputError("No image uploaded.")
    decoded = decode_image(path, max_side=ctx.limits.max_side)
    return decoded.image, decoded.alpha_mask, decoded.notices


def load_sample(ctx: AppContext, name: str) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """A bundled sample: (image, its mask or None, its true class name or None)."""
    sample = ctx.sample(name)
    decoded = decode_image(sample.image_path, max_side=ctx.limits.max_side)
    mask = decode_mask(sample.mask_path, decoded.image.shape[:2]) if sample.mask_path else None
    return decoded.image, mask, sample.label


def read_editor(value: dict | None, record: dict | None = None,
                mode: str = editor.ADD) -> tuple[np.ndarray, np.ndarray | None]:
    """The editor's clean image (H, W, 3) uint8 and its mask (H, W) bool or None.

    See :func:`explorer.editor.resolve` (``record`` is the editor's ``gr.State``; without one
    the value's background and layers are taken as they are).
    """
    return editor.resolve(value, record, mode)


def mask_file(value: dict | None, path: str | None, record: dict | None = None,
              mode: str = editor.ADD) -> tuple[np.ndarray, np.ndarray]:
    """The editor's image and an uploaded mask file for it (white = object)."""
    image, _ = read_editor(value, record, mode)
    if not path:
        raise InputError("No mask file uploaded.")
    return image, decode_mask(path, image.shape[:2])


def auto_mask(value: dict | None, method: str, record: dict | None = None,
              mode: str = editor.ADD) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The editor's image, an automatic mask (threshold / GrabCut) and a warning if degenerate.

    GrabCut starts from the current mask when there is one (so it refines a rough stroke),
    otherwise from a rectangle just inside the border.
    """
    image, rough = read_editor(value, record, mode)
    mask = masking.auto_mask(image, method, rough)
    return image, mask, masking.describe_mask(mask)[1]


def model_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, size, size) float32 in [0, 1] (area interpolation)."""
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def mask_tensor(mask: np.ndarray, size: int) -> torch.Tensor:
    """(H, W) bool → (1, 1, size, size) float32 in {0, 1} (nearest)."""
    small = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return torch.from_numpy(small.astype(np.float32))[None, None]


def _target_index(entry: ModelEntry, target: str | None) -> int | None:
    """Class index for a class name (None = the predicted class)."""
    if not target or target == PREDICTED:
        return None
    names = entry.class_names
    if target in names:
        return names.index(target)
    raise InputError(f"{entry.label} has no class {target!r}; its classes are "
                     f"{', '.join(names)}.")


def _explain_one(ctx: AppContext, entry: ModelEntry, x: torch.Tensor,
                 target: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(probabilities (K,), heatmap (C, S, S), explained class) — cached per image and class."""
    key = (entry.model_id, id(entry.model), image_digest(x.numpy()), target)
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached
    with torch.no_grad():
        logits, heatmaps = engine_explain(entry.model, x, target)
    probabilities = torch.softmax(logits.double(), dim=1)[0].numpy()
    explained = int(probabilities.argmax()) if target is None else int(target)
    result = (probabilities, heatmaps[0, 0].double().numpy(), explained)
    ctx.cache.put(key, result)
    return result


def engine_explain(model, x: torch.Tensor, target: int | None):
    """``isnet.explain`` with the default LRP settings (imported late).

    Returns:
        logits (1, K) and heatmaps (1, 1, C, H, W).
    """
    from isnet import explain

    return explain(model, x, target=target)


def _share(heatmap: np.ndarray, mask: torch.Tensor | None) -> float | None:
    """Background share of one (C, S, S) heatmap, or None without a usable mask."""
    if mask is None:
        return None
    from isnet import background_share

    heat = torch.from_numpy(heatmap)[None, None]  # (1, 1, C, S, S)
    return round(float(background_share(heat, mask.double())[0]), 4)


def _top(probabilities: np.ndarray, names: list[str], k: int) -> dict[str, float]:
    order = np.argsort(-probabilities)[:max(1, k)]
    return {names[i]: float(probabilities[i]) for i in order}


def explain_models(ctx: AppContext, entries: list[ModelEntry], image: np.ndarray,
                   mask: np.ndarray | None, target: str | None = PREDICTED,
                   opacity: float = 0.6, top_k: int = 3,
                   display: np.ndarray | None = None) -> PairView:
    """Explain ``image`` with every model in ``entries`` and draw all maps on one scale.

    Args:
        entries: usually two (left, right).
        image: (H, W, 3) uint8; resized to each model's input size.
        mask: (H, W) bool foreground, or None.
        target: a class name, or :data:`PREDICTED` for each model's own top class.
        opacity: overlay opacity in [0, 1].
        top_k: predictions listed per model.
        display: the picture to draw overlays on (default: ``image``, shrunk for display).
    """
    _, warning = masking.describe_mask(mask)
    notices = [warning] if warning else []
    usable = mask if mask is not None and mask.any() and not mask.all() else None
    raw = []
    for entry in entries:
        x = model_tensor(image, entry.input_size)
        m = mask_tensor(usable, entry.input_size) if usable is not None else None
        probabilities, heatmap, explained = _explain_one(ctx, entry, x,
                                                         _target_index(entry, target))
        raw.append((entry, probabilities, heatmap, explained, _share(heatmap, m)))
    scale = viz.shared_scale([viz.relevance_map(r[2]) for r in raw])
    display = _display_image(image if display is None else display,
                             ctx.limits.display_side * 2)
    side = ctx.limits.display_side
    views = []
    for entry, probabilities, heatmap, explained, share in raw:
        names = entry.class_names
        views.append(ModelView(
            label=entry.label, top=_top(probabilities, names, top_k),
            predicted=names[int(probabilities.argmax())], target=names[explained],
            heatmap=viz.heatmap_to_rgb(heatmap, scale, size=(side, side)),
            overlay=viz.overlay(display, heatmap, scale, opacity), share=share,
            probabilities={n: float(p) for n, p in zip(names, probabilities)}))
    preview = viz.mask_overlay(image, usable) if usable is not None else image
    return PairView(views, float(scale), viz.colorbar(scale), preview, _summary(views, scale),
                    notices)


def _display_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """Fit an image for display: shrink big ones (small payloads), enlarge small ones by an
    integer factor, nearest neighbour (so a 64 px model input stays crisp)."""
    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor >= 2:
        whole = int(factor)
        return np.repeat(np.repeat(image, whole, axis=0), whole, axis=1)
    if factor >= 1:
        return image
    return cv2.resize(image, (round(width * factor), round(height * factor)),
                      interpolation=cv2.INTER_AREA)


def _summary(views: list[ModelView], scale: float) -> str:
    """A Markdown table: model, prediction, explained class, background share."""
    lines = ["| model | predicts | explained class | background share |", "|---|---|---|---|"]
    for view in views:
        share = "—" if view.share is None else f"{view.share:.1%}"
        lines.append(f"| {view.label} | {view.predicted} ({view.top[view.predicted]:.0%}) | "
                     f"{view.target} | {share} |")
    lines.append(f"\nShared colour scale: ±{scale:.3g} relevance (red = for the class, "
                 f"blue = against).")
    return "\n".join(lines)


def explain(ctx: AppContext, session: str | None, value: dict | None, left_id: str,
            right_id: str, target: str | None = PREDICTED, opacity: float = 0.6,
            top_k: int = 3, record: dict | None = None, mode: str = editor.ADD) -> PairView:
    """The Explain button: both chosen models on the editor's image and mask.

    Raises:
        InputError: no image, unknown model, a class the model does not have, bad mask.
    """
    image, mask = read_editor(value, record, mode)
    entries = [ctx.store.get(left_id, session), ctx.store.get(right_id, session)]
    return explain_models(ctx, entries, image, mask, target, float(opacity), int(top_k))


def predict_models(entries: list[ModelEntry], images: list[np.ndarray]) -> np.ndarray:
    """Class probabilities of every model for every image, without heatmaps.

    Returns:
        float64 array (models, images, K) — all models must share K.
    """
    out = []
    for entry in entries:
        batch = torch.cat([model_tensor(img, entry.input_size) for img in images])
        with torch.no_grad():
            out.append(torch.softmax(entry.model(batch).double(), dim=1).numpy())
    return np.stack(out)


def class_choices(ctx: AppContext, session: str | None, model_id: str) -> list[str]:
    """The explain-target dropdown choices for a model: "predicted class" then its classes."""
    return [PREDICTED] + ctx.store.get(model_id, session).class_names
