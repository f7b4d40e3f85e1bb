"""The Models tab: load a checkpoint (ours, the ISNet authors', or a torchvision state dict of any
supported family), override what the file does not say, switch between the corrected and the
authors' LRP, and read model cards (widgets and wiring only; the work is in
:mod:`explorer.handlers.models`, :mod:`explorer.handlers.lrp_compare` and
:mod:`explorer.handlers.sanity`: the model-randomisation test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from explorer.catalog import bundled_checkpoints
from explorer.components import (
    ExplainWidgets,
    lrp_mode_radio,
    with_context,
)
from explorer.errors import guarded
from explorer.handlers import models as hm
from explorer.handlers import models_events as events
from explorer.handlers import sanity
from explorer.handlers.lrp_modes import AUTHORS, CORRECTED
from explorer.handlers.spellings import old_labels
from explorer.limits import readable_size
from explorer.media.widgets import accepting_old_spellings
from explorer.state import AppContext

CHECKPOINT_TYPES = [".safetensors", ".pt", ".pth", ".ckpt", ".bin"]


def build(ctx: AppContext, w: ExplainWidgets) -> gr.Markdown:
    """Create the Models tab inside the current ``gr.Tab``; returns the cards widget."""
    gr.Markdown("Load a checkpoint to compare it in the other tabs: our `.safetensors` files, "
                "the ISNet authors' files, or a `state_dict` of a DenseNet, ResNet or VGG "
                "(torchvision layout; the architecture is read from the weights; a 1000-class "
                "file gets ImageNet's classes, 224 px input and normalisation). Files are read "
                "with `weights_only=True`, up to "
                f"{readable_size(ctx.limits.max_checkpoint_size)}. Loaded models are visible to "
                "your session only.")
    with gr.Row():
        upload = gr.File(label="Checkpoint file", file_types=CHECKPOINT_TYPES, type="filepath",
                         height=140, elem_id="checkpoint-upload")
        with gr.Column():
            bundled = gr.Dropdown(bundled_checkpoints(ctx.bundled_dir), value=None,
                                  label="…or a bundled checkpoint (assets/checkpoints)")
            disk = gr.Textbox(label="…or a path on this machine (local, unshared app only)",
                              visible=ctx.limits.local_paths)
            name = gr.Textbox(label="Display name (optional)")
    with gr.Accordion("Overrides (input size, normalisation, class names)", open=False), \
            gr.Row():
        size = gr.Number(None, label="Input size (px)", precision=0, minimum=8, maximum=1024)
        mean = gr.Textbox(label="Mean per channel", placeholder="0.485, 0.456, 0.406 "
                          "(none = raw [0, 1])")
        std = gr.Textbox(label="Std per channel", placeholder="0.229, 0.224, 0.225")
        class_file = gr.File(label="Class names (.txt, one per line)", file_types=[".txt"],
                             type="filepath", height=140)
    load = gr.Button("Load checkpoint", variant="primary")
    loaded_card = gr.Markdown(elem_id="loaded-card")
    with gr.Row():
        # min widths: on a phone the two stack instead of squeezing the model name
        pick = gr.Dropdown(ctx.store.choices(None), label="Model (download, override, LRP)",
                           min_width=320)
        download = gr.File(label="Checkpoint", interactive=False, min_width=320)
    apply = gr.Button("Apply the overrides to this model", size="sm")
    (mode, compare, corrected, authors, difference, compare_summary, test_image, randomise,
     randomised, randomised_summary) = _lrp_and_sanity(ctx).values()
    refresh = gr.Button("Refresh model cards", size="sm")
    all_cards = gr.Markdown(hm.cards(ctx, None))

    load_inputs = [upload, name, disk, size, mean, std, class_file, bundled]

    # An error belongs to the action that failed: the button's own event writes only the loaded
    # model's card (a refusal marks that card alone); the cards and every model list follow
    # only on success. The API keeps one call with every output (a hidden trigger).
    lists = with_context(events.on_model_lists, ctx)
    load.click(_event(events.on_load_card, ctx), load_inputs, [loaded_card],
               api_visibility="private").success(
        lists, None, [all_cards, w.left, w.right, pick], api_visibility="private")
    api_load = gr.Button(visible=False)
    api_load.click(_event(events.on_load, ctx), load_inputs,
                   [loaded_card, all_cards, w.left, w.right, pick], api_name="load_checkpoint")
    refresh.click(_event(events.on_cards, ctx), None, [all_cards, pick], api_name="model_cards")
    pick.input(_event(events.on_pick, ctx), [pick], [download, mode], api_name="download_model")
    apply.click(_event(events.on_apply, ctx), [pick, size, mean, std, class_file], [loaded_card],
                api_name="override_model").success(
        lists, None, [all_cards, w.left, w.right, pick], api_visibility="private")
    mode.input(_event(events.on_mode, ctx), [pick, mode], [loaded_card], api_name="set_lrp_mode")
    compare.click(_event(events.on_compare, ctx), [pick] + w.editor_inputs(),
                  [corrected, authors, difference, compare_summary], api_name="compare_lrp")
    randomise.click(_event(events.on_randomise, ctx), [pick, test_image] + w.editor_inputs(),
                    [randomised, randomised_summary], api_name="randomisation_test")
    return all_cards


def _event(fn: Callable[..., Any], ctx: AppContext) -> Callable[..., Any]:
    """An event function of :mod:`explorer.handlers.models_events` as Gradio runs it: bound to
    ``ctx``, every failure shown to the user."""
    return guarded(with_context(fn, ctx))


def _lrp_and_sanity(ctx: AppContext) -> dict[str, Any]:
    """The LRP-mode comparison and the randomisation test of the picked model (widgets by
    name)."""
    gr.Markdown("#### LRP: corrected vs the authors' block as published\nThe authors' "
                "checkpoints were trained against their LRP block, errors included; files in "
                "their format open in that mode. The comparison uses the Explain tab's image.")
    with gr.Row():
        mode = lrp_mode_radio((CORRECTED, AUTHORS), CORRECTED, "This model's LRP")
        compare = gr.Button("Compare both LRP modes", size="sm", min_width=320)
    with gr.Row():
        corrected = gr.Image(label="Corrected LRP", type="numpy", interactive=False, height=220)
        authors = gr.Image(label="Authors' LRP (as published)", type="numpy", interactive=False,
                           height=220)
        difference = gr.Image(label="Difference (corrected − authors'), same scale",
                              type="numpy", interactive=False, height=220)
    compare_summary = gr.Markdown()
    gr.Markdown("#### Sanity check: model randomisation\nDo the maps depend on what the model "
                "learned? The picked model's layers are made random from the top, stage by "
                "stage, and the map of one image is compared with the trained model's "
                "(Adebayo et al., 2018).")
    with gr.Row():
        test_image = accepting_old_spellings(gr.Dropdown(
            [sanity.EXPLAIN_IMAGE_CHOICE] + [(s.name, s.name) for s in ctx.samples],
            value=ctx.samples[0].name if ctx.samples else None, label="Image", min_width=320),
            old_labels([sanity.EXPLAIN_IMAGE_CHOICE]), "the test image")
        randomise = gr.Button("Run the randomisation test", size="sm", min_width=320)
    randomised = gr.Plot(label="Similarity to the trained model's map, per stage")
    randomised_summary = gr.Markdown()
    return dict(mode=mode, compare=compare, corrected=corrected, authors=authors,
                difference=difference, compare_summary=compare_summary, test_image=test_image,
                randomise=randomise, randomised=randomised, randomised_summary=randomised_summary)
