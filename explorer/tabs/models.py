"""The Models tab: load a checkpoint (ours or the ISNet authors' formats) and read model cards
(widgets and wiring only; the work is in :mod:`explorer.handlers.models`)."""

from __future__ import annotations

import gradio as gr

from explorer.components import (
    LOAD_CHECKPOINT_OUTPUTS,
    MODEL_CARDS_OUTPUTS,
    ExplainWidgets,
    model_dropdown_updates,
    ordered,
    session_of,
)
from explorer.errors import guarded
from explorer.handlers import models as hm
from explorer.state import AppContext

CHECKPOINT_TYPES = [".safetensors", ".pt", ".pth", ".ckpt", ".bin"]


def build(ctx: AppContext, w: ExplainWidgets) -> gr.Markdown:
    """Create the Models tab inside the current ``gr.Tab``; returns the cards widget."""
    gr.Markdown("Load a checkpoint to compare it in the other tabs: our `.safetensors` files, "
                "or `state_dict` files of a supported model family (the ISNet authors' and "
                "torchvision layouts; the architecture is read from the weights) "
                "(read with `weights_only=True`: pickles that would run code are refused). "
                "Loaded models are visible to your session only.")
    with gr.Row():
        upload = gr.File(label="Checkpoint file", file_types=CHECKPOINT_TYPES, type="filepath",
                         height=100)
        with gr.Column():
            name = gr.Textbox(label="Display name (optional)")
            load = gr.Button("Load checkpoint", variant="primary")
    loaded_card = gr.Markdown()
    with gr.Row():
        pick = gr.Dropdown(ctx.store.choices(None), label="Download a model's checkpoint")
        download = gr.File(label="Checkpoint", interactive=False)
    refresh = gr.Button("Refresh model cards", size="sm")
    all_cards = gr.Markdown(hm.cards(ctx, None))

    @guarded
    def on_load(checkpoint_file, display_name, request: gr.Request):
        """Load a checkpoint into this session and show its card."""
        session = session_of(request)
        entry = hm.load_model_file(ctx, session, checkpoint_file, display_name)
        left, right, choices = model_dropdown_updates(ctx, session, 3)
        return ordered({"card": hm.model_card(entry), "cards": hm.cards(ctx, session),
                        "left_model": left, "right_model": right, "download_choices": choices},
                       LOAD_CHECKPOINT_OUTPUTS)

    load.click(on_load, [upload, name], [loaded_card, all_cards, w.left, w.right, pick],
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
        """The checkpoint file of a model, for download."""
        if not model:
            return None
        path = hm.model_file(ctx, session_of(request), model)
        if path is None:
            gr.Info("This model has no checkpoint file (an untrained demo model).")
        return path

    pick.input(on_pick, [pick], [download], api_name="download_model")
    return all_cards
