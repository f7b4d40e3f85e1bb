"""The Models tab: load a checkpoint (ours or the ISNet authors' formats) and read model cards."""

from __future__ import annotations

import gradio as gr

from explorer import handlers_models as hm
from explorer.feedback import guarded, session_of
from explorer.state import AppContext
from explorer.tab_explain import ExplainWidgets

CHECKPOINT_TYPES = [".safetensors", ".pt", ".pth", ".ckpt", ".bin"]


def model_dropdown_updates(ctx: AppContext, session: str | None, n: int = 2) -> list:
    """``gr.update`` for each model dropdown with this session's current choices."""
    return [gr.update(choices=ctx.store.choices(session)) for _ in range(n)]


def build(ctx: AppContext, w: ExplainWidgets) -> gr.Markdown:
    """Create the Models tab inside the current ``gr.Tab``; returns the cards widget."""
    gr.Markdown("Load a checkpoint to compare it in the other tabs: our `.safetensors` files, "
                "or the ISNet authors' / torchvision DenseNet `state_dict` files "
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
    def on_load(path, label, request: gr.Request):
        """Load a checkpoint into this session and show its card."""
        session = session_of(request)
        entry = hm.load_model_file(ctx, session, path, label)
        return [hm.model_card(entry), hm.cards(ctx, session)] + \
            model_dropdown_updates(ctx, session, 3)

    load.click(on_load, [upload, name], [loaded_card, all_cards, w.left, w.right, pick],
               api_name="load_checkpoint")

    @guarded
    def on_cards(request: gr.Request):
        """Cards of every model this session can use."""
        session = session_of(request)
        return [hm.cards(ctx, session)] + model_dropdown_updates(ctx, session, 1)

    refresh.click(on_cards, None, [all_cards, pick], api_name="model_cards")

    @guarded
    def on_pick(model_id, request: gr.Request):
        """The checkpoint file of a model, for download."""
        if not model_id:
            return None
        path = hm.model_file(ctx, session_of(request), model_id)
        if path is None:
            gr.Info("This model has no checkpoint file (an untrained demo model).")
        return path

    pick.input(on_pick, [pick], [download], api_name="download_model")
    return all_cards
