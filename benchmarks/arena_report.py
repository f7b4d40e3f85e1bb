"""The arena's table and plot: one row per method and training condition, over its seeds.

:func:`table_rows` groups the per-run records of ``python -m benchmarks.arena`` by method and
training split (the unbiased-trained ceiling is its own row) and gives, for every column, the
mean, the lowest and the highest value over the seeds and the number of seeds. Columns: accuracy
on the biased, unbiased and confounding test images, the biased ↔ confounding gap, the LRP
background share, and the accuracy drop under each unseen kind (shape, decoy, text, tint,
texture: :mod:`isnet.training.robustness`) with the worst of them.

:func:`markdown_table` writes the rows as Markdown (``mean (low–high)``, and a row with fewer than
three seeds says so); :func:`plot` draws two panels: the shortcut panel (drop biased →
confounding against background share) and the unseen-kinds panel (worst drop against unbiased
accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from isnet.data.bias.config import BIAS_KINDS
from isnet.io.atomic import write_with

FEW_SEEDS = 3
"""A row with fewer seeds than this says so in the table."""


def _accuracy(split: str) -> Callable[[dict], float | None]:
    def read(record: dict) -> float | None:
        value = ((record.get("splits") or {}).get(split) or {}).get("accuracy")
        return None if value is None else 100 * float(value)
    return read


def _gap(record: dict) -> float | None:
    biased, confounding = _accuracy("biased")(record), _accuracy("confounding")(record)
    return None if biased is None or confounding is None else biased - confounding


def _share(record: dict) -> float | None:
    return ((record.get("splits") or {}).get("biased") or {}).get("background_share_lrp")


def _drop(kind: str) -> Callable[[dict], float | None]:
    def read(record: dict) -> float | None:
        value = ((record.get("robustness") or {}).get(kind) or {}).get("drop_points")
        return None if value is None else float(value)
    return read


def _worst(record: dict) -> float | None:
    drops = [_drop(kind)(record) for kind in BIAS_KINDS]
    return None if any(d is None for d in drops) else max(d for d in drops if d is not None)


COLUMNS: dict[str, Callable[[dict], float | None]] = {
    "acc_biased": _accuracy("biased"), "acc_unbiased": _accuracy("unbiased"),
    "acc_confounding": _accuracy("confounding"), "gap_points": _gap,
    "background_share_lrp": _share,
    **{f"drop_{kind}": _drop(kind) for kind in BIAS_KINDS}, "worst_drop": _worst}
"""Column → how one run's record gives it (accuracies and drops in points, share in [0, 1])."""


def spread(values: Sequence[float | None]) -> dict[str, Any] | None:
    """``{"mean", "low", "high", "count"}`` of the values that exist (None when none does)."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return {"mean": sum(present) / len(present), "low": min(present), "high": max(present),
            "count": len(present)}


def row_key(record: dict) -> tuple[str, str]:
    """(method, training split): the runs one row stands for."""
    return str(record["method"]), str(record.get("train_split", "biased"))


def table_rows(records: Sequence[dict], order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per (method, training split), in ``order`` of methods (others after), with
    :func:`spread` per column over the row's seeds.

    Each row: ``method``, ``title``, ``train_split``, ``model``, ``seeds`` (sorted), ``files``
    (the runs' file stems, seed order), ``parameters``, ``train_seconds_per_epoch`` (mean),
    ``status`` (every run's, joined), ``native_map``, ``lrp_input_rule`` and ``columns``.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault(row_key(record), []).append(record)
    rank = {method: index for index, method in enumerate(order)}
    keys = sorted(groups, key=lambda k: (rank.get(k[0], len(rank)), k[0], k[1] != "biased"))
    rows = []
    for key in keys:
        runs = sorted(groups[key], key=lambda r: r.get("seed", 0))
        first = runs[0]
        seconds = spread([r.get("train_seconds_per_epoch") for r in runs])
        rows.append({
            "method": key[0], "train_split": key[1], "title": first.get("title", key[0]),
            "model": first.get("model"), "seeds": [r.get("seed", 0) for r in runs],
            "files": [r.get("file", r["method"]) for r in runs],
            "parameters": first.get("parameters"),
            "train_seconds_per_epoch": seconds["mean"] if seconds else None,
            "inference_ms_per_image": first.get("inference_ms_per_image"),
            "status": ", ".join(dict.fromkeys(str(r.get("status")) for r in runs)),
            "native_map": first.get("native_map"), "lrp_input_rule": first.get("lrp_input_rule"),
            "columns": {name: spread([read(r) for r in runs]) for name, read in COLUMNS.items()}})
    return rows


def cell(value: dict[str, Any] | None, digits: int = 1) -> str:
    """``mean (low–high)`` over seeds, or the one value; ``–`` when absent."""
    if value is None:
        return "–"
    mean = f"{value['mean']:.{digits}f}"
    if value["count"] == 1 or value["low"] == value["high"]:
        return mean
    return f"{mean} ({value['low']:.{digits}f}–{value['high']:.{digits}f})"


def seeds_cell(row: dict[str, Any]) -> str:
    """The number of seeds, with a warning when fewer than :data:`FEW_SEEDS`."""
    count = len(row["seeds"])
    return str(count) if count >= FEW_SEEDS else f"{count} (fewer than {FEW_SEEDS})"


def markdown_table(rows: Sequence[dict[str, Any]], commands: Sequence[str], device: str,
                   uniform_share: float | None = None) -> str:
    """The leaderboard as Markdown: the commands and device, then one line per row."""
    drops = " | ".join(f"{kind} drop" for kind in BIAS_KINDS)
    lines = [f"Made by (device: {device}): " + "; ".join(f"`{c}`" for c in commands), "",
             f"| Method | Network | Seeds | Acc. biased % | Acc. unbiased % | "
             f"Acc. confounding % | Gap biased−conf. | BG share LRP | {drops} | Worst drop | "
             "Train s/epoch | Parameters | Status |",
             "|---|---|---|" + "---:|" * (6 + len(BIAS_KINDS)) + "---:|---:|---|"]
    for row in rows:
        c = row["columns"]
        share = cell(c["background_share_lrp"], 3)
        if row.get("lrp_input_rule") == "ε" and share != "–":
            share += " (ε input)"
        seconds = row["train_seconds_per_epoch"]
        parameters = row["parameters"]
        lines.append(
            f"| {row['title']} | {row['model']} | {seeds_cell(row)} | "
            f"{cell(c['acc_biased'])} | {cell(c['acc_unbiased'])} | "
            f"{cell(c['acc_confounding'])} | {cell(c['gap_points'])} | {share} | "
            + " | ".join(cell(c[f"drop_{kind}"]) for kind in BIAS_KINDS)
            + f" | {cell(c['worst_drop'])} | "
            f"{'–' if seconds is None else f'{seconds:.1f}'} | "
            f"{'–' if parameters is None else f'{int(parameters):,}'} | {row['status']} |")
    lines += ["", "Accuracy on 10 classes (chance 10 %), in %; mean over seeds (lowest–highest). "
              "Gap: biased minus confounding accuracy, in points. BG share: share of absolute "
              "LRP relevance outside the object mask on the biased test images (0 = all on the "
              "object). Drops: accuracy lost, in points, when a kind the model never saw is "
              "planted with a random other class into the clean test images' background "
              "(isnet.training.robustness); – = not measured."]
    if uniform_share is not None:
        lines[-1] += f" A map spread evenly over the image scores {uniform_share:.3f}."
    return "\n".join(lines) + "\n"


def _errors(value: dict[str, Any] | None) -> list[float]:
    """[below, above] the mean, for an error bar over seeds."""
    return [0.0, 0.0] if value is None else [value["mean"] - value["low"],
                                             value["high"] - value["mean"]]


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Two panels, one marker per row (bars: lowest–highest over seeds): shortcut reliance
    (drop biased → confounding against background share) and robustness to unseen kinds
    (worst drop against unbiased accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (shortcut, unseen) = plt.subplots(1, 2, figsize=(13, 5.2))
    colours = plt.get_cmap("tab20").colors
    for index, row in enumerate(rows):
        c, colour = row["columns"], colours[index % len(colours)]
        label = f"{row['title']} (n={len(row['seeds'])})"
        style = dict(fmt="o", color=colour, markeredgecolor="black", markersize=7, capsize=3,
                     alpha=0.85)
        if c["gap_points"] is not None and c["background_share_lrp"] is not None:
            shortcut.errorbar(c["background_share_lrp"]["mean"], c["gap_points"]["mean"],
                              xerr=[[v] for v in _errors(c["background_share_lrp"])],
                              yerr=[[v] for v in _errors(c["gap_points"])], **style)
        if c["worst_drop"] is not None and c["acc_unbiased"] is not None:
            unseen.errorbar(c["acc_unbiased"]["mean"], c["worst_drop"]["mean"],
                            xerr=[[v] for v in _errors(c["acc_unbiased"])],
                            yerr=[[v] for v in _errors(c["worst_drop"])], label=label, **style)
        else:
            unseen.plot([], [], "o", color=colour, label=f"{label}: not measured")
    shortcut.set(xlabel="background share, LRP, biased test images",
                 ylabel="accuracy drop biased → confounding (points)")
    shortcut.set_title("Shortcut reliance: the training mark names another class", fontsize=10)
    unseen.set(xlabel="accuracy on unbiased test images (%)",
               ylabel="worst drop over unseen kinds (points)")
    unseen.set_title("Unseen kinds: shape, decoy, text, tint, texture", fontsize=10)
    unseen.axhline(5, linestyle="--", color="grey", linewidth=1, label="issue 33's goal: 5 points")
    shortcut.axhline(3, linestyle="--", color="grey", linewidth=1)  # the goal's 3-point gap
    for axes in (shortcut, unseen):
        axes.grid(alpha=0.3)
    unseen.legend(title="method (seeds)", fontsize=8, title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), frameon=False)
    figure.tight_layout()
    write_with(path, lambda temporary: figure.savefig(temporary, dpi=110, format="png"),
               overwrite=True)
    plt.close(figure)
