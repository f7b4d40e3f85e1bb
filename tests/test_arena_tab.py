"""The Arena tab, round two (issue 33) and issue 30's defect 9: rows over seeds with the
robustness columns, a table sortable by any column, which rows can load said before the click,
clean folder labels, parameter counts with thousands separators, read-only cells, and a row
click that says it replaced Explain's right-hand model."""

from __future__ import annotations

import json

import gradio as gr
import pytest
import torch
from ui_fixtures import build_tiny_demo

import isnet
from benchmarks.arena_report import markdown_table, plot, table_rows
from explorer.handlers import arena as ha
from explorer.tabs import arena as ta
from isnet.io.checkpoints import save_checkpoint

pytestmark = pytest.mark.timeout(180)
KINDS = ("shape", "decoy", "text", "tint", "texture")


def run_record(method, seed, accuracies, drops, device="cpu", split="biased", params=6964106):
    """One run's record as benchmarks/arena.py writes it (``--seeds``)."""
    return {"method": method, "title": method.title(), "model": "tiny_densenet", "seed": seed,
            "train_split": split, "file": f"{method}-seed{seed}", "status": "completed",
            "parameters": params, "train_seconds_per_epoch": 2.0, "native_map": "LRP",
            "inference_ms_per_image": 0.5, "lrp_input_rule": "z^B", "device": device,
            "splits": {s: {"accuracy": a, "background_share_lrp": 0.1,
                           "background_share_native": None}
                       for s, a in zip(("biased", "unbiased", "confounding"), accuracies,
                                       strict=True)},
            "robustness": {k: {"clean": accuracies[1], "planted": accuracies[1] - d / 100,
                               "drop_points": d} for k, d in zip(KINDS, drops, strict=True)},
            "command": "python -m benchmarks.arena --seeds 0 1"}


RECORDS = [run_record("background_swap", 0, (0.80, 0.78, 0.79), (1.0, 2.0, 0.0, 10.0, 4.0)),
           run_record("background_swap", 1, (0.82, 0.80, 0.80), (3.0, 0.0, 1.0, 6.0, 2.0)),
           run_record("standard", 0, (1.0, 0.3, 0.0), (5.0, 5.0, 5.0, 50.0, 40.0),
                      device="CPU", params=151242)]


def write_folder(folder, checkpoint_of=("background_swap-seed1",)):
    """A results folder as ``benchmarks.arena --seeds`` writes it (arena.json with rows)."""
    folder.mkdir(parents=True)
    rows = table_rows(RECORDS, ["standard", "background_swap"])
    (folder / "arena.json").write_text(json.dumps({
        "command": "python -m benchmarks.arena", "device": "cpu, CPU", "data": {"size": 64},
        "methods": RECORDS, "rows": rows}))
    for stem in checkpoint_of:
        torch.manual_seed(0)
        save_checkpoint(folder / f"{stem}.safetensors",
                        isnet.create_model("tiny_densenet", num_classes=3),
                        class_names=["a", "b", "c"], input_size=32,
                        config={"method": "background_swap"})
    return folder


def test_rows_over_seeds_give_mean_range_and_count():
    rows = table_rows(RECORDS, ["standard", "background_swap"])
    assert [r["method"] for r in rows] == ["standard", "background_swap"]
    swap = rows[1]["columns"]
    assert swap["acc_unbiased"] == pytest.approx({"mean": 79.0, "low": 78.0, "high": 80.0,
                                                  "count": 2})
    assert swap["drop_tint"]["mean"] == pytest.approx(8.0)
    assert swap["worst_drop"] == pytest.approx({"mean": 8.0, "low": 6.0, "high": 10.0,
                                                "count": 2})
    assert swap["gap_points"]["high"] == pytest.approx(2.0)
    table = markdown_table(rows, ["cmd"], "CPU")
    assert "| 2 (fewer than 3) |" in table and "79.0 (78.0–80.0)" in table
    assert "6,964,106" in table and "tint drop" in table


def test_plot_has_a_panel_for_unseen_kinds(tmp_path):
    import matplotlib.image

    plot(table_rows(RECORDS), tmp_path / "arena.png")
    height, width = matplotlib.image.imread(tmp_path / "arena.png").shape[:2]
    assert width > 1.8 * height  # two panels side by side


def test_the_tab_shows_robustness_columns_and_seeds(tmp_path):
    board = ha.read_leaderboard(write_folder(tmp_path / "arena-seeds"))
    assert board.methods == ["standard", "background_swap"]
    swap = dict(zip(ha.HEADERS, board.rows[1], strict=True))
    assert swap["tint drop (points)"] == 8.0 and swap["Worst unseen drop (points)"] == 8.0
    assert swap["Seeds"] == "2 (< 3)" and swap["Acc. unbiased %"] == 79.0
    assert swap["Checkpoint"] == "load" and board.rows[0][-1] == "—"
    assert board.checkpoints["background_swap"].endswith("background_swap-seed1.safetensors")


def test_which_rows_can_load_is_said_before_any_click(tmp_path):
    board = ha.read_leaderboard(write_folder(tmp_path / "arena-seeds"))
    assert "Rows whose model can load (click the row): Background_Swap" in board.summary
    assert "the others have no checkpoint here" in board.summary
    none = ha.read_leaderboard(write_folder(tmp_path / "bare", checkpoint_of=()))
    assert "No row's model can load" in none.summary


def test_folder_labels_name_each_device_once(tmp_path):
    label = ha.folder_label(write_folder(tmp_path / "arena-cpu"))
    assert label == "arena-cpu: 2 methods, CPU, 64 px"  # not "cpu, CPU, CPU"


def test_parameter_counts_show_thousands_separators_and_sort_as_numbers(tmp_path):
    board = ha.read_leaderboard(write_folder(tmp_path / "arena-seeds"))
    table = gr.Dataframe(headers=ha.HEADERS, datatype=ha.DATATYPES)
    shown = table.postprocess(ta.styled(board)).model_dump()
    column = ha.HEADERS.index("Parameters")
    assert [r[column] for r in shown["metadata"]["display_value"]] == ["151,242", "6,964,106"]
    assert [r[column] for r in shown["data"]] == [151242, 6964106]  # numbers underneath
    assert ha.DATATYPES[ha.HEADERS.index("tint drop (points)")] == "number"


def test_a_click_on_a_sorted_table_loads_the_clicked_row(tmp_path):
    board = ha.read_leaderboard(write_folder(tmp_path / "arena-seeds"))
    # sorted by a column, the second row of the board is shown first: index 0, its cells
    event = gr.SelectData(None, {"index": [0, 0], "value": board.rows[1][0],
                                 "row_value": board.rows[1]})
    assert ta.row_index(board, event) == 1
    unsorted = gr.SelectData(None, {"index": [1, 0], "value": board.rows[1][0]})
    assert ta.row_index(board, unsorted) == 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("arena-tab")
    return build_tiny_demo(folder, arena_dir=write_folder(folder / "results" / "arena-seeds"))


def _table(demo):
    [table] = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "arena-table"]
    return table


def test_cells_are_read_only_and_sortable(demo):
    table = _table(demo)
    assert table.interactive is False
    assert table.static_columns == list(range(len(ha.HEADERS)))
    assert table.datatype == ha.DATATYPES


def test_a_row_click_says_it_replaced_the_right_hand_model(demo):
    table = _table(demo)
    [select] = [f for f in demo.fns.values() if (table._id, "select") in f.targets]
    event = gr.SelectData(table, {"index": [1, 0], "value": "Background_Swap"})
    card, _, right = select.fn(event, "arena-seeds", None)
    assert "it is now Explain's right-hand model" in card
    assert right["value"].startswith("arena")  # the loaded model, on the right
