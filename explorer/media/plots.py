"""Matplotlib figures for the explorer: the bias stress test, the counterfactual bars, the
fine-tuning curves and the model-randomisation test.

Figures are built with ``matplotlib.figure.Figure`` directly (no ``pyplot``), so nothing is
registered in a global figure manager and concurrent sessions cannot draw into each other's
figures. Each function returns the figure; ``gr.Plot`` displays it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402

COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")


def stress_test_figure(values: Sequence[float], curves: Mapping[str, Sequence[float]],
                       parameter: str, true_class: str, mark_class: str,
                       mark_curves: Mapping[str, Sequence[float]] | None = None) -> Figure:
    """Probability of the true class (solid) and of the mark's class (dashed) as the mark grows.

    Args:
        values: the swept parameter values (x axis).
        curves: model label → P(true class) at each value.
        parameter: x-axis name ("mark opacity" or "mark size").
        true_class: name of the image's class.
        mark_class: name of the class the mark stands for.
        mark_curves: model label → P(mark class) at each value (optional).
    """
    figure = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for colour, (label, probabilities) in zip(COLOURS, curves.items(), strict=False):
        axes.plot(values, probabilities, "-o", color=colour, label=f"{label}: P({true_class})")
        if mark_curves and label in mark_curves and mark_class != true_class:
            axes.plot(values, mark_curves[label], "--", color=colour, alpha=0.7,
                      label=f"{label}: P({mark_class})")
    axes.set_xlabel(parameter)
    axes.set_ylabel("probability")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.set_title(f"Stress test: mark of '{mark_class}' on an image of '{true_class}'")
    axes.legend(fontsize=8, loc="best")
    return figure


def counterfactual_figure(class_names: Sequence[str], probabilities: Mapping[str, Sequence[float]],
                          true_class: str) -> Figure:
    """Grouped bars: for each class A, each model's probability of A after A's mark is added.

    Args:
        class_names: the classes A whose marks were tried (x axis).
        probabilities: model label → P(A | image with A's mark) per class.
        true_class: the image's class B (its bar is hatched: there the mark agrees).
    """
    figure = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    count = max(1, len(probabilities))
    width = 0.8 / count
    positions = range(len(class_names))
    series = zip(COLOURS, probabilities.items(), strict=False)  # at most len(COLOURS) models
    for index, (colour, (label, values)) in enumerate(series):
        offsets = [p - 0.4 + width * (index + 0.5) for p in positions]
        bars = axes.bar(offsets, values, width, color=colour, label=label)
        for bar, name in zip(bars, class_names, strict=True):
            if name == true_class:
                bar.set_hatch("//")
    axes.set_xticks(list(positions), list(class_names), rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("P(mark's class)")
    axes.set_ylim(0, 1.02)
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(f"Counterfactual sweep: class A's mark on this '{true_class}' image")
    # below the axes, never on the bars (which reach the top wherever a model follows the mark)
    figure.legend(loc="outside lower center", ncols=min(count, 2), fontsize=8, frameon=False)
    return figure


def curve_name(key: str) -> str:
    """A metric's legend in words: ``val_background_share`` → "validation background share"."""
    words = {"val": "validation", "loss": "loss", "accuracy": "accuracy"}
    return " ".join(words.get(part, part) for part in key.split("_"))


def training_figure(history: Sequence[Mapping[str, float]]) -> Figure:
    """Live fine-tuning curves: losses (left axis panel) and background share (right panel).

    Args:
        history: one dict per reported step with ``step`` and any of ``loss``,
            ``classification_loss``, ``heatmap_loss``, ``background_share``, ``val_*``.
    """
    figure = Figure(figsize=(7.2, 3.2), dpi=100, layout="constrained")
    losses, shares = figure.subplots(1, 2)
    steps = [h.get("step", i) for i, h in enumerate(history)]
    keys = sorted({k for h in history for k in h if k != "step"})
    for key in keys:
        points = [(s, h[key]) for s, h in zip(steps, history, strict=True)
                  if h.get(key) is not None]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        axes = shares if "share" in key else losses if "loss" in key else None
        if axes is not None:
            # markers on every series, so a run of one step already draws its points
            axes.plot(xs, ys, "-o" if not key.startswith("val") else "o--",
                      label=curve_name(key), ms=3)
    losses.set_title("losses")
    shares.set_title("background relevance share")
    shares.set_ylim(-0.02, 1.02)
    for axes in (losses, shares):
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    return figure



def randomisation_figure(spearman: Sequence[float], ssim: Sequence[float], label: str) -> Figure:
    """The cascading model-randomisation test: similarity of each stage's map to the trained
    model's (stage 0), Spearman of ``|R|`` and SSIM, as layers are randomised from the top.

    Args:
        spearman, ssim: one value per stage, stage 0 first.
        label: the model's name (title).
    """
    figure = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    stages = list(range(len(spearman)))
    axes.plot(stages, spearman, "-o", color=COLOURS[0], label="Spearman rank correlation of |R|")
    axes.plot(stages, ssim, "--s", color=COLOURS[1], label="SSIM")
    axes.set_xticks(stages)
    axes.set_xlabel("cascade stage (0 = trained; each stage randomises more layers, top first)")
    axes.set_ylabel("similarity to the trained model's map")
    axes.set_ylim(min(-0.05, min(spearman) - 0.05, min(ssim) - 0.05), 1.05)
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.grid(alpha=0.3)
    axes.set_title(f"Model randomisation: {label}")
    axes.legend(fontsize=8, loc="best")
    return figure
