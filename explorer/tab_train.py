"""The Fine-tune tab: widgets and wiring only (work happens in :mod:`explorer.handlers_train`).

One fine-tune runs at a time in the whole app (its own queue, ``concurrency_id="train"``, limit
1), separate from explanations (``concurrency_id="explain"``), so explanations keep flowing while
someone trains. The Stop button sets this session's stop event and cancels the event.
"""

from __future__ import annotations

import threading

import gradio as gr

from explorer import handlers_train as ht
from explorer.feedback import guarded, guarded_stream, session_of
from explorer.state import AppContext, new_record, record_run, runs_table
from explorer.tab_explain import ExplainWidgets


def build(ctx: AppContext, w: ExplainWidgets) -> None:
    """Create the Fine-tune tab inside the current ``gr.Tab`` and wire its events."""
    stops: dict[str, threading.Event] = {}
    gr.Markdown("Fine-tune a copy of a model on a small image + mask set: the bundled samples, "
                "a zip of class folders (`<class>/<name>.png` with masks "
                "`<class>/<name>.mask.png`), "
                "or loose files named `<class>_<name>.png` + `<class>_<name>.mask.png`. "
                "The result joins the model lists (for your session) and can be downloaded.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            base = gr.Dropdown(ctx.store.choices(None), value=ctx.default_pair[0],
                               label="Start from", allow_custom_value=True)
            source = gr.Radio(["samples", "upload"], value="samples", label="Training data")
            files = gr.File(label="Zip or image/mask files", file_count="multiple",
                            type="filepath", height=100)
            variant = gr.Dropdown([(label, key) for key, label in ht.VARIANT_LABELS.items()],
                                  value="selective", label="Training")
            epochs = gr.Slider(1, ctx.limits.max_epochs, value=2, step=1, label="Epochs")
            heat_weight = gr.Slider(0, 1, value=0.7, step=0.05,
                                    label="P: heatmap-loss share (ISNet)")
            decay = gr.Slider(0, 0.99, value=0.9, step=0.01, label="d: GWRP decay (ISNet)")
            learning_rate = gr.Number(value=0.01, label="Learning rate")
            with gr.Row():
                start = gr.Button("Fine-tune", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            status = gr.Markdown("Idle.")
            curves = gr.Plot(label="Losses and background share")
            checkpoint = gr.File(label="Fine-tuned checkpoint", interactive=False)
            gr.Markdown("**Before / after** on one validation image (same colour scale):")
            with gr.Row():
                before = gr.Image(label="Before", type="numpy", format="png", interactive=False,
                                  height=220)
                after = gr.Image(label="After", type="numpy", format="png", interactive=False,
                                 height=220)
            comparison = gr.Markdown()
            record = gr.State(new_record())
            runs = gr.Dataframe(headers=["model", "variant", "epochs", "val. accuracy",
                                         "val. background share"], value=[],
                                label="This session's fine-tunes", interactive=False)

    @guarded_stream
    def on_start(base_id, source_v, paths, variant_v, epochs_v, p, d, lr, session_record,
                 request: gr.Request, progress=gr.Progress()):
        """Fine-tune a copy of a model; yields progress, curves and finally the new model."""
        session = session_of(request) or "anonymous"
        event = stops.setdefault(session, threading.Event())
        event.clear()
        keep = gr.update()
        for update in ht.fine_tune(ctx, session, base_id, source_v, paths, variant_v,
                                   int(epochs_v), float(p), float(d), float(lr or 0.01),
                                   stop=event):
            progress(update.fraction, desc="fine-tuning")
            choices = gr.update(choices=ctx.store.choices(session)) if update.entry else keep
            # after a run, the right-hand model becomes the fine-tuned one (before/after view)
            newest = (gr.update(choices=ctx.store.choices(session), value=update.entry.model_id)
                      if update.entry else keep)
            pair = update.before_after
            if update.entry:
                session_record = record_run(session_record, update.entry, update.checkpoint)
            yield (session_record, runs_table(session_record) if update.entry else keep,
                   update.status, update.figure if update.figure is not None else keep,
                   update.checkpoint or keep,
                   pair.views[0].overlay if pair else keep, pair.views[1].overlay if pair else keep,
                   pair.summary if pair else keep, choices, newest, choices)

    event = start.click(on_start, [base, source, files, variant, epochs, heat_weight, decay,
                                   learning_rate, record],
                        [record, runs, status, curves, checkpoint, before, after, comparison, w.left, w.right,
                         base],
                        api_name="fine_tune", concurrency_id="train", concurrency_limit=1)

    @guarded
    def on_stop(request: gr.Request):
        """Stop this session's fine-tune between two steps (nothing is saved)."""
        session = session_of(request) or "anonymous"
        if session in stops:
            stops[session].set()
        return "Stopping… (the current step finishes first; nothing is saved)"

    stop.click(on_stop, None, [status], api_name="stop_fine_tune", cancels=[event],
               queue=False)
