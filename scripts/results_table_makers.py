"""One small function per results table: read run records under ``results/``, return Markdown.

Each maker takes the repository root and returns a :class:`Table`: its lines (header, rule,
rows) and the JSON files it read (relative to the root). :mod:`scripts.results_tables` puts the
table between its markers and adds a line naming the files and their commands. To add a table:
write a function here, add it to :data:`TABLES`, and put ``<!-- table:NAME -->`` …
``<!-- /table -->`` where it should appear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATED = re.compile(r"\d{4}-\d{2}-\d{2}-.+\.json")
"""Run records of :mod:`benchmarks.record`: ``<date>-<machine>.json``."""


@dataclass(frozen=True)
class Table:
    """A rendered Markdown table and the run records it came from."""

    lines: list[str]
    sources: list[str]


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()
             ) -> list[str]:
    """A Markdown table; columns whose index is in ``right`` are right-aligned."""
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return ["| " + " | ".join(str(c) for c in row) + " |" for row in [header, rule, *rows]]


def read(root: Path, source: str) -> Any:
    """The JSON at ``root / source``."""
    return json.loads((root / source).read_text())


def latest(root: Path, benchmark: str) -> str:
    """The newest run record of ``benchmark`` (``results/<benchmark>/<date>-<machine>.json``).

    Raises:
        FileNotFoundError: no record yet (run ``python -m benchmarks.<benchmark>``).
    """
    folder = root / "results" / benchmark
    found = sorted(p for p in folder.glob("*.json") if DATED.fullmatch(p.name))
    if not found:
        raise FileNotFoundError(f"no run record in results/{benchmark}/; run "
                                f"python -m benchmarks.{benchmark}")
    return str(found[-1].relative_to(root))


def load(record: dict[str, Any]) -> str:
    """The load averages (1 min) before → after a run, e.g. ``"4.1 → 6.3"``."""
    return f"{record['load_average_before'][0]} → {record['load_average_after'][0]}"


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal; '–' for none."""
    return "–" if value is None else f"{100 * value:.1f}"


def share(value: float | None) -> str:
    """A background share with three decimals; '–' for none."""
    return "–" if value is None else f"{value:.3f}"


# --- the tables ------------------------------------------------------------------------------

def arena(root: Path, folder: str, speed: str) -> Table:
    """A comparison arena's table (accuracy %, background shares, seconds per epoch) from
    ``results/<folder>/arena.json``; ``speed`` heads the seconds-per-epoch column."""
    source = f"results/{folder}/arena.json"
    rows = []
    for m in read(root, source)["methods"]:
        s = m["splits"]
        rule = f" ({m['lrp_input_rule']} input)" if m.get("lrp_input_rule") else ""
        rows.append([m["title"], m["model"], *(percent(s[k]["accuracy"]) for k in
                                               ("biased", "unbiased", "confounding")),
                     f"{share(s['biased'].get('background_share_lrp'))}{rule} / "
                     f"{share(s['biased'].get('background_share_native'))}",
                     f"{m['train_seconds_per_epoch']:.1f}", m["epochs_done"]])
    header = ["method", "network", "biased", "unbiased", "confounding",
              "BG share (LRP / native)", speed, "epochs"]
    return Table(markdown(header, rows, right=(2, 3, 4, 6, 7)), [source])


def arena_h200(root: Path) -> Table:
    """The comparison arena on the H200, full budget (nine methods sharing the GPU)."""
    return arena(root, "arena-h200-full", "train s/epoch (shared GPU)")


def arena_cpu(root: Path) -> Table:
    """The comparison arena on this CPU, full budget (four methods, one core each)."""
    return arena(root, "arena-cpu", "train s/epoch (one core)")


def own_data_training(root: Path) -> Table:
    """The worked example on files: each run's time, accuracy and background share."""
    source = "results/own-data/train-runs.json"
    rows = []
    for name, run in read(root, source).items():
        config, metrics = run["config"], run["metrics"]
        rows.append([name, f"{config['model']}, {config['method']}",
                     f"{metrics['train_seconds']:.0f}", percent(metrics["val"]["accuracy"]),
                     percent(metrics["test"]["accuracy"]),
                     f"{share(metrics['val']['background_share'])} / "
                     f"{share(metrics['test']['background_share'])} "
                     f"({'z^B' if config['zb'] else 'ε'} input rule)"])
    header = ["run", "model, method", "training s", "validation (marked), %",
              "test (no mark), %", "background share, val / test"]
    return Table(markdown(header, rows, right=(2, 3, 4)), [source])


def own_data_audit(root: Path) -> Table:
    """The worked example's streamed audit: per checkpoint, accuracy and mean share."""
    source = "results/own-data/audit-summary.json"
    rows = [[c["checkpoint"], c["model"], c["overall"]["images"],
             percent(c["overall"]["accuracy"]), share(c["overall"]["mean_share"])]
            for c in read(root, source)["checkpoints"]]
    header = ["checkpoint", "model", "images", "accuracy, %", "mean background share"]
    return Table(markdown(header, rows, right=(2, 3, 4)), [source])


def data_loader(root: Path) -> Table:
    """Images per second from disk against memory (the data-throughput benchmark's loader)."""
    source = "results/data/throughput-quiet.json"
    record = read(root, source)
    rows = [[r["source"], r["transform"], r["workers"], f"{r['images_per_s']:,.1f}",
             f"{r['x_memory']:.4f}"] for r in record["loader"]["rows"]]
    header = ["source", "transform", "workers", "images/s", "× memory"]
    lines = markdown(header, rows, right=(2, 3, 4))
    return Table([*lines, "", f"Load average (1 min) {load(record)}."], [source])


def data_training_step(root: Path) -> Table:
    """A training step fed from disk against one fed from memory (the data issue's goal)."""
    source = "results/data/throughput-quiet.json"
    record = read(root, source)
    step = record["training_step"]
    rows = [[side, ", ".join(f"{t:.2f}" for t in step[side]["step_seconds"]),
             f"{step[side]['images_per_s']:.2f}",
             "1" if side == "memory" else f"**{step['disk_over_memory_throughput']:.3f}**"]
            for side in ("memory", "disk")]
    header = [f"fed from ({step['model']}, {step['method']}, batch {step['batch']})",
              "timed steps, s", "images/s", "disk ÷ memory"]
    lines = markdown(header, rows, right=(2, 3))
    return Table([*lines, "", f"Goal: {step['goal']}: {'met' if step['goal_met'] else 'not met'}."
                  f" Load average (1 min) {load(record)}."], [source])


def data_memory(root: Path) -> Table:
    """The data issue's memory benchmark: audit, training epoch and first batch over 1,000 to
    50,000 files (run before the streamed audit's memory fix)."""
    return memory_table(root, "results/data/memory.json")


def data_memory_audit_after_fix(root: Path) -> Table:
    """The streamed audit's memory over 1,000 and 50,000 files after its fix."""
    return memory_table(root, "results/data/memory-audit-after-fix.json")


def memory_table(root: Path, source: str) -> Table:
    """Peak memory and seconds per job and number of files, from a ``data_memory`` record."""
    record = read(root, source)
    rows = [[r["job"], f"{r['size']:,}" if r["size"] else "–", f"{r['seconds']:,.1f}",
             f"{r['peak_rss_main_mib']:,.0f} + {r['peak_rss_workers_mib']:,.0f}",
             f"{r['peak_tree_pss_mib']:,.0f}"] for r in record["rows"]]
    header = ["job", "files", "seconds", "peak RSS main + workers, MiB", "peak PSS (tree), MiB"]
    growth = record["growth"]
    notes = "; ".join(f"{job} {g['growth_peak_rss_mib']:+.0f} MiB peak RSS from "
                      f"{g['from_files']:,} to {g['to_files']:,} files"
                      for job, g in growth.items() if "growth_peak_rss_mib" in g)
    return Table([*markdown(header, rows, right=(1, 2, 3, 4)), "",
                  f"Growth: {notes}. Load average (1 min) {load(record)}."], [source])


def audit_throughput(root: Path) -> Table:
    """A streamed audit from disk against the same images in memory, 224 px."""
    source = "results/audit/throughput-cpu.json"
    record = read(root, source)
    rows = [[r["model"], r["images"], f"{r['disk_images_per_s']:.2f}",
             f"{r['memory_images_per_s']:.2f}", f"{r['x_memory']:.2f}"] for r in record["rows"]]
    header = ["model", "images", "from disk, images/s", "in memory, images/s", "× memory"]
    return Table([*markdown(header, rows, right=(1, 2, 3, 4)), "",
                  f"Load average (1 min) {load(record)}."], [source])


def audit_speed(root: Path) -> Table:
    """The audit benchmark: seconds, images per second, ranking and SpRAy per model."""
    source = latest(root, "audit")
    record = read(root, source)
    rows = [[r["model"], r["layout"], r["batch"], r["images"], f"{r['seconds']:.1f}",
             f"{r['images_per_s']:.0f}", f"{r['marked_in_top_half']:.3f}", f"{r['ari_mean']:.3f}"]
            for r in record.get("rows", [])]
    header = ["model", "layout", "batch", "images", "audit s", "images/s",
              "marked in top half", "ARI, mean over classes"]
    lines = markdown(header, rows, right=(2, 3, 4, 5, 6, 7))
    return Table([*lines, "", f"{record['machine']['device']}, {record['machine']['cpu_count']} "
                  f"cores, {record['date']}; load average (1 min) {load(record)}."], [source])


def audit_app(root: Path) -> Table:
    """The explorer's own audit of both models, as the Audit tab runs it (``--app``)."""
    source = latest(root, "audit_app")
    record = read(root, source)
    app = record["app"]
    first = app["first_model_shown_s"]
    rows = [[app["models"], app["images"], f"{app['seconds']:.1f}",
             "–" if first is None else f"{first:.1f}", app["status"]]]
    header = ["models", "images each", "whole audit, s", "first model's results shown, s",
              "status"]
    return Table([*markdown(header, rows, right=(0, 1, 2, 3)), "",
                  f"{record['machine']['cpu_count']} cores, {record['date']}; load average "
                  f"(1 min) {load(record)}."], [source])


def serving_load(root: Path) -> Table:
    """Concurrent ``/explain`` calls through ``gradio_client``: latency and throughput per
    server (batched or not), case (cached samples or new images) and number of clients."""
    source = latest(root, "load")
    record = read(root, source)
    rows = [[r["server"], r["case"], r["clients"], r["errors"],
             f"{r['median_s']:.2f} / {r['p95_s']:.2f}", f"{r['per_s']:.2f}",
             f"{r['server_cpu_s']:.3f}", r["load_average"][0]] for r in record["rows"]]
    header = ["server", "case", "clients", "errors", "median / p95 s", "explains/s",
              "server CPU s/call", "load (1 min)"]
    goals = "; ".join(f"{k}: {v}" for k, v in record.get("goals", {}).items())
    return Table([*markdown(header, rows, right=(2, 3, 5, 6, 7)), "",
                  f"Goals: {goals}. {record['date']}; load average (1 min) {load(record)}."],
                 [source])


def bias_speed(root: Path) -> Table:
    """Seconds to load and bias Fashion-MNIST images, per bias kind, against the 30 s budget."""
    source = latest(root, "bias_speed")
    record = read(root, source)
    rows = [[r["kind"], f"{r['load_s']:.2f}", f"{r['bias_s']:.2f}", f"{r['total_s']:.2f}",
             r["skipped"], f"{r['budget_ratio']:.3f}"] for r in record["rows"]]
    header = ["kind", "load s", "bias s", "total s", "skipped", "÷ budget"]
    settings = record["settings"]
    return Table([*markdown(header, rows, right=(1, 2, 3, 4, 5)), "",
                  f"{settings['count']:,} images at {settings['size']} px, {record['date']}; "
                  f"load average (1 min) {load(record)}."], [source])


def finetune(root: Path) -> Table:
    """A user's short CPU fine-tune: wall time, time per step, peak memory."""
    source = latest(root, "finetune")
    record = read(root, source)
    r = record["result"]
    rows = [[Path(r["checkpoint"]).name, r["method"], r["images"], r["size"], r["epochs"],
             r["steps"], f"{r['wall_seconds']:.1f}", f"{r['seconds_per_step']:.3f}",
             f"{r['peak_rss_mb']:,}"]]
    header = ["from", "method", "images", "px", "epochs", "steps", "wall s", "s/step",
              "peak RSS, MB"]
    return Table([*markdown(header, rows, right=(2, 3, 4, 5, 6, 7, 8)), "",
                  f"{record['date']}, {record['machine']['torch_threads']} thread(s); "
                  f"load average (1 min) {load(record)}."], [source])


def explorer_latency(root: Path) -> Table:
    """One Explain press with both models (cache off), and the cold start of ``app.py``."""
    source = latest(root, "explorer_latency")
    record = read(root, source)
    rows = [[f"explain, {e['threads']} thread(s), {e['input_size']} px",
             f"{e['median_s']:.3f} (min {e['min_s']:.3f}, max {e['max_s']:.3f}; CPU "
             f"{e['cpu_s']:.3f})", "< 1"]
            for e in record["explain"]]
    if "cold_start" in record:
        cold = record["cold_start"]
        rows.append(["cold start to the first answer", f"{cold['first_answer_s']:.2f} "
                     f"(page {cold['serving_s']:.2f}, imports {cold['import_s']:.2f})", "< 10"])
    return Table([*markdown(["what", "seconds", "goal, s"], rows), "",
                  f"{record['date']}; load average (1 min) {load(record)}."], [source])


def serving_memory(root: Path) -> Table:
    """The serving process's memory around fine-tunes (goal: within 300 MB of idle)."""
    source = latest(root, "serving_memory")
    record = read(root, source)
    rows = [["idle (after one explain)", f"{record['idle_mb']:,}", "–"]]
    rows += [[f"after fine-tune {r['run']}", f"{r['rss_mb']:,}", f"{r['over_idle_mb']:+}"]
             for r in record["after_fine_tunes"]]
    rows.append(["after the session ended", f"{record['after_session_mb']:,}",
                 f"{record['after_session_mb'] - record['idle_mb']:+}"])
    return Table([*markdown(["when", "RSS, MB", "over idle, MB"], rows, right=(1, 2)), "",
                  f"Goal: {record['goal']}: {'met' if record['goal_met'] else 'not met'}. "
                  f"{record['date']}; load average (1 min) {load(record)}."], [source])


ROBUSTNESS_MODELS = {"standard_densenet121": "standard DenseNet121 (biased data)",
                     "isnet_densenet121": "ISNet DenseNet121",
                     "unbiased_densenet121": "standard DenseNet121 (unbiased data, ceiling)",
                     "standard_resnet18": "standard ResNet18 (biased data)",
                     "isnet_resnet18": "ISNet ResNet18"}
"""The bundled checkpoints' row names (``isnet.evaluate``: the file stem) → the table's labels."""


def robustness(root: Path) -> Table:
    """Unseen background changes: each bundled model's drop in points per planted kind."""
    source = latest(root, "robustness")
    record = read(root, source)
    kinds = record["kinds"]
    rows = [[ROBUSTNESS_MODELS.get(name, name), percent(per_kind[kinds[0]]["clean"]),
             *(f"{per_kind[k]['drop_points']:.1f}".replace("-", "−") for k in kinds)]
            for name, per_kind in record["rows"].items()]
    header = ["model", "clean accuracy %", *kinds]
    drawing = record["drawing"]
    return Table([*markdown(header, rows, right=tuple(range(1, len(header)))), "",
                  f"The text mark drawn by Pillow {drawing['pillow']} (FreeType "
                  f"{drawing['freetype']}) in the bundled `{drawing['font']}`; "
                  f"{record['test_images']:,} test images, one thread, {record['date']}; load "
                  f"average (1 min) {load(record)}."], [source])


TABLES: dict[str, Callable[[Path], Table]] = {
    "arena-h200": arena_h200,
    "arena-cpu": arena_cpu,
    "own-data-training": own_data_training,
    "own-data-audit": own_data_audit,
    "data-loader": data_loader,
    "data-training-step": data_training_step,
    "data-memory": data_memory,
    "data-memory-audit-after-fix": data_memory_audit_after_fix,
    "audit-throughput": audit_throughput,
    "audit-speed": audit_speed,
    "audit-app": audit_app,
    "bias-speed": bias_speed,
    "finetune": finetune,
    "explorer-latency": explorer_latency,
    "serving-memory": serving_memory,
    "serving-load": serving_load,
    "robustness": robustness,
}
"""Every table by the name its markers use."""
