"""Specification of isnet.analysis.workers: batches on several threads, in order, clean stops."""

import threading

import pytest
import torch

from isnet.analysis.workers import default_workers, ordered_map


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_results_come_in_the_items_order(workers):
    assert list(ordered_map(lambda n: n * n, range(10), workers)) == [n * n for n in range(10)]


def test_order_holds_when_a_later_item_finishes_first():
    second_done = threading.Event()

    def work(item):
        if item == 0:  # the first item waits until the second has finished
            assert second_done.wait(timeout=30)
        if item == 1:
            second_done.set()
        return item

    assert list(ordered_map(work, range(4), workers=2)) == [0, 1, 2, 3]


def test_stop_keeps_exactly_what_was_yielded_and_starts_nothing_more():
    started = []
    lock = threading.Lock()
    stop = threading.Event()

    def work(item):
        with lock:
            started.append(item)
        return item

    got = []
    for result in ordered_map(work, range(100), workers=3, should_stop=stop.is_set):
        got.append(result)
        stop.set()  # after the first result: items in flight are dropped
    assert got == [0]
    assert len(started) <= 3  # no item starts after the stop (at most those in flight)


def test_closing_the_generator_stops_it():
    results = ordered_map(lambda n: n, range(100), workers=2)
    assert next(results) == 0
    results.close()
    assert list(results) == []


def test_an_error_reaches_the_caller_when_its_result_is_due():
    def work(item):
        if item == 2:
            raise ValueError("bad item 2")
        return item

    got = []
    with pytest.raises(ValueError, match="bad item 2"):
        for result in ordered_map(work, range(5), workers=2):
            got.append(result)
    assert got == [0, 1]


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        list(ordered_map(lambda n: n, range(3), workers=0))


def test_default_workers_never_oversubscribe_the_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert default_workers() == 4
        torch.set_num_threads(2)
        assert default_workers() == 2
        torch.set_num_threads(3)
        assert default_workers() == 1
    finally:
        torch.set_num_threads(threads)
    assert default_workers("meta") == 1  # not the CPU: one batch at a time
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)), raising=False)
    try:
        torch.set_num_threads(1)
        assert default_workers() == 4 and default_workers(limit=8) == 8  # memory bounds them
    finally:
        torch.set_num_threads(threads)
