"""gotools_compat.export._lifetime: the live exporters, closed at exit and restarted after fork.

The exit and fork hooks a :class:`LiveSet` registers are captured (nothing is
registered with the interpreter) and called directly; the exporters are
stand-ins with the two members a LiveSet uses.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import weakref
from typing import Callable, Dict, List, Tuple

import pytest

from gotools_compat.export import _lifetime
from gotools_compat.export._lifetime import LiveSet


class Exporter:
    def __init__(self, name: str) -> None:
        self.name = name
        self._send_lock = threading.Lock()
        self.restarted = 0

    def _after_fork_in_child(self) -> None:
        self.restarted += 1

    def __repr__(self) -> str:
        return "Exporter(%s)" % self.name


class Hooks:
    """What a LiveSet registered with atexit and os.register_at_fork."""

    def __init__(self) -> None:
        self.at_exit: List[Callable[[], None]] = []
        self.at_fork: List[Dict[str, Callable[[], None]]] = []

    def exit(self) -> None:
        [hook] = self.at_exit
        hook()

    def fork(self, when: str) -> None:
        [hooks] = self.at_fork
        hooks[when]()


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Hooks:
    captured = Hooks()
    monkeypatch.setattr(_lifetime.atexit, "register", captured.at_exit.append)
    monkeypatch.setattr(_lifetime.os, "register_at_fork",
                        lambda **kw: captured.at_fork.append(kw), raising=False)
    return captured


def closing_set() -> Tuple[LiveSet[Exporter], List[str]]:
    closed: List[str] = []
    return LiveSet(lambda e: closed.append(e.name)), closed


# Membership.

def test_an_added_exporter_is_held_strongly_until_discarded(hooks: Hooks) -> None:
    live, _ = closing_set()
    exporter = Exporter("a")
    ref = weakref.ref(exporter)
    live.add(exporter)
    del exporter
    gc.collect()
    assert ref() is not None and ref() in live and len(live) == 1
    live.discard(ref())  # type: ignore[arg-type]
    gc.collect()
    assert ref() is None and len(live) == 0


def test_discarding_an_exporter_not_in_the_set_is_not_an_error(hooks: Hooks) -> None:
    live, _ = closing_set()
    live.discard(Exporter("never added"))
    assert len(live) == 0


def test_iterating_is_over_a_copy_so_exporters_may_leave_meanwhile(hooks: Hooks) -> None:
    live, _ = closing_set()
    exporters = [Exporter(n) for n in "abc"]
    for e in exporters:
        live.add(e)
    seen = []
    for e in live:
        live.discard(e)
        seen.append(e.name)
    assert sorted(seen) == ["a", "b", "c"]
    assert len(live) == 0


# The hooks.

def test_the_exit_and_fork_hooks_are_registered_once_at_the_first_add(hooks: Hooks) -> None:
    live, _ = closing_set()
    assert (hooks.at_exit, hooks.at_fork) == ([], [])
    live.add(Exporter("a"))
    live.add(Exporter("b"))
    assert len(hooks.at_exit) == 1
    assert [sorted(h) for h in hooks.at_fork] == [
        ["after_in_child", "after_in_parent", "before"]]


def test_without_register_at_fork_only_the_exit_hook_is_registered(
        hooks: Hooks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "register_at_fork")
    live, _ = closing_set()
    live.add(Exporter("a"))
    assert (len(hooks.at_exit), hooks.at_fork) == (1, [])


def test_at_exit_each_exporter_still_live_is_closed(hooks: Hooks) -> None:
    live, closed = closing_set()
    for name in "abc":
        live.add(Exporter(name))
    live.discard(next(e for e in live if e.name == "b"))
    hooks.exit()
    assert sorted(closed) == ["a", "c"]


def test_a_close_that_fails_at_exit_is_logged_and_the_others_still_close(
        hooks: Hooks, caplog: pytest.LogCaptureFixture) -> None:
    closed: List[str] = []

    def close(e: Exporter) -> None:
        if e.name == "bad":
            raise RuntimeError("boom")
        closed.append(e.name)

    live: LiveSet[Exporter] = LiveSet(close)
    for name in ("x", "bad", "y"):
        live.add(Exporter(name))
    with caplog.at_level(logging.ERROR, logger=_lifetime.__name__):
        hooks.exit()
    assert sorted(closed) == ["x", "y"]
    assert [r.getMessage() for r in caplog.records] == ["closing Exporter(bad) at exit failed"]
    assert caplog.records[0].exc_info[1].args == ("boom",)  # type: ignore[index]


def test_before_fork_holds_the_set_and_every_send_lock(hooks: Hooks) -> None:
    live, _ = closing_set()
    exporters = [Exporter(n) for n in "ab"]
    for e in exporters:
        live.add(e)
    hooks.fork("before")
    assert [e._send_lock.locked() for e in exporters] == [True, True]
    added = threading.Event()
    adder = threading.Thread(target=lambda: (live.add(Exporter("c")), added.set()))
    adder.start()
    assert not added.wait(0.1)  # the set is held: an exporter started meanwhile waits
    hooks.fork("after_in_parent")
    assert added.wait(5)
    adder.join()
    assert [e._send_lock.locked() for e in exporters] == [False, False]
    assert [e.restarted for e in exporters] == [0, 0] and len(live) == 3


def test_before_fork_waits_for_an_export_in_flight(hooks: Hooks) -> None:
    live, _ = closing_set()
    exporter = Exporter("a")
    live.add(exporter)
    exporter._send_lock.acquire()  # an export in flight
    forked = threading.Event()

    def fork() -> None:
        hooks.fork("before")
        forked.set()

    thread = threading.Thread(target=fork)
    thread.start()
    assert not forked.wait(0.1)
    exporter._send_lock.release()  # the export ends
    assert forked.wait(5)
    thread.join()
    hooks.fork("after_in_parent")
    assert not exporter._send_lock.locked()


def test_in_the_child_each_exporter_live_at_the_fork_restarts_once(hooks: Hooks) -> None:
    live, _ = closing_set()
    exporters = [Exporter(n) for n in "ab"]
    for e in exporters:
        live.add(e)
    hooks.fork("before")
    hooks.fork("after_in_child")
    assert [e.restarted for e in exporters] == [1, 1]


def test_in_the_child_the_set_has_a_new_free_lock(hooks: Hooks) -> None:
    live, _ = closing_set()
    live.add(Exporter("a"))
    hooks.fork("before")  # holds the set's lock, which the child inherits held
    hooks.fork("after_in_child")
    added = threading.Event()
    threading.Thread(target=lambda: (live.add(Exporter("b")), added.set()), daemon=True).start()
    assert added.wait(5)  # the child's set has a lock of its own, free
    assert len(live) == 2


def test_the_child_restarts_the_exporters_live_at_its_own_fork(hooks: Hooks) -> None:
    live, _ = closing_set()
    early = Exporter("a")
    live.add(early)
    hooks.fork("before")
    hooks.fork("after_in_parent")
    late = Exporter("late")
    live.add(late)
    hooks.fork("before")
    hooks.fork("after_in_child")
    assert (early.restarted, late.restarted) == (1, 1)
    assert sorted(e.name for e in live) == ["a", "late"]
