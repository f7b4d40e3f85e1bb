"""The Arena tab's work: read the comparison's results folder and load a method's model.

``python -m benchmarks.arena`` writes into one folder (``--out-dir``, default ``results/arena``):
``arena.json`` (``{"command", "device", "data", "uniform_map_background_share", "methods": [one
record per method]}``), ``arena.md`` (the table), ``arena.png`` (accuracy drop biased →
confounding against background share) and, per method, ``<method>.json`` and
``<method>.safetensors``. A record holds ``method``, ``title``, ``model``, ``status``,
``parameters``, ``train_seconds_per_epoch``, ``inference_ms_per_image``, ``native_map`` and
``splits`` → ``biased`` / ``unbiased`` / ``confounding`` → ``accuracy``,
``background_share_lrp``, ``background_share_native``.

With ``--seeds`` (issue 33), ``arena.json`` also holds ``rows``: one per method and training
split over its seeds, each with ``seeds``, ``files`` (the runs' file stems, whose checkpoints are
``<stem>.safetensors``) and ``columns`` (mean, lowest, highest per column, robustness drops
included); the tab shows the means and the number of seeds (the ranges are in ``arena.md``).

Clicking a row loads ``<method>.safetensors`` (when it exists) as a model of the session, so it
can be explained beside any other. Results folders do not travel with the repository's
checkpoints (they are large and the command remakes them), so the small ones are bundled in
``assets/arena/<results folder name>/<method>.safetensors`` and a row without its own file in the
folder loads the bundled one; networks without an LRP walk are explained with their native
map (see :mod:`explorer.handlers.explain`).

The tab lists every results folder under ``results/`` that holds an ``arena.json`` (plus the
app's ``--arena-dir``), and shows the full-budget H200 run first when the app names none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from explorer.catalog import entry_from_checkpoint
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers.export import record_view
from explorer.plain_text import plain
from explorer.state import AppContext

RESULTS_ROOT = Path(__file__).resolve().parents[2] / "results"
DEFAULT_FOLDER = RESULTS_ROOT / "arena-h200-full"
"""The folder shown first when the app names none: the complete arena at the full demo budget."""
BUNDLED_FOLDER = Path(__file__).resolve().parents[2] / "assets" / "arena"
"""Bundled arena checkpoints, one sub-folder per results folder (by its name)."""
SPLITS = ("biased", "unbiased", "confounding")
UNSEEN_KINDS = ("shape", "decoy", "text", "tint", "texture")
"""The unseen kinds of the robustness columns (:data:`isnet.data.bias.config.BIAS_KINDS`)."""
HEADERS = ["Method", "Network", "Acc. biased %", "Acc. unbiased %", "Acc. confounding %",
           "BG share, LRP (input rule)", "BG share, native (map)", "Gap biased − conf. (points)",
           *(f"{kind} drop (points)" for kind in UNSEEN_KINDS), "Worst unseen drop (points)",
           "Seeds", "Train s/epoch", "Inference ms/image", "Parameters", "Status", "Checkpoint"]
DATATYPES = ["str", "str", "number", "number", "number", "str", "str", "number",
             *(["number"] * len(UNSEEN_KINDS)), "number", "str", "number", "number", "number",
             "str", "str"]
"""Each column's type, so that sorting by a number column sorts numerically."""
COLUMN_WIDTHS = ["140px", "110px", "72px", "80px", "100px", "110px", "145px", "90px",
                 *(["72px"] * len(UNSEEN_KINDS)), "90px", "70px", "75px", "85px", "95px", "95px",
                 "95px"]
"""Column widths: narrower screens scroll the table sideways."""
MAX_RESULTS_BYTES = 4 << 20
_METHOD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class Leaderboard:
    """The arena's results, ready for a table.

    Attributes:
        folder: where they were read.
        methods: method names, one per row.
        rows: one list of cells per method (:data:`HEADERS` order; plain numbers and strings).
        plot: path of ``arena.png``, or None.
        summary: Markdown: the command and device that made the results, or why there are none.
        checkpoints: method → checkpoint path, for the methods whose file exists.
        settings: how the results were made: data description, device, commands (for export).
    """

    folder: Path
    methods: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    plot: str | None = None
    summary: str = ""
    checkpoints: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def arena_folder(ctx: AppContext) -> Path:
    """The results folder shown first (``ctx.arena_dir``, else :data:`DEFAULT_FOLDER`)."""
    return Path(getattr(ctx, "arena_dir", None) or DEFAULT_FOLDER)


def results_folders(ctx: AppContext, root: Path = RESULTS_ROOT) -> list[Path]:
    """The folders the tab offers: :func:`arena_folder` first, then every folder under ``root``
    with an ``arena.json`` (by name; one folder per name)."""
    found = sorted((p.parent for p in root.glob("*/arena.json")), key=lambda p: p.name) \
        if root.is_dir() else []
    folders: list[Path] = []
    for folder in [arena_folder(ctx), *found]:  # names are the choices: the first one wins
        if folder.name not in {f.name for f in folders}:
            folders.append(folder)
    return folders


def folder_label(folder: Path) -> str:
    """A folder's name with its device and number of methods (as far as ``arena.json`` says)."""
    try:
        records, summary = _records(folder)
    except (OSError, InputError):
        return f"{folder.name} (unreadable)"
    if not records:
        return f"{folder.name} (no results yet)"
    devices = device_names(records, summary)
    count = len({(r.get("method"), r.get("train_split", "biased")) for r in records})
    label = f"{folder.name}: {count} method{'s' if count != 1 else ''}, {', '.join(devices)}"
    size = (summary.get("data") or {}).get("size") if isinstance(summary.get("data"), dict) \
        else None
    epochs = sorted({int(r["epochs_done"]) for r in records
                     if isinstance(r.get("epochs_done"), (int, float))})
    if size:
        label += f", {int(size)} px"
    if epochs:
        label += f", {epochs[0]}–{epochs[-1]} epochs" if len(epochs) > 1 else \
            f", {epochs[0]} epoch{'s' if epochs[0] != 1 else ''}"
    return label


def device_names(records: list[dict], summary: dict) -> list[str]:
    """The devices that made a folder's runs, each named once: ``cpu``, ``CPU`` and a joined
    ``"cpu, CPU"`` summary all read ``CPU``; a card's name is kept as it is."""
    names: list[str] = []
    for record in records:
        text = str(record.get("device_name") or record.get("device") or summary.get("device")
                   or "?")
        for part in text.split(","):
            name = "CPU" if part.strip().lower() == "cpu" else part.strip()
            if name and name not in names:
                names.append(name)
    return names


def chosen_folder(ctx: AppContext, value: str | None) -> Path:
    """The results folder a user picked by name (one of :func:`results_folders`; None = the
    first). Names, not paths, travel through the UI and the API.

    Raises:
        InputError: a folder the tab does not offer (paths are never taken from a request).
    """
    folders = results_folders(ctx)
    if value in (None, ""):
        return folders[0]
    for folder in folders:
        if folder.name == str(value):
            return folder
    raise InputError(f"No arena results folder {str(value)!r} here; choose one from the list "
                     "(folders under results/ that hold an arena.json).")


def _percent(value: Any) -> float | None:
    return None if value is None else round(100 * float(value), 1)


def _rounded(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _share(value: Any, how: Any) -> str | None:
    """A background share with how it was measured, e.g. ``0.883 (z^B)``; None when absent."""
    share = _rounded(value, 3)
    return None if share is None else f"{share:.3f} ({how})" if how else f"{share:.3f}"


def _read_json(path: Path) -> Any:
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise InputError(f"{path.name} is larger than {MAX_RESULTS_BYTES >> 20} MB; not an "
                         "arena result.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path.name} is not readable JSON ({type(error).__name__}).") from None


def _records(folder: Path) -> tuple[list[dict], dict]:
    """Method records from ``arena.json``, else from the per-method JSON files."""
    summary_file = folder / "arena.json"
    if summary_file.is_file():
        summary = _read_json(summary_file)
        if not isinstance(summary, dict) or not isinstance(summary.get("methods"), list):
            raise InputError("arena.json has no list of methods; rerun python -m "
                             "benchmarks.arena.")
        return [r for r in summary["methods"] if isinstance(r, dict)], summary
    records = []
    for path in sorted(folder.glob("*.json")):
        record = _read_json(path)
        if isinstance(record, dict) and "splits" in record and "method" in record:
            records.append(record)
    return records, {}


def _drop(record: dict, kind: str) -> float | None:
    return _rounded(((record.get("robustness") or {}).get(kind) or {}).get("drop_points"), 1)


def row(record: dict, checkpoint: bool) -> list[Any]:
    """One table row (:data:`HEADERS` order) of one run's record (a folder without ``rows``)."""
    splits = record.get("splits") or {}

    def value(split: str, key: str) -> Any:
        return (splits.get(split) or {}).get(key)

    accuracies = [_percent(value(split, "accuracy")) for split in SPLITS]
    gap = None if None in (accuracies[0], accuracies[2]) else \
        round(accuracies[0] - accuracies[2], 1)
    drops = [_drop(record, kind) for kind in UNSEEN_KINDS]
    return [record.get("title") or record.get("method"), record.get("model"), *accuracies,
            _share(value("biased", "background_share_lrp"),
                   record.get("lrp_input_rule") or "z^B"),
            _share(value("biased", "background_share_native"), record.get("native_map")), gap,
            *drops, None if None in drops else max(drops), "1",
            _rounded(record.get("train_seconds_per_epoch"), 1),
            _rounded(record.get("inference_ms_per_image"), 2),
            _count(record.get("parameters")), record.get("status"),
            "load" if checkpoint else "—"]


def _count(value: Any) -> int | None:
    """A parameter count as a number (the tab shows it with thousands separators, and sorts
    it as a number)."""
    return None if value is None else int(value)


def _mean(columns: dict, name: str, digits: int = 1) -> float | None:
    value = columns.get(name)
    return None if not value else round(float(value["mean"]), digits)


def table_row(summary_row: dict, checkpoint: bool) -> list[Any]:
    """One table row (:data:`HEADERS` order) of an ``arena.json`` row over seeds: the means
    (the ranges are in ``arena.md``) and the number of seeds."""
    columns = summary_row.get("columns") or {}
    share = _mean(columns, "background_share_lrp", 3)
    rule = summary_row.get("lrp_input_rule") or "z^B"
    seeds = len(summary_row.get("seeds") or [])
    return [summary_row.get("title") or summary_row.get("method"), summary_row.get("model"),
            _mean(columns, "acc_biased"), _mean(columns, "acc_unbiased"),
            _mean(columns, "acc_confounding"),
            None if share is None else f"{share:.3f} ({rule})",
            None, _mean(columns, "gap_points"),
            *(_mean(columns, f"drop_{kind}") for kind in UNSEEN_KINDS),
            _mean(columns, "worst_drop"), str(seeds) if seeds >= 3 else f"{seeds} (< 3)",
            _rounded(summary_row.get("train_seconds_per_epoch"), 1),
            _rounded(summary_row.get("inference_ms_per_image"), 2),
            _count(summary_row.get("parameters")), summary_row.get("status"),
            "load" if checkpoint else "—"]


def _table(records: list[dict], summary: dict) -> list[tuple[str, list[str], Any]]:
    """(row key, checkpoint file stems, cells(checkpoint found) → row) per table row: the
    rows over seeds of ``arena.json`` when it has them, else one row per run's record."""
    table = []
    if isinstance(summary.get("rows"), list):
        for entry in summary["rows"]:
            method = str(entry.get("method", "")) if isinstance(entry, dict) else ""
            if not _METHOD_NAME.match(method):
                continue
            split = str(entry.get("train_split", "biased"))
            key = method if split == "biased" else f"{method}-{split}"
            files = [str(f) for f in entry.get("files") or [method] if _METHOD_NAME.match(str(f))]
            table.append((key, files, lambda found, e=entry: table_row(e, found)))
        return table
    for record in records:
        method = str(record.get("method", ""))
        if _METHOD_NAME.match(method):
            table.append((method, [method], lambda found, r=record: row(r, found)))
    return table


def checkpoint_of(folder: Path, method: str, bundled: Path = BUNDLED_FOLDER) -> Path | None:
    """A method's checkpoint: ``folder/<method>.safetensors``, else the bundled copy for a
    folder of that name (``bundled/<folder name>/<method>.safetensors``), else None."""
    for candidate in (folder / f"{method}.safetensors",
                      bundled / folder.name / f"{method}.safetensors"):
        if candidate.is_file():
            return candidate
    return None


def read_leaderboard(folder: str | Path, bundled: str | Path = BUNDLED_FOLDER) -> Leaderboard:
    """The arena's leaderboard from a results folder (empty, with a hint, when there is none);
    checkpoints found by :func:`checkpoint_of`.

    Raises:
        InputError: a results file that is not the arena's JSON.
    """
    folder = Path(folder)
    board = Leaderboard(folder)
    if not folder.is_dir():
        board.summary = (f"No arena results in `{folder.name}` yet: run `python -m "
                         "benchmarks.arena` (it writes results/arena/).")
        return board
    records, summary = _records(folder)
    for key, files, cells in _table(records, summary):
        checkpoint = next((found for stem in files
                           if (found := checkpoint_of(folder, stem, Path(bundled)))), None)
        if checkpoint is not None:
            board.checkpoints[key] = str(checkpoint)
        board.methods.append(key)
        board.rows.append(cells(checkpoint is not None))
    plot = folder / "arena.png"
    board.plot = str(plot) if plot.is_file() else None
    lines = [f"{len(board.methods)} methods"]
    # each method's own command (a resumed table's summary names only the last command)
    commands = list(dict.fromkeys(str(r["command"]) for r in records if r.get("command"))) \
        or ([str(summary["command"])] if summary.get("command") else [])
    device = plain(summary.get("device") or "an unknown device")
    if len(commands) == 1:
        lines.append(f"made by `{commands[0]}` on {device}")
    elif commands:
        lines.append(f"made by {len(commands)} arena commands on {device} (each method's "
                     "command is in its JSON file)")
    if summary.get("uniform_map_background_share") is not None:
        lines.append(f"a map spread evenly over the image has background share "
                     f"{float(summary['uniform_map_background_share']):.3f}")
    board.settings = {"results_folder": folder.name, "device": summary.get("device"),
                      "data": summary.get("data"), "commands": commands,
                      "uniform_map_background_share":
                          summary.get("uniform_map_background_share")}
    loadable = [plain(cells[0]) for key, cells in zip(board.methods, board.rows, strict=True)
                if key in board.checkpoints]
    board.summary = "; ".join(lines) + ". " + (
        f"Rows whose model can load (click the row): {', '.join(loadable)}"
        + ("; the others have no checkpoint here (rerun `python -m benchmarks.arena` "
           "for them)." if len(loadable) < len(board.rows) else ".")
        if loadable else "No row's model can load: this folder has no checkpoints (rerun "
        "`python -m benchmarks.arena` to make them).")
    if not board.methods:
        board.summary = "No method results in this folder yet: run `python -m benchmarks.arena`."
    return board


def record_leaderboard(ctx: AppContext, session: str | None, board: Leaderboard) -> dict | None:
    """Keep the leaderboard a session is looking at as its newest "arena" view, so Export can
    save it: the table (figure and JSON), the plot, the settings and every method's checkpoint
    with its SHA-256. None (nothing kept) for a folder without results."""
    if not board.methods:
        return None
    numbers = {"per_model": {str(cells[0]): dict(zip(HEADERS[1:], cells[1:], strict=True))
                             for cells in board.rows}}
    models = [{"label": str(cells[0]), "id": method, "file": board.checkpoints.get(method),
               "method": method} for method, cells in zip(board.methods, board.rows,
                                                          strict=True)]
    images = []
    if board.plot:
        with Image.open(board.plot) as picture:
            images.append(("Accuracy drop against background share",
                           np.asarray(picture.convert("RGB"))))
    return record_view(ctx, session, "arena", f"Arena: {board.folder.name}", numbers,
                       board.settings, [], images, None, models=models,
                       table=(HEADERS[:-1], [cells[:-1] for cells in board.rows]))


def load_method(ctx: AppContext, session: str | None, board: Leaderboard,
                index: int) -> ModelEntry:
    """Load the model of the leaderboard's row ``index`` into this session (once per session:
    clicking the row again returns the same model).

    Raises:
        InputError: no such row, no checkpoint for it, or a file that does not load.
    """
    if not 0 <= index < len(board.methods):
        raise InputError("No such row in the arena table; refresh it.")
    method = board.methods[index]
    path = board.checkpoints.get(method)
    if path is None:
        raise InputError(f"The arena has no checkpoint for {method}: rerun `python -m "
                         f"benchmarks.arena --methods {method}`.")
    for entry in ctx.store.visible(session):
        if entry.path == path:
            return entry
    try:
        entry = entry_from_checkpoint(path, ctx.store.new_id("arena"), owner=session)
    except ValueError as error:
        raise InputError(f"{Path(path).name} does not load: {str(error).splitlines()[0]}") \
            from error
    entry.label = f"Arena · {board.rows[index][0]}"
    return ctx.store.add(entry)
