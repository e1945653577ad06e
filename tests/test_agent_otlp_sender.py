"""gotools_compat.agent._otlp_sender: the OTLP/HTTP signal URLs, the import of the otel
extra, and the forwarding thread's delivery, retries, drops, logs and counters.

The URL rule and the import are called directly.  The thread is driven through
its public subclass :class:`TraceForwarder` (the hooks a subclass provides are
private) against the real test receiver (tests/otlp_receiver.py) or a closed
port on 127.0.0.1.  Outcomes are polled for with a deadline, never slept for.
"""

from __future__ import annotations

import json
import json.decoder
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest

from gotools_compat._oc import proto
from gotools_compat.agent._otlp import Forwarder
from gotools_compat.agent._otlp_sender import MISSING_EXTRA, load_otel, logger, signal_url
from gotools_compat.agent._otlp_traces import TraceForwarder
from gotools_compat.agent._render import render
from tests.helpers import samples, thread_started
from tests.otlp_receiver import Receiver, spans_of

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

NODE = common_pb2.Node(identifier={"host_name": "h1", "pid": 42}, service_info={"name": "svc"})
TRACE = bytes(range(1, 17))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nobody listens on it
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def span(span_id: int) -> Any:
    return trace_pb2.Span(trace_id=TRACE, span_id=span_id.to_bytes(8, "big"),
                          name={"value": "s%d" % span_id},
                          start_time={"seconds": 1_700_000_000},
                          end_time={"seconds": 1_700_000_001})


def until(condition: Callable[[], Any], what: str, deadline: float = 10.0) -> None:
    """Wait for ``condition()`` to hold, polling, for at most ``deadline`` seconds."""
    end = time.monotonic() + deadline
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < end, "not in time: " + what
        pause.wait(0.02)


def counters(sender: Any) -> Dict[str, float]:
    """The sender's own series as the agent's /metrics shows them, parsed back."""
    text = render(sender.families()).decode("utf-8")
    return {name: value for (name, labels), value in samples(text).items()}


def ids(requests: List[Any]) -> List[int]:
    return [int.from_bytes(s.span_id, "big") for _, s in spans_of(requests)]


def test_a_base_url_gets_the_signal_path_after_its_trailing_slashes() -> None:
    assert signal_url("http://c:4318", "metrics") == "http://c:4318/v1/metrics"
    assert signal_url("http://c:4318", "traces") == "http://c:4318/v1/traces"
    assert signal_url("http://c:4318/", "traces") == "http://c:4318/v1/traces"
    assert signal_url("http://c:4318///", "metrics") == "http://c:4318/v1/metrics"
    assert signal_url("  https://c/otlp/ \n", "metrics") == "https://c/otlp/v1/metrics"
    # Only a whole "/v1/<signal>" ending makes a full URL.
    assert signal_url("http://c/api/v1", "traces") == "http://c/api/v1/v1/traces"
    assert signal_url("http://c/v1/metricsx", "metrics") == "http://c/v1/metricsx/v1/metrics"


def test_a_full_url_of_the_signal_is_kept_as_given_but_for_surrounding_spaces() -> None:
    assert signal_url("https://c/otlp/v1/traces", "traces") == "https://c/otlp/v1/traces"
    assert signal_url("http://c:4318/v1/metrics/", "metrics") == "http://c:4318/v1/metrics/"
    assert signal_url(" http://c/v1/metrics\t", "metrics") == "http://c/v1/metrics"


def test_a_full_url_of_the_other_signal_has_its_last_part_replaced() -> None:
    assert signal_url("http://c:4318/v1/metrics", "traces") == "http://c:4318/v1/traces"
    assert signal_url("http://c:4318/v1/traces", "metrics") == "http://c:4318/v1/metrics"
    assert signal_url("https://c/otlp/v1/traces//", "metrics") == "https://c/otlp/v1/metrics"


def test_a_url_without_a_scheme_is_refused_naming_the_flag_and_an_example() -> None:
    for endpoint in ("c:4318", "", "  127.0.0.1:4318 ", "http:/c/v1/traces"):
        for signal in ("metrics", "traces"):
            with pytest.raises(ValueError) as caught:
                signal_url(endpoint, signal)
            # The endpoint as given (repr, spaces kept), then the example.
            assert str(caught.value) == (
                "--otlp %s: expected a URL such as http://127.0.0.1:4318" % repr(endpoint))


def test_a_url_of_another_scheme_or_without_a_host_is_refused_too() -> None:
    for endpoint in ("ftp://c:4318", "http://", "https:///v1/metrics"):
        with pytest.raises(ValueError) as caught:
            signal_url(endpoint, "metrics")
        assert str(caught.value) == (
            "--otlp %r: expected a URL such as http://127.0.0.1:4318" % endpoint)
    assert signal_url(" HTTPS://c:4318 ", "traces") == "HTTPS://c:4318/v1/traces"


def test_load_otel_imports_modules_and_resolves_dotted_attributes() -> None:
    assert load_otel() == []
    loaded = load_otel("json", "json.decoder:JSONDecoder.decode", "json:dumps")
    assert loaded == [json, json.decoder.JSONDecoder.decode, json.dumps]


def test_load_otel_turns_a_missing_module_into_the_extra_to_install() -> None:
    with pytest.raises(ImportError) as caught:
        load_otel("json", "gotools_compat_no_such_module:x")
    assert str(caught.value) == (
        "--otlp needs the OpenTelemetry packages, which are not installed: "
        "pip install 'gotools_compat[otel]' (No module named 'gotools_compat_no_such_module')")
    assert str(caught.value) == MISSING_EXTRA % "No module named 'gotools_compat_no_such_module'"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_families_name_the_unit_and_the_signal_in_prometheus_form() -> None:
    traces = TraceForwarder("http://127.0.0.1:9")
    metrics = Forwarder("http://127.0.0.1:9")
    try:
        found = {}
        for sender in (traces, metrics):
            text = render(sender.families()).decode("utf-8")
            for family in text_string_to_metric_families(text):
                found[family.name] = (family.type, family.documentation,
                                      [(s.name, s.value) for s in family.samples])
    finally:
        traces.stop(grace=0.1)
        metrics.stop(grace=0.1)
    counter, gauge = "counter", "gauge"
    assert found == {
        "gotools_agent_otlp_sent_spans": (
            counter, "Spans sent to the OTLP endpoint.",
            [("gotools_agent_otlp_sent_spans_total", 0.0)]),
        "gotools_agent_otlp_failed_trace_exports": (
            counter, "OTLP trace exports that failed (they are retried).",
            [("gotools_agent_otlp_failed_trace_exports_total", 0.0)]),
        "gotools_agent_otlp_dropped_spans": (
            counter, "Spans that could not be sent to the OTLP endpoint: queue full or stopped.",
            [("gotools_agent_otlp_dropped_spans_total", 0.0)]),
        "gotools_agent_otlp_rejected_spans": (
            counter, "Spans not forwarded because they could not be converted.",
            [("gotools_agent_otlp_rejected_spans_total", 0.0)]),
        "gotools_agent_otlp_pending_spans": (
            gauge, "Spans waiting to be sent to the OTLP endpoint.",
            [("gotools_agent_otlp_pending_spans", 0.0)]),
        "gotools_agent_otlp_sent_series": (
            counter, "Series sent to the OTLP endpoint.",
            [("gotools_agent_otlp_sent_series_total", 0.0)]),
        "gotools_agent_otlp_failed_exports": (
            counter, "OTLP exports that failed (they are retried).",
            [("gotools_agent_otlp_failed_exports_total", 0.0)]),
        "gotools_agent_otlp_dropped_series": (
            counter, "Series that could not be sent to the OTLP endpoint: queue full or stopped.",
            [("gotools_agent_otlp_dropped_series_total", 0.0)]),
        "gotools_agent_otlp_rejected_series": (
            counter, "Series not forwarded because they could not be converted.",
            [("gotools_agent_otlp_rejected_series_total", 0.0)]),
        "gotools_agent_otlp_pending_series": (
            gauge, "Series waiting to be sent to the OTLP endpoint.",
            [("gotools_agent_otlp_pending_series", 0.0)]),
    }


def test_spans_reach_the_traces_url_in_batches_in_order_and_are_counted(
        receiver: Receiver) -> None:
    before = threading.enumerate()
    sender = TraceForwarder("http://127.0.0.1:%d/" % receiver.port, batch=2)
    assert sender.url == "http://127.0.0.1:%d/v1/traces" % receiver.port
    sender.start()
    thread = thread_started(before, "gotools-agent-otlp-traces")
    assert thread.daemon
    try:
        sender.submit(NODE, None, [span(i) for i in range(1, 6)])
        requests = receiver.traces.wait_for(3)
        until(lambda: sender.sent == 5, "5 spans counted as sent")
        got = counters(sender)
    finally:
        sender.stop()
    assert not thread.is_alive()
    assert [len(spans_of([r])) for r in requests] == [2, 2, 1]
    assert ids(requests) == [1, 2, 3, 4, 5]
    assert receiver.requests == []  # nothing went to /v1/metrics
    assert got == {"gotools_agent_otlp_sent_spans_total": 5,
                   "gotools_agent_otlp_failed_trace_exports_total": 0,
                   "gotools_agent_otlp_dropped_spans_total": 0,
                   "gotools_agent_otlp_rejected_spans_total": 0,
                   "gotools_agent_otlp_pending_spans": 0}


def test_a_closed_port_counts_failures_keeps_the_spans_and_drops_them_at_the_stop(
        closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=logger.name)
    sender = TraceForwarder("http://127.0.0.1:%d" % closed_port, timeout=0.5)
    url = "http://127.0.0.1:%d/v1/traces" % closed_port
    sender.start()
    try:
        sender.submit(NODE, None, [span(1), span(2)])
        until(lambda: sender.failed_exports >= 1, "a failed export")
        while_down = counters(sender)
    finally:
        sender.stop(grace=5.0)  # returns once the last attempt is over
    assert while_down["gotools_agent_otlp_pending_spans"] == 2
    assert while_down["gotools_agent_otlp_sent_spans_total"] == 0
    assert while_down["gotools_agent_otlp_dropped_spans_total"] == 0
    # The last attempt at the stop failed too: the two pending spans are counted.
    after = counters(sender)
    assert after["gotools_agent_otlp_dropped_spans_total"] == 2
    assert after["gotools_agent_otlp_sent_spans_total"] == 0
    assert after["gotools_agent_otlp_failed_trace_exports_total"] >= 2
    messages = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert "OTLP export of 2 spans to %s failed; retrying later" % url in messages
    assert messages[-1] == "OTLP: 2 spans could not be sent before the stop"


def test_spans_queued_but_never_sent_or_after_the_stop_are_counted_as_dropped(
        closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=logger.name)
    sender = TraceForwarder("http://127.0.0.1:%d" % closed_port, timeout=0.5)
    sender.submit(NODE, None, [span(1), span(2)])  # never started
    sender.stop(grace=0.1)
    sender.submit(NODE, None, [span(3)])  # after the stop
    after = counters(sender)
    assert after["gotools_agent_otlp_dropped_spans_total"] == 3
    assert after["gotools_agent_otlp_sent_spans_total"] == 0
    assert [r.getMessage() for r in caplog.records if r.name == logger.name] == [
        "OTLP: 2 spans queued were not sent before the stop"]


def test_spans_refused_by_the_receiver_are_retried_and_each_arrives_once(
        receiver: Receiver) -> None:
    receiver.fail_status = 400  # not retried by the SDK exporter: by the sender
    sender = TraceForwarder("http://127.0.0.1:%d" % receiver.port, timeout=2.0)
    sender.start()
    try:
        sender.submit(NODE, None, [span(7), span(8)])
        receiver.wait_for_failures(1)
        until(lambda: sender.failed_exports >= 1, "the refusal counted")
        assert counters(sender)["gotools_agent_otlp_pending_spans"] == 2
        receiver.fail_status = 0
        receiver.traces.wait_for(1)
        until(lambda: sender.sent == 2, "2 spans counted as sent")
        got = counters(sender)
    finally:
        sender.stop()
    assert ids(receiver.traces.requests) == [7, 8]
    assert got["gotools_agent_otlp_pending_spans"] == 0
    assert got["gotools_agent_otlp_dropped_spans_total"] == 0
    assert got["gotools_agent_otlp_failed_trace_exports_total"] == receiver.failures


def test_a_full_queue_drops_the_oldest_request_and_sends_the_rest(
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=logger.name)
    sender = TraceForwarder("http://127.0.0.1:%d" % receiver.port, max_queue=2)
    # Not started yet: nothing drains the queue.
    sender.submit(NODE, None, [span(1)])
    sender.submit(NODE, None, [span(2), span(3)])
    sender.submit(NODE, None, [span(4), span(5), span(6)])
    assert sender.dropped == 1
    assert [r.getMessage() for r in caplog.records if r.name == logger.name] == [
        "OTLP forwarding of spans is behind: a queued request was dropped"]
    sender.start()
    try:
        receiver.traces.wait_for(1)
        until(lambda: sender.sent == 5, "5 spans counted as sent")
    finally:
        sender.stop()
    # Both queued requests were taken at once: one export of their five spans.
    assert ids(receiver.traces.requests) == [2, 3, 4, 5, 6]
    assert len(receiver.traces.requests) == 1
    assert counters(sender)["gotools_agent_otlp_dropped_spans_total"] == 1


class _Raising:
    """An SDK-style span exporter whose export raises."""

    def __init__(self) -> None:
        self.calls = 0
        self.shut_down = False

    def export(self, spans: Any) -> Any:
        self.calls += 1
        raise RuntimeError("exporter broke (%d)" % self.calls)

    def shutdown(self) -> None:
        self.shut_down = True


def test_an_exporter_that_raises_is_counted_logged_and_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=logger.name)
    exporter = _Raising()
    sender = TraceForwarder("http://127.0.0.1:9/v1/metrics", exporter=exporter)
    before = threading.enumerate()
    sender.start()
    thread = thread_started(before, "gotools-agent-otlp-traces")
    try:
        sender.submit(NODE, None, [span(1)])
        until(lambda: sender.failed_exports >= 2, "a retry after the first exception")
        assert thread.is_alive()
    finally:
        sender.stop(grace=0.5)
    assert exporter.shut_down
    assert (sender.sent, sender.dropped) == (0, 1)
    assert sender.failed_exports == exporter.calls
    raised = [r for r in caplog.records
              if r.getMessage() == "OTLP export to http://127.0.0.1:9/v1/traces failed"]
    assert len(raised) == exporter.calls
    assert raised[0].exc_info is not None
    assert str(raised[0].exc_info[1]) == "exporter broke (1)"
