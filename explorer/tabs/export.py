"""Export and session report: widgets and wiring only (the work is in
:mod:`explorer.handlers.export`).

Shown below the tabs, so it serves every view: choose a view (the newest result of the Explain,
Bias lab or Audit tab, the last strategy discovery, or the leaderboard last shown in the Arena
tab, a stress test, a counterfactual sweep or a fine-tune), press Export, then download its
figure (PNG), numbers and settings (JSON) and raw heatmaps (``.npy``); each button stays
disabled until its file exists. "Session report" writes one HTML file with everything this
session has looked at, which opens offline.
"""

from __future__ import annotations

import gradio as gr

from explorer.components import EXPORT_OUTPUTS, ordered, session_of
from explorer.errors import guarded
from explorer.handlers import export as hx
from explorer.state import AppContext

VIEW_CHOICES = [("Explain", "explain"), ("Bias lab", "bias"), ("Audit", "audit"),
                ("Audit strategies", "strategies"), ("Robustness", "robustness"),
                ("Arena", "arena"), ("Stress test", "stress_test"),
                ("Counterfactual", "counterfactual"), ("Fine-tune", "fine_tune")]


def ready_state(path: object):
    """A download button's state: enabled when it holds a file, disabled without one."""
    return gr.update(interactive=bool(path))


def build(ctx: AppContext) -> None:
    """Create the export section (inside the current Blocks) and wire its events."""
    with gr.Accordion("Export this view · session report", open=False, elem_id="export"):
        gr.Markdown("Save what a tab shows: a **figure** with its numbers and colour scale, the "
                    "**numbers** and settings as JSON (model files with SHA-256, LRP settings, "
                    "seeds) and the raw **heatmaps** as `.npy` (`numpy.load`). The session "
                    "report puts everything you looked at into one HTML file that opens "
                    "offline.")
        with gr.Row():
            view = gr.Radio(VIEW_CHOICES, value="explain", label="View", scale=3)
            export = gr.Button("Export", variant="primary", scale=1)
        with gr.Row():
            # disabled until their file exists; updates carry the path, so API clients get it
            figure = gr.DownloadButton("Figure (PNG)", size="sm", interactive=False)
            numbers = gr.DownloadButton("Numbers (JSON)", size="sm", interactive=False)
            heatmaps = gr.DownloadButton("Heatmaps (.npy)", size="sm", interactive=False)
        with gr.Row():
            report = gr.Button("Session report (HTML)")
            report_file = gr.DownloadButton("Download the report", size="sm",
                                            interactive=False)

    @guarded
    def on_export(view_name, request: gr.Request):
        """Export the newest result of a view: figure (PNG), numbers (JSON), heatmaps (.npy)."""
        files = hx.export_view(ctx, session_of(request), hx.ExportRequest(kind=view_name))
        return ordered({"figure": files.figure, "numbers": files.numbers,
                        "heatmaps": files.heatmaps}, EXPORT_OUTPUTS)

    def enable(*paths):
        """Each download button usable once it holds a file (the endpoints above return plain
        paths, so API clients get paths)."""
        return [ready_state(path) for path in paths]

    outputs = dict(zip(EXPORT_OUTPUTS, [figure, numbers, heatmaps], strict=True))
    export.click(on_export, [view], ordered(outputs, EXPORT_OUTPUTS), api_name="export").then(
        enable, [figure, numbers, heatmaps], [figure, numbers, heatmaps],
        api_visibility="private", queue=False)

    @guarded
    def on_report(request: gr.Request):
        """One offline HTML file with everything this session looked at."""
        return hx.session_report(ctx, session_of(request))

    report.click(on_report, None, [report_file], api_name="session_report").then(
        enable, [report_file], [report_file], api_visibility="private", queue=False)
