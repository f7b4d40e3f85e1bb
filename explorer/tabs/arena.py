"""The Arena tab: the comparison of every method (``python -m benchmarks.arena``) as a
leaderboard and a plot; clicking a row loads that method's model into the session's model lists
(widgets and wiring only; the work is in :mod:`explorer.handlers.arena`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from explorer.components import (
    ARENA_LOAD_OUTPUTS,
    ARENA_OUTPUTS,
    ExplainWidgets,
    failure_notice,
    ordered,
    session_of,
)
from explorer.errors import guarded
from explorer.handlers import arena as ha
from explorer.handlers.models import model_card
from explorer.state import AppContext


def _board(folder: Path) -> ha.Leaderboard:
    try:
        return ha.read_leaderboard(folder)
    except ValueError as error:  # a damaged results file must not stop the app from starting
        return ha.Leaderboard(folder, summary=str(error))


def styled(board: ha.Leaderboard) -> Any:
    """The leaderboard's rows as the table shows them: numbers stay numbers (so a column sorts
    numerically), parameter counts read with thousands separators, absent values as "–"."""
    import pandas as pd

    frame = pd.DataFrame(board.rows, columns=ha.HEADERS)
    formats = {name: ("{:,.0f}" if name == "Parameters" else "{:g}")
               for name, kind in zip(ha.HEADERS, ha.DATATYPES, strict=True) if kind == "number"}
    return frame.style.format(formats, na_rep="–")


def row_index(board: ha.Leaderboard, event: gr.SelectData) -> int:
    """The board row a click names: by the clicked row's cells (the table may be sorted), else
    by its position."""
    cells = event.row_value
    if cells:
        for index, row in enumerate(board.rows):
            if str(row[0]) == str(cells[0]) and str(row[1]) == str(cells[1]):
                return index
    position = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    return int(position)


def build(ctx: AppContext, w: ExplainWidgets, tab: gr.Tab) -> gr.Dataframe:
    """Create the Arena tab inside ``tab`` (the current ``gr.Tab``); returns the leaderboard
    widget."""
    folders = ha.results_folders(ctx)
    board = _board(folders[0])
    gr.Markdown("The paper's comparison: every method trained on the same biased split, then "
                "tested on biased, unbiased (no mark) and confounding (another class's mark) "
                "images. A method that learned the shortcut drops from biased to confounding; "
                "background share is the heatmap's share outside the object (LRP where the "
                "network has it, else the method's own map).")
    results_folder = gr.Dropdown([(ha.folder_label(f), f.name) for f in folders],
                                 value=folders[0].name, label="Results folder",
                                 info="each run of python -m benchmarks.arena writes one",
                                 elem_id="arena-folder")
    summary = gr.Markdown(board.summary)
    table = gr.Dataframe(styled(board), headers=ha.HEADERS, datatype=ha.DATATYPES,
                         interactive=False, wrap=True, column_widths=ha.COLUMN_WIDTHS,
                         pinned_columns=1, static_columns=list(range(len(ha.HEADERS))),
                         label="Leaderboard: sort by any column (its header's menu); click a "
                               "row marked 'load' to load its model",
                         elem_id="arena-table")
    with gr.Row():
        with gr.Column():
            # a caption above, not Gradio's label badge, which covered the figure's title
            gr.Markdown("**Accuracy drop against background share** (one point per method)",
                        elem_classes=["caption"])
            plot = gr.Image(board.plot, label="Accuracy drop against background share",
                            show_label=False, type="filepath", interactive=False, height=380,
                            elem_id="arena-plot")
        card = gr.Markdown()
    refresh = gr.Button("Reload results", size="sm")

    @guarded
    def on_refresh(results_folder, request: gr.Request):
        """The leaderboard, plot and summary of a results folder as they are on disk now (kept
        as the session's Arena view, for Export)."""
        fresh = ha.read_leaderboard(ha.chosen_folder(ctx, results_folder))
        ha.record_leaderboard(ctx, session_of(request), fresh)
        return ordered({"table": styled(fresh), "plot": fresh.plot, "summary": fresh.summary},
                       ARENA_OUTPUTS)

    refresh.click(on_refresh, [results_folder], [table, plot, summary], api_name="arena_results")
    results_folder.change(on_refresh, [results_folder], [table, plot, summary],
                          api_visibility="private")

    @guarded
    def on_open(results_folder, request: gr.Request):
        """Opening the tab keeps the leaderboard shown as the session's Arena view."""
        ha.record_leaderboard(ctx, session_of(request),
                              ha.read_leaderboard(ha.chosen_folder(ctx, results_folder)))

    tab.select(on_open, [results_folder], None, api_visibility="private")

    def on_row(event: gr.SelectData, results_folder, request: gr.Request):
        """Load the clicked method's model; it becomes the right-hand model. A row that cannot
        load says why in the card and changes nothing else (no error state on the plot or the
        model lists: the failure belongs to the click)."""
        try:
            board = ha.read_leaderboard(ha.chosen_folder(ctx, results_folder))
            return load_row(row_index(board, event), results_folder, request)
        except Exception as error:  # noqa: BLE001 — shown inline, see failure_notice
            return [failure_notice(error), gr.update(), gr.update()]

    @guarded
    def on_load_row(row_index, results_folder, request: gr.Request):
        """Load the model of a leaderboard row (0-based) of a results folder into this
        session."""
        return load_row(int(row_index), results_folder, request)

    def load_row(index: int, results_folder: str | None, request: gr.Request) -> list:
        session = session_of(request)
        board = ha.read_leaderboard(ha.chosen_folder(ctx, results_folder))
        entry = ha.load_method(ctx, session, board, index)
        choices = ctx.store.choices(session)
        notice = (f"**Loaded {entry.label}: it is now Explain's right-hand model** (the left "
                  "one is unchanged; pick another from the list to undo).\n\n")
        return ordered({"card": notice + model_card(entry),
                        "left_model": gr.update(choices=choices),
                        "right_model": gr.update(choices=choices, value=entry.model_id)},
                       ARENA_LOAD_OUTPUTS)

    table.select(on_row, [results_folder], [card, w.left, w.right], api_visibility="private")
    row_number = gr.Number(0, precision=0, visible=False)
    row_number.change(on_load_row, [row_number, results_folder], [card, w.left, w.right],
                      api_name="arena_load")
    return table
