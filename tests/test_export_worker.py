"""export._worker: the thread of the periodic exporters, with a fake export (no sockets)."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Iterator, List, Optional, Tuple

import pytest

from gotools_compat.export import _worker
from gotools_compat.export._worker import SKIPPED, Outcome, Worker

LOGGER = "tests.export_worker"


class FakeExport:
    """An export callable: answers from ``outcomes`` (then None), records each call."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: List[Tuple[float, Optional[float]]] = []  # (monotonic, deadline)
        self.release = threading.Event()
        self.release.set()
        self.called = threading.Event()

    def __call__(self, deadline: Optional[float]) -> Outcome:
        self.calls.append((time.monotonic(), deadline))
        self.called.set()
        self.release.wait()
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        result: Outcome = outcome
        return result


@pytest.fixture
def workers() -> Iterator[List[Worker]]:
    made: List[Worker] = []
    yield made
    for worker in made:
        worker.stop()
        worker.join(time.monotonic() + 5)


def start(workers: List[Worker], export: FakeExport, interval: float = 3600.0,
          max_backoff: Optional[float] = None) -> Worker:
    worker = Worker(export, interval, "fake export to here", logging.getLogger(LOGGER),
                    "test-worker", max_backoff)
    worker.start()
    workers.append(worker)
    return worker


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def test_periodic_exports_come_every_interval_without_a_deadline(
        workers: List[Worker]) -> None:
    export = FakeExport()
    started = time.monotonic()
    start(workers, export, interval=0.05)
    deadline = soon()
    while len(export.calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    times = [started] + [at for at, _ in export.calls[:4]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == 4
    assert all(0.05 <= gap < 1.0 for gap in gaps), gaps
    assert [d for _, d in export.calls[:4]] == [None] * 4


def test_flush_exports_now_with_its_deadline_and_returns_true(workers: List[Worker]) -> None:
    export = FakeExport()
    worker = start(workers, export)
    deadline = soon()
    assert worker.flush(deadline) is True
    assert [d for _, d in export.calls] == [deadline]


def test_flush_returns_false_when_the_export_fails(workers: List[Worker]) -> None:
    worker = start(workers, FakeExport("refused"))
    assert worker.flush(soon()) is False
    assert (worker.why, worker.failures) == ("refused", 1)


def test_flush_returns_false_by_its_deadline_when_the_export_hangs(
        workers: List[Worker]) -> None:
    export = FakeExport()
    export.release.clear()
    worker = start(workers, export)
    asked = time.monotonic()
    assert worker.flush(asked + 0.2) is False
    took = time.monotonic() - asked
    assert 0.2 <= took < 1.0
    export.release.set()
    assert worker.flush(soon()) is True


def test_backoff_doubles_from_the_interval_up_to_its_cap() -> None:
    assert [_worker.backoff(2.0, n, 30.0) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    assert _worker.backoff(2.0, 0, 30.0) == 2.0
    assert _worker.backoff(1.0, 10_000, float("inf")) == 2.0 ** 30


def test_failures_back_off_with_jitter_up_to_the_cap_and_success_resets(
        workers: List[Worker]) -> None:
    worker = start(workers, FakeExport(*["down"] * 5), interval=60.0, max_backoff=300.0)
    delays = []
    for _ in range(5):
        assert worker.flush(soon()) is False
        delays.append(worker.delay)
    for delay, expected in zip(delays, [60, 120, 240, 300, 300]):
        assert 0.8 * expected <= delay <= expected, delays
    assert worker.failures == 5
    assert worker.flush(soon()) is True
    assert (worker.failures, worker.delay) == (0, 60.0)


def test_without_max_backoff_a_failure_is_retried_after_the_interval(
        workers: List[Worker]) -> None:
    worker = start(workers, FakeExport("down", "down"), interval=60.0)
    assert worker.flush(soon()) is False
    assert worker.flush(soon()) is False
    assert (worker.failures, worker.delay) == (2, 60.0)


def test_an_outage_logs_one_warning_and_its_end_one_info(
        workers: List[Worker], caplog: pytest.LogCaptureFixture) -> None:
    worker = start(workers, FakeExport("refused", "timed out", "refused", None, "gone"),
                   interval=60.0, max_backoff=300.0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        results = [worker.flush(soon()) for _ in range(5)]
    assert results == [False, False, False, True, False]
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        ("WARNING", "fake export to here failed (refused); retrying with backoff up to "
                    "300s, totals are kept"),
        ("INFO", "fake export to here works again after 3 failed attempts"),
        ("WARNING", "fake export to here failed (gone); retrying with backoff up to 300s, "
                    "totals are kept"),
    ]


def test_the_warning_without_backoff_says_the_interval(
        workers: List[Worker], caplog: pytest.LogCaptureFixture) -> None:
    worker = start(workers, FakeExport("refused"), interval=60.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        worker.flush(soon())
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "fake export to here failed (refused); retrying every 60s, totals are kept"]


def test_a_raising_export_is_logged_and_the_thread_goes_on(
        workers: List[Worker], caplog: pytest.LogCaptureFixture) -> None:
    worker = start(workers, FakeExport(RuntimeError("bug")))
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert worker.flush(soon()) is False
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "bug" in str(errors[0].exc_info)
    assert (worker.why, worker.failures) == ("internal error", 1)
    assert worker.thread.is_alive()
    assert worker.flush(soon()) is True


def test_a_skipped_export_fails_the_flush_but_is_no_failure(
        workers: List[Worker], caplog: pytest.LogCaptureFixture) -> None:
    worker = start(workers, FakeExport(SKIPPED), interval=60.0, max_backoff=300.0)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert worker.flush(soon()) is False
    assert (worker.failures, worker.delay, worker.why) == (0, 60.0, "")
    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_close_runs_the_last_export_and_stops_the_thread_within_its_timeout(
        workers: List[Worker]) -> None:
    export = FakeExport()
    worker = start(workers, export)
    asked = time.monotonic()
    deadline = asked + 2.0
    ticket = worker.close(deadline)
    assert worker.wait_last(ticket, None, deadline, 2.0) is None
    worker.join(deadline)
    assert not worker.thread.is_alive() and time.monotonic() - asked < 2.0
    assert [d for _, d in export.calls] == [deadline]


def test_a_second_close_and_a_flush_after_close_are_refused(workers: List[Worker]) -> None:
    worker = start(workers, FakeExport())
    assert worker.close(soon()) == 1
    assert worker.close(soon()) == 0
    assert worker.stop() is False
    assert worker.flush(soon()) is False


def test_a_hung_last_export_is_given_up_at_the_timeout(
        workers: List[Worker], caplog: pytest.LogCaptureFixture) -> None:
    export = FakeExport()
    export.release.clear()
    worker = start(workers, export)
    asked = time.monotonic()
    deadline = asked + 0.2
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        why = worker.wait_last(worker.close(deadline), None, deadline, 0.2)
    assert why == "no answer within 0.2s"
    assert time.monotonic() - asked < 1.0
    export.release.set()
    worker.join(soon())
    assert not worker.thread.is_alive()


def test_a_failed_last_export_gives_its_reason_and_no_warning(
        workers: List[Worker], caplog: pytest.LogCaptureFixture) -> None:
    worker = start(workers, FakeExport("refused"))
    deadline = soon()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        why = worker.wait_last(worker.close(deadline), None, deadline, 5.0)
    assert why == "refused"
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        ("DEBUG", "the last fake export to here failed (refused)")]


def test_stop_ends_the_thread_without_a_last_export(workers: List[Worker]) -> None:
    export = FakeExport()
    worker = start(workers, export)
    assert worker.stop() is True
    worker.join(soon())
    assert not worker.thread.is_alive() and export.calls == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_restart_in_a_forked_child_gives_it_a_working_thread(workers: List[Worker]) -> None:
    export = FakeExport()
    worker = start(workers, export)
    assert worker.flush(soon()) is True
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here
        code = 3
        try:
            worker.restart()
            if worker.flush(soon()) and worker.thread.is_alive() and len(export.calls) == 2:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(export.calls) == 1
