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
/* tables of numbers in text (summaries): words and numbers wrap between words, never inside
   one ("predict|s", "Trous|er"); a table wider than its box scrolls sideways; long model names
   ("standard_densenet121") in the first column may break anywhere rather than run out */
.table-text { overflow-x: auto; }
.table-text th, .table-text td { word-break: normal !important; overflow-wrap: normal !important; }
.table-text td:first-child, fieldset label span { overflow-wrap: anywhere !important; }
.table-text table { font-size: 0.9em; }
#audit-summary td:not(:first-child), #audit-summary th { white-space: nowrap; }
#audit-summary table { font-size: 0.85em; }
/* an upload block's label takes its own line above the drop zone (Gradio floats it over the
   zone, where a long label covered the upload icon) */
.block:has(> .upload-container) > label.float { position: static !important;
                                                margin: 4px 0 0 4px; }
.caption p { font-size: 0.85em; opacity: 0.8; margin: 0.1em 0 0.6em 0; }
/* Gallery captions sit below their picture, whole, never on it (Gradio draws them over the
   picture's lower corner, where a mark or the relevance it draws may be). */
.thumbnail-item.thumbnail-lg { aspect-ratio: auto !important; height: auto !important;
                               display: flex !important; flex-direction: column; }
.thumbnail-item.thumbnail-lg > img { aspect-ratio: 1 / 1; height: auto !important;
                                     flex: none; }
.thumbnail-item.thumbnail-lg .caption-label {
    position: static !important; max-width: none !important; border: none !important;
    border-radius: 0 !important; background: transparent !important; white-space: normal !important;
    overflow-wrap: anywhere; text-align: center !important; padding: 2px 4px !important;
    line-height: 1.25; }
.grid-container { grid-template-rows: none !important; grid-auto-rows: auto !important; }
/* the samples: five to a row in the left column (Gradio's 100 px minimum overflows it), and
   no empty space under them (Gradio keeps a 450 px minimum even at height="auto") */
#sample-gallery .grid-container {
    grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important; }
#sample-gallery .grid-wrap, #audit-strategies .grid-wrap {
    min-height: 0 !important; max-height: none !important; }
/* the arena's headers break between words, never inside one ("Acc. unbias|ed") */
#arena-table th, #arena-table th * {
    word-break: normal !important; overflow-wrap: normal !important;
    font-family: ui-sans-serif, system-ui, sans-serif; font-size: 0.95em; }
/* the two models' columns stay side by side at every width (on a phone each is half as wide,
   so their maps can still be compared at a glance; Gradio would stack them) */
.model-pair { flex-wrap: nowrap !important; gap: 6px !important; }
.model-pair > .column { min-width: 0 !important; flex: 1 1 0 !important; }
@media (max-width: 600px) {
  .gradio-container { padding: 4px !important; }
  .tab-help p { font-size: 0.9em; }
  .wide-only { display: none !important; }
  .table-text table { font-size: 0.72em !important; }
  #audit-summary th { white-space: normal !important; }
  .table-text td, .table-text th { padding: 4px !important; }
  .table-text td:first-child { min-width: 8em; }
}
"""
