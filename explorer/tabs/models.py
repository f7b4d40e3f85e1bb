"""The Models tab: load a checkpoint (ours, the ISNet authors', or a torchvision state dict of any
supported family), override what the file does not say, switch between the corrected and the
authors' LRP, and read model cards (widgets and wiring only; the work is in
:mod:`explorer.handlers.models`, :mod:`explorer.handlers.lrp_compare` and
:mod:`explorer.handlers.sanity`: the model-randomisation test)."""

from __future__ import annotations

import gradio as gr

from explorer.catalog import bundled_checkpoints
from explorer.components import (
    COMPARE_MODES_OUTPUTS,
    LOAD_CHECKPOINT_OUTPUTS,
    MODEL_CARDS_OUTPUTS,
    ExplainWidgets,
    editor_input,
    lrp_mode_radio,
    model_dropdown_updates,
    ordered,
    session_of,
)
from explorer.errors import guarded
from explorer.handlers import lrp_compare, sanity
from explorer.handlers import models as hm
from explorer.handlers.lrp_modes import AUTHORS, CORRECTED
from explorer.handlers.spellings import old_labels
from explorer.limits import readable_size
from explorer.media.widgets import accepting_old_spellings
from explorer.state import AppContext

CHECKPOINT_TYPES = [".safetensors", ".pt", ".pth", ".ckpt", ".bin"]


def _overrides(size, mean, std, class_file) -> hm.Overrides:
    return hm.Overrides(int(size) if size else None, mean or "", std or "", class_file or None)


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
    refresh = gr.Button("Refresh model cards", size="sm")
    all_cards = gr.Markdown(hm.cards(ctx, None))

    load_inputs = [upload, name, disk, size, mean, std, class_file, bundled]

    @guarded
    def on_load(checkpoint_file, display_name, disk_path=None, input_size_px=None, norm_mean=None,
                norm_std=None, class_names_file=None, bundled_checkpoint=None,
                request: gr.Request = None):
        """Load a checkpoint (upload, bundled file or local path) into this session."""
        session = session_of(request)
        entry = hm.load_model(ctx, session, hm.LoadRequest(
            checkpoint_file, disk_path, display_name,
            _overrides(input_size_px, norm_mean, norm_std, class_names_file),
            bundled_checkpoint or None))
        left, right, choices = model_dropdown_updates(ctx, session, 3)
        return ordered({"card": hm.model_card(entry), "cards": hm.cards(ctx, session),
                        "left_model": left, "right_model": right, "download_choices": choices},
                       LOAD_CHECKPOINT_OUTPUTS)

    # An error belongs to the action that failed: the button's own event writes only the loaded
    # model's card (a refusal marks that card alone); the cards and every model list follow
    # only on success. The API keeps one call with every output (a hidden trigger).
    def on_load_card(checkpoint_file, display_name, disk_path=None, input_size_px=None,
                     norm_mean=None, norm_std=None, class_names_file=None,
                     bundled_checkpoint=None, request: gr.Request = None):
        """The card of the checkpoint just loaded (the first output of ``on_load``)."""
        return on_load(checkpoint_file, display_name, disk_path, input_size_px, norm_mean,
                       norm_std, class_names_file, bundled_checkpoint, request=request)[0]

    def on_model_lists(request: gr.Request):
        """The cards and every model list, after a successful load or override."""
        session = session_of(request)
        left, right, choices = model_dropdown_updates(ctx, session, 3)
        return hm.cards(ctx, session), left, right, choices

    load.click(on_load_card, load_inputs, [loaded_card], api_visibility="private").success(
        on_model_lists, None, [all_cards, w.left, w.right, pick], api_visibility="private")
    api_load = gr.Button(visible=False)
    api_load.click(on_load, load_inputs, [loaded_card, all_cards, w.left, w.right, pick],
                   api_name="load_checkpoint")

    @guarded
    def on_cards(request: gr.Request):
        """Cards of every model this session can use."""
        session = session_of(request)
        return ordered({"cards": hm.cards(ctx, session),
                        "download_choices": model_dropdown_updates(ctx, session, 1)[0]},
                       MODEL_CARDS_OUTPUTS)

    refresh.click(on_cards, None, [all_cards, pick], api_name="model_cards")

    @guarded
    def on_pick(model, request: gr.Request):
        """The checkpoint file of a model, for download, and its LRP mode."""
        if not model:
            return None, gr.update()
        session = session_of(request)
        path = hm.model_file(ctx, session, model)
        if path is None:
            gr.Info("This model has no checkpoint file (an untrained demo model).")
        return path, ctx.store.get(model, session).lrp_mode

    pick.input(on_pick, [pick], [download, mode], api_name="download_model")

    @guarded
    def on_apply(model, input_size_px, norm_mean, norm_std, class_names_file,
                 request: gr.Request):
        """Apply input size, normalisation and class-name overrides to one of your models."""
        session = session_of(request)
        entry = hm.override_model(ctx, session, model, _overrides(
            input_size_px, norm_mean, norm_std, class_names_file))
        return hm.model_card(entry)

    apply.click(on_apply, [pick, size, mean, std, class_file], [loaded_card],
                api_name="override_model").success(
        on_model_lists, None, [all_cards, w.left, w.right, pick], api_visibility="private")

    @guarded
    def on_mode(model, lrp_mode, request: gr.Request):
        """Make the corrected or the authors' LRP this model's own mode."""
        if not model:
            return gr.update()
        return hm.model_card(lrp_compare.set_mode(ctx, session_of(request), model, lrp_mode))

    mode.input(on_mode, [pick, mode], [loaded_card], api_name="set_lrp_mode")

    @guarded
    def on_compare(model, image_and_mask, brush_strokes, editor_record, request: gr.Request):
        """Corrected and authors' heatmaps of the picked model on the Explain tab's image."""
        image, _ = editor_input(image_and_mask, brush_strokes, editor_record).read()
        result = lrp_compare.compare_modes(ctx, session_of(request), model, image)
        return ordered({"corrected": result.corrected, "authors": result.authors,
                        "difference": result.difference, "summary": result.summary},
                       COMPARE_MODES_OUTPUTS)

    compare.click(on_compare, [pick] + w.editor_inputs(),
                  [corrected, authors, difference, compare_summary], api_name="compare_lrp")

    @guarded
    def on_randomise(model, image_choice, image_and_mask, brush_strokes, editor_record,
                     request: gr.Request):
        """The cascading model-randomisation test of the picked model on the chosen image."""
        image = sanity.chosen_image(ctx, image_choice,
                                    editor_input(image_and_mask, brush_strokes, editor_record))
        view = sanity.randomisation_test(ctx, session_of(request), model, image)
        return view.figure, view.summary

    randomise.click(on_randomise, [pick, test_image] + w.editor_inputs(),
                    [randomised, randomised_summary], api_name="randomisation_test")
    return all_cards
