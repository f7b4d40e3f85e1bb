"""What event functions hand to Gradio and read from it, without a widget: the names of each
endpoint's outputs in order, the editor's values as one request, the session of a request.

Outputs travel by name: an event function builds ``{name: value}`` and :func:`ordered` lays it
out in the order of the endpoint's ``*_OUTPUTS`` names, which is also the order of its output
widgets and of what an API client receives (``gr.State`` outputs are not sent to clients and are
not in these lists). Tests zip a client's answer with the same names and read values by name.
(:mod:`explorer.components` re-exports all of it for the tabs.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gradio as gr

from explorer.handlers.explain_views import ModelView, PairView
from explorer.media.editor import EditorInput
from explorer.sessions import session_key
from explorer.state import AppContext

SIDE_FIELDS = ("top", "overlay", "heatmap", "share")


def side_names(prefix: str) -> tuple[str, ...]:
    """Output names of one model column: ``<prefix>_top``, ``_overlay``, ``_heatmap``,
    ``_share``."""
    return tuple(f"{prefix}_{name}" for name in SIDE_FIELDS)


PAIR_OUTPUTS = side_names("left") + side_names("right")
EXPLAIN_OUTPUTS = PAIR_OUTPUTS + ("colorbar", "summary", "mask_preview", "notices")
INJECT_BIAS_OUTPUTS = ("biased", "comparison") + PAIR_OUTPUTS + ("colorbar", "summary")
STRESS_TEST_OUTPUTS = ("plot", "table")
COUNTERFACTUAL_OUTPUTS = ("plot", "summary")
FINE_TUNE_OUTPUTS = ("runs", "status", "curves", "checkpoint", "before", "after", "comparison",
                     "left_model", "right_model", "base_model")
LOAD_SAMPLE_OUTPUTS = ("editor", "true_class", "upload", "notices")
LOAD_IMAGE_OUTPUTS = ("editor", "true_class", "sample", "notices")
"""A new image is the one current image: loading one clears what named the old one (the
other source, the true class, the domain notice)."""
LOAD_CHECKPOINT_OUTPUTS = ("card", "cards", "left_model", "right_model", "download_choices")
MODEL_CARDS_OUTPUTS = ("cards", "download_choices")
COMPARE_MODES_OUTPUTS = ("corrected", "authors", "difference", "summary")
ARENA_OUTPUTS = ("table", "plot", "summary")
ARENA_LOAD_OUTPUTS = ("card", "left_model", "right_model")
AUDIT_OUTPUTS = ("status", "summary", "histogram", "gallery", "rank_by", "class_name",
                 "cluster_model")
EXPORT_OUTPUTS = ("figure", "numbers", "heatmaps")


def ordered(values: Mapping[str, Any], names: Sequence[str]) -> list:
    """``values`` laid out in the order of ``names`` (every name must be present)."""
    missing = [name for name in names if name not in values]
    if missing:
        raise KeyError(f"no value for the outputs {missing}")
    return [values[name] for name in names]


def side_values(prefix: str, view: ModelView) -> dict[str, Any]:
    """One column's values by output name."""
    return dict(zip(side_names(prefix),
                    (view.top, view.overlay, view.heatmap, view.share), strict=True))


def pair_values(pair: PairView) -> dict[str, Any]:
    """Both columns' values by output name (:data:`PAIR_OUTPUTS`)."""
    return {**side_values("left", pair.left), **side_values("right", pair.right)}


CLEARED_NAMES = (None, None, "")
"""The values of :meth:`explorer.components.ExplainWidgets.image_names` for an image from
elsewhere (the sample dropdown, the upload field, the domain notice)."""


def editor_input(value: dict | None, brush_mode: str, record: dict | None) -> EditorInput:
    """The editor's widget values as one named :class:`EditorInput`."""
    return EditorInput(value, record, brush_mode)


def session_of(request: gr.Request | None) -> str | None:
    """The session key of a request: its session hash, joined to the login under ``--auth``
    (:func:`explorer.sessions.session_key`; None outside a request, e.g. direct calls in tests)."""
    if request is None:
        return None
    return session_key(getattr(request, "session_hash", None), getattr(request, "username", None))


def model_dropdown_updates(ctx: AppContext, session: str | None, n: int = 2) -> list:
    """``gr.update`` for each of ``n`` model dropdowns with this session's current choices."""
    return [gr.update(choices=ctx.store.choices(session)) for _ in range(n)]
