"""The committed results tables equal what ``python -m scripts.results_tables`` renders."""

import json
from pathlib import Path

import pytest

from scripts.results_table_makers import TABLES, latest
from scripts.results_tables import DOCUMENTS, ROOT, render, stale_tables


@pytest.mark.parametrize("document", DOCUMENTS)
def test_committed_tables_equal_a_fresh_rendering_of_the_committed_json(document):
    assert not stale_tables(Path(document)), (
        f"{document}: tables out of date; run python -m scripts.results_tables")


def test_docs_results_holds_every_table_at_least_once():
    text = (ROOT / "docs/results.md").read_text()
    assert [name for name in TABLES if f"<!-- table:{name} -->" not in text] == []


def test_a_table_is_rendered_between_its_markers_with_its_source_linked(tmp_path):
    folder = tmp_path / "results" / "bias_speed"
    folder.mkdir(parents=True)
    record = {"command": "python -m benchmarks.bias_speed --count 10", "date": "2026-01-02",
              "settings": {"count": 10, "size": 64}, "load_average_before": [1.0, 1, 1],
              "load_average_after": [2.0, 1, 1],
              "rows": [{"kind": "shape", "load_s": 0.5, "bias_s": 0.25, "total_s": 0.75,
                        "skipped": 1, "budget_ratio": 0.025}]}
    (folder / "2026-01-01-old.json").write_text(json.dumps({**record, "rows": []}))
    (folder / "2026-01-02-cpu-2-cores.json").write_text(json.dumps(record))
    text = "before\n<!-- table:bias-speed -->\nstale\n<!-- /table -->\nafter\n"

    fresh = render(text, Path("docs/x.md"), tmp_path)

    assert fresh.startswith("before\n<!-- table:bias-speed -->\n| kind |")
    assert "| shape | 0.50 | 0.25 | 0.75 | 1 | 0.025 |" in fresh
    assert "[`results/bias_speed/2026-01-02-cpu-2-cores.json`]" \
           "(../results/bias_speed/2026-01-02-cpu-2-cores.json)" in fresh
    assert "(`python -m benchmarks.bias_speed --count 10`)" in fresh
    assert "load average (1 min) 1.0 → 2.0" in fresh
    assert fresh.endswith("<!-- /table -->\nafter\n")
    assert "stale" not in fresh


def test_a_benchmark_without_a_record_says_how_to_make_one(tmp_path):
    text = "<!-- table:finetune -->\n<!-- /table -->\n"
    assert "python -m benchmarks.finetune" in render(text, Path("README.md"), tmp_path)
    with pytest.raises(FileNotFoundError):
        latest(tmp_path, "finetune")


def test_an_unknown_table_name_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="arena-h200"):
        render("<!-- table:nothing -->\n<!-- /table -->\n", Path("README.md"), tmp_path)
