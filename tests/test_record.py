"""The benchmarks' run record: what it holds and where it goes."""

import json

import pytest

from benchmarks.record import finish_record, machine_name, record_path, start_record


def test_a_record_holds_the_command_machine_versions_date_and_both_load_averages(tmp_path):
    record = start_record("tiny-bench", threads=1)
    record["rows"] = [{"name": "a", "seconds": 1.5}]
    path = finish_record(record, root=tmp_path)

    assert path == tmp_path / "tiny-bench" / f"{record['date']}-{machine_name()}.json"
    written = json.loads(path.read_text())
    assert written["command"].startswith("python -m ")
    assert written["machine"]["torch_threads"] == 1
    assert {"torch", "python", "cpu_count", "device", "git_commit"} <= set(written["machine"])
    assert len(written["load_average_before"]) == 3
    assert len(written["load_average_after"]) == 3
    assert written["rows"] == [{"name": "a", "seconds": 1.5}]
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left


def test_a_second_run_on_the_same_day_replaces_the_first_and_out_overrides_the_place(tmp_path):
    first = finish_record({**start_record("bench"), "value": 1}, root=tmp_path)
    second = finish_record({**start_record("bench"), "value": 2}, root=tmp_path)
    assert first == second
    assert json.loads(second.read_text())["value"] == 2
    chosen = finish_record(start_record("bench"), out=tmp_path / "elsewhere.json")
    assert chosen == tmp_path / "elsewhere.json"
    assert record_path(start_record("bench"), tmp_path) == first


def test_a_machine_name_is_safe_in_a_file_name():
    assert machine_name("cpu").startswith("cpu-")
    assert machine_name("cpu").endswith("-cores")


def test_a_benchmark_name_that_cannot_name_a_folder_is_refused():
    with pytest.raises(ValueError, match="lower-case"):
        start_record("../Up There")
