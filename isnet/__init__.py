"""ISNet engine: LRP heatmaps inside the autograd graph, the heatmap loss, data and training.

The engine never imports Gradio. See README.md ("Where each idea lives") for the layout.
"""

__version__ = "0.1.0"

# --- engine: models, LRP, the ISNet wrapper, the heatmap loss (owner: engine) ---

# --- data: bias injection and datasets (owner: data) ---

# --- training: loops, checkpoints, evaluation (owner: training) ---
