"""The Fine-tune tab: widgets and wiring only (the work is in :mod:`explorer.handlers.train`).

One fine-tune runs at a time in the whole app (its own queue, ``concurrency_id="train"``, limit
1), separate from explanations (``concurrency_id="explain"``), so explanations keep flowing while
someone trains. The Stop button sets this session's stop event and does not cancel the event:
the run itself ends (at once while its worker starts, else after the current step) and reports
"Stopped". A Stop pressed while the session's fine-tune waits in the queue stops it as soon as it
starts; with nothing queued or running it does nothing. A new run clears the previous run's
checkpoint and before/after pictures at its first update.
"""

from __future__ import annotations

import threading

import gradio as gr

from explorer.components import FINE_TUNE_OUTPUTS, ExplainWidgets, ordered, session_of
from explorer.errors import guarded, guarded_stream
from explorer.handlers import train as ht
from explorer.media.widgets import output_image
from explorer.state import AppContext


def build(ctx: AppContext, w: ExplainWidgets) -> None:
    """Create the Fine-tune tab inside the current ``gr.Tab`` and wire its events."""
    stops: dict[str, threading.Event] = {}
    running: set[str] = set()  # sessions whose fine-tune runs now
    pending: set[str] = set()  # sessions that pressed Stop while their fine-tune was queued
    demo = gr.context.Context.root_block  # its queue tells whether a session's run waits
    gr.Markdown("Fine-tune a copy of a model on a small image + mask set: the bundled samples, "
                "a zip of class folders (`<class>/<name>.png` with masks "
                "`<class>/<name>.mask.png`), "
                "or loose files named `<class>_<name>.png` + `<class>_<name>.mask.png`. "
                "Folders match the model's classes whatever their case or separators "
                "(`t-shirt_top` is *T-shirt/top*; a `classes.csv` of `folder,class` rows maps "
                "the rest), so the model keeps its head; a set that matches only in part is "
                "refused. *Samples* is a handful of images (the status says the split): a "
                "smoke test, not a measure. "
                "The copy keeps its base model's LRP settings and heatmap-loss shape (input "
                "rule, ε, foreground band). "
                "The result joins the model lists (for your session) and can be downloaded. "
                f"Your fine-tuned models and files are removed when you close the page or after "
                f"{ctx.limits.session_ttl_s / 60:g} minutes without use.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            base = gr.Dropdown(ctx.store.choices(None), value=ctx.default_pair[0],
                               label="Start from", allow_custom_value=True)
            source = gr.Radio(["samples", "upload"], value="samples", label="Training data")
            files = gr.File(label="Zip or image/mask files", file_count="multiple",
                            type="filepath", height=140)
            method = gr.Dropdown([(label, key) for key, label in ht.METHOD_LABELS.items()],
                                 value="selective", label="Training method",
                                 info="standard: cross-entropy only; ISNet: also a loss on the "
                                      "heatmaps' background relevance (selective = one map, "
                                      "fast; all = one per class; stochastic = one random)")
            epochs = gr.Slider(1, ctx.limits.max_epochs, value=2, step=1, label="Epochs")
            # the main action before the finer settings (at 420 px it would sit ~1,900 px down)
            with gr.Row():
                start = gr.Button("Fine-tune", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            status = gr.Markdown("Idle.")  # beside the buttons, at any width
            gr.Markdown("Finer settings (ISNet methods use P, d and the mask margin):",
                        elem_classes=["caption"])
            heat_weight = gr.Slider(0, 1, value=0.7, step=0.05,
                                    label="P: heatmap-loss share (ISNet)",
                                    info="loss = (1 − P)·classification + P·heatmap; higher P "
                                         "pushes relevance off the background harder")
            decay = gr.Slider(0, 0.99, value=0.9, step=0.01, label="d: GWRP decay (ISNet)",
                              info="how the background term weighs its largest values: 0 = "
                                   "only the largest, near 1 = close to a plain mean")
            background_tint = gr.Slider(0, 1, value=0.0, step=0.05,
                                        label="Random background colours",
                                        info="share of images per step whose background gets "
                                             "a random colour, against whole-background "
                                             "shortcuts the heatmap loss cannot see (0 = off; "
                                             "measured effect in docs/training-isnet.md)")
            mask_margin = gr.Slider(0, 8, value=0, step=1, label="Mask margin, pixels (ISNet)",
                                    info="grow each mask by this much before the heatmap loss, "
                                         "so relevance along the object's edge (and a loose or "
                                         "tight mask) is not penalised; 0 = the paper's loss")
            learning_rate = gr.Number(value=0.01, label="Learning rate")
        with gr.Column(scale=2):
            curves = gr.Plot(label="Losses and background share")
            checkpoint = gr.File(label="Fine-tuned checkpoint", interactive=False)
            gr.Markdown("**Before / after** on one validation image (same colour scale):")
            with gr.Row():
                before = output_image(label="Before", type="numpy", format="png", interactive=False,
                                  height=220)
                after = output_image(label="After", type="numpy", format="png", interactive=False,
                                 height=220)
            comparison = gr.Markdown(elem_classes=["table-text"])
            janitor = ctx.sessions  # a plain function below: Gradio deep-copies a bound method
            record = gr.State(ht.new_record(), time_to_live=ctx.limits.session_ttl_s,
                              delete_callback=lambda value: janitor.forget_runs(value))
            runs = gr.Dataframe(headers=["model", "method", "epochs", "val. accuracy",
                                         "val. background share"], value=[],
                                label="This session's fine-tunes", interactive=False)
            # what a finished run offers the model lists, in hidden stand-ins: a failed run
            # marks only these (invisible), never Explain's pickers; those follow on success
            offered = {name: gr.Dropdown(visible=False, allow_custom_value=True)
                       for name in ("left_model", "right_model", "base_model")}

    @guarded_stream
    def on_start(base_model, training_data, uploaded_files, training_method, epochs_count,
                 heatmap_loss_share, gwrp_decay, learning_rate_value, session_record,
                 random_background_share=0.0, margin_pixels=0, request: gr.Request = None,
                 progress=gr.Progress()):
        """Fine-tune a copy of a model; yields progress, curves and finally the new model."""
        session = session_of(request) or "anonymous"
        event = stops.setdefault(session, threading.Event())
        if session in pending:  # Stop was pressed while this run waited in the queue
            pending.discard(session)
        else:
            event.clear()
        fine_tune = ht.FineTuneRequest(
            base_id=base_model, source=training_data, paths=tuple(uploaded_files or ()),
            method=training_method, epochs=epochs_count, heat_weight=heatmap_loss_share,
            decay=gwrp_decay, learning_rate=learning_rate_value,
            background_tint=random_background_share,  # checked, never replaced
            mask_margin=margin_pixels)
        running.add(session)
        try:
            yield from _updates(ht.fine_tune(ctx, session, fine_tune, stop=event), session_record,
                                session, progress)
        finally:
            running.discard(session)

    def _updates(updates, session_record, session, progress):
        """The outputs of each update, in :data:`FINE_TUNE_OUTPUTS` order after the record."""
        keep, first = gr.update(), True
        for update in updates:
            progress(update.fraction, desc="fine-tuning")
            values = dict.fromkeys(FINE_TUNE_OUTPUTS, keep)
            values["status"] = update.status
            if first:  # the previous run's results must not pass for this run's
                values.update(checkpoint=None, before=None, after=None, comparison="",
                              right_model=gr.update(value=None))  # no new model yet
                first = False
            if update.figure is not None:
                values["curves"] = update.figure
            if update.entry:
                session_record = ht.record_run(session_record, update.entry, update.checkpoint)
                choices = gr.update(choices=ctx.store.choices(session))
                # after a run, the right-hand model becomes the fine-tuned one (before/after)
                values.update(runs=ht.runs_table(session_record), checkpoint=update.checkpoint,
                              left_model=choices, base_model=choices,
                              right_model=gr.update(choices=ctx.store.choices(session),
                                                    value=update.entry.model_id))
            if update.before_after:
                pair = update.before_after
                values.update(before=pair.left.overlay, after=pair.right.overlay,
                              comparison=pair.summary)
            yield [session_record] + ordered(values, FINE_TUNE_OUTPUTS)

    outputs = dict(zip(FINE_TUNE_OUTPUTS, [runs, status, curves, checkpoint, before, after,
                                           comparison, *offered.values()], strict=True))

    def on_model_lists(new_model, request: gr.Request):
        """Every model list after a run that did not fail; the right-hand model becomes the
        fine-tuned one when the run made one (before/after)."""
        choices = ctx.store.choices(session_of(request) or "anonymous")
        right = gr.update(choices=choices, value=new_model) if new_model else \
            gr.update(choices=choices)
        return gr.update(choices=choices), right, gr.update(choices=choices)

    # An error belongs to the action that failed (issue 30, defect 4): the run's outputs are
    # its own widgets and the stand-ins; the API answer keeps FINE_TUNE_OUTPUTS.
    start.click(on_start, [base, source, files, method, epochs, heat_weight, decay,
                           learning_rate, record, background_tint, mask_margin],
                [record] + ordered(outputs, FINE_TUNE_OUTPUTS),
                api_name="fine_tune", concurrency_id="train", concurrency_limit=1).success(
        on_model_lists, [offered["right_model"]], [w.left, w.right, base],
        api_visibility="private")

    def queued(request: gr.Request) -> bool:
        """Whether this request's session has a fine-tune waiting in the queue."""
        events = getattr(getattr(demo, "_queue", None), "event_ids_to_events", {}).values()
        return any(getattr(e.fn, "api_name", None) == "fine_tune"
                   and (e.session_hash, e.username) == (request.session_hash, request.username)
                   for e in list(events))

    @guarded
    def on_stop(request: gr.Request):
        """Stop this session's fine-tune (nothing is saved); the run reports "Stopped"."""
        session = session_of(request) or "anonymous"
        if session not in running:
            if not queued(request):
                return gr.update()  # nothing to stop: the status stays as it is
            pending.add(session)
        stops.setdefault(session, threading.Event()).set()
        return "Stopping… (the current step finishes first; nothing is saved)"

    # no cancels=[event]: cancelling would kill the run before it could report "Stopped"
    stop.click(on_stop, None, [status], api_name="stop_fine_tune", queue=False)
