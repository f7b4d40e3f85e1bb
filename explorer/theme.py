"""The explorer's look: a Gradio theme and a little CSS, passed to ``launch()`` (Gradio 6 moved
``theme``/``css`` from ``gr.Blocks`` to ``launch``)."""

from __future__ import annotations

import gradio as gr

# System fonts only: the app must look right offline (the default theme fonts come from Google).
THEME = gr.themes.Soft(primary_hue="red", secondary_hue="blue",
                       font=["ui-sans-serif", "system-ui", "sans-serif"],
                       font_mono=["ui-monospace", "monospace"])

CSS = """
#notice { border-left: 4px solid #e8a33d; padding: 0.4em 0.8em;
          background: color-mix(in srgb, #e8a33d 14%, transparent); }
#explain-summary table { font-size: 0.9em; }
#audit-summary td:not(:first-child), #audit-summary th { white-space: nowrap; }
#audit-summary table { font-size: 0.85em; }
.caption p { font-size: 0.85em; opacity: 0.8; margin: 0.1em 0 0.6em 0; }
@media (max-width: 600px) {
  .gradio-container { padding: 4px !important; }
  .tab-help p { font-size: 0.9em; }
  .wide-only { display: none !important; }
}
"""
