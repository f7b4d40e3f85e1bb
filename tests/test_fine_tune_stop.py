"""Issue 30, defect 1: Stop ends a fine-tune with "Stopped", and the times it reports are real.

The worker process is replaced by :class:`ThreadWorker` (the real :func:`run_job` in a thread,
with a start-up the test controls, no process), and the handlers' clock by :class:`Clock`, which
advances one second each time the handler waits for a report: no timing race, no sleeps.
"""

from __future__ import annotations

import queue
import threading

import pytest
from ui_fixtures import make_context

from explorer.handlers import train as handlers_train
from explorer.handlers import train_worker


class Clock:
    """A clock that moves one second per wait of the handler for a report."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ThreadWorker:
    """:class:`explorer.handlers.train_worker.FitWorker`'s interface over :func:`run_job` in a
    thread. ``start_up`` waits pass before the job begins (``None``: it never begins, as a
    worker stuck in its start-up); each wait moves ``clock`` by one second."""

    clock: Clock
    start_up: int | None = 3
    instances: list[ThreadWorker] = []

    def __init__(self, job) -> None:
        self.job, self.reports, self.stop_event = job, queue.Queue(), threading.Event()
        self.waits, self.thread, self.killed = 0, None, False
        ThreadWorker.instances.append(self)

    pid = 4242

    def start(self) -> None:
        pass

    def alive(self) -> bool:
        return not self.killed and (self.thread is None or self.thread.is_alive())

    def next_report(self, timeout: float = 0.2):
        self.clock.now += 1.0
        self.waits += 1
        if self.thread is None and self.start_up is not None and self.waits > self.start_up:
            self.thread = threading.Thread(target=train_worker.run_job,
                                           args=(self.job, self.reports, self.stop_event))
            self.thread.start()
        if self.thread is None:
            return None
        try:
            return self.reports.get(timeout=30)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self.stop_event.set()

    def exit_code(self):
        return -9 if self.killed else 0

    def close(self, grace_s: float = 30.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join()
        self.killed = self.killed or grace_s == 0


@pytest.fixture
def worker(monkeypatch):
    clock = Clock()
    ThreadWorker.clock, ThreadWorker.start_up, ThreadWorker.instances = clock, 3, []
    monkeypatch.setattr(handlers_train, "FitWorker", ThreadWorker)
    monkeypatch.setattr(handlers_train, "clock", clock, raising=False)
    return ThreadWorker


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


def request(**settings):
    values = dict(base_id="standard", source="samples", method="standard", epochs=1)
    return handlers_train.FineTuneRequest(**(values | settings))


@pytest.mark.timeout(60)
def test_stop_while_the_worker_starts_ends_at_once_with_stopped(ctx, worker):
    worker.start_up = None  # a worker that never gets through its start-up
    stop = threading.Event()
    run = handlers_train.fine_tune(ctx, "ann", request(), stop=stop)
    first = next(run)
    assert first.status.startswith("Starting")
    stop.set()
    rest = list(run)  # before the fix: relayed "no report yet" forever
    assert rest[-1].status.startswith("Stopped after") and rest[-1].entry is None
    assert worker.instances[0].killed  # nothing trained, so nothing to wait for
    assert not list(ctx.session_dir("ann").glob("*.safetensors"))


@pytest.mark.timeout(60)
def test_a_step_that_outlasts_the_grace_after_stop_is_cut_short(ctx, worker, monkeypatch):
    monkeypatch.setattr(handlers_train, "STOP_GRACE_S", 2.0, raising=False)
    stop = threading.Event()
    updates = []
    for update in handlers_train.fine_tune(ctx, "bea", request(epochs=20), stop=stop):
        updates.append(update)
        if update.status.startswith("Step"):
            stop.set()
            # the worker never sees the stop: its steps go on, so only the grace ends the run
            worker.instances[0].stop = lambda: None
    assert updates[-1].status.startswith("Stopped after"), updates[-1].status
    assert updates[-1].entry is None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_start_up_is_narrated_and_done_counts_from_the_click(ctx, worker):
    worker.start_up = 4
    updates = list(handlers_train.fine_tune(ctx, "cid", request()))
    starting = [u.status for u in updates if u.status.startswith("Starting")]
    assert len(starting) >= 4  # one per second of start-up, each with the time so far
    assert "worker process" in starting[1] and "(1 s)" in starting[1], starting
    done = updates[-1].status
    assert done.startswith("Done in ") and "from the click" in done, done
    total = float(done.split("Done in ")[1].split(" s")[0])
    ready = float(done.split("start-up ")[1].split(" s")[0])
    assert ready >= 4 and total > ready, done  # the start-up is in the total, and named


def test_the_stop_button_does_not_cancel_the_run_it_stops(tmp_path):
    from ui_fixtures import tiny_models, write_samples

    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    dependencies = demo.get_config_file()["dependencies"]
    fine_tune = next(d["id"] for d in dependencies if d.get("api_name") == "fine_tune")
    button = next(d["targets"] for d in dependencies if d.get("api_name") == "stop_fine_tune")
    # before the fix: a second dependency on the Stop click cancelled the run
    assert not [d for d in dependencies if d["targets"] == button
                and fine_tune in (d.get("cancels") or [])]
