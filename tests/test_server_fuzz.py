"""Random requests at a real Agent: every one is answered with a status of the front
door's, well-framed POSTs of random bodies with 200, 400 or 413, and afterwards
/metrics parses and a series stored before is unchanged."""

from __future__ import annotations

import json
import os
import socket
import string
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat._oc import proto
from gotools_compat._server import Limits
from gotools_compat.agent import Agent
from tests.front_door import connect, parse, read_to_eof

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

GO_METRICS = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-metrics.json").read_bytes()
ANSWERS = {200, 400, 404, 405, 408, 411, 413, 431}
MAX_BODY = 16 * 1024
# FUZZ_EXAMPLES=5000 for a deeper search than the suite's.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    a = Agent("127.0.0.1:0", "127.0.0.1:0", max_message_bytes=MAX_BODY,
              limits=Limits(header_timeout=2.0, body_timeout=2.0, max_header_bytes=2048,
                            max_connections=1000)).start()
    try:
        assert post(a.port, GO_METRICS, "application/json")[0] == 200
        yield a
    finally:
        a.stop()


def scrape(agent: Agent) -> str:
    assert agent.prometheus_port is not None
    [(status, _, body)] = parse(send(agent.prometheus_port, b"GET /metrics HTTP/1.1\r\nHost: x"
                                     b"\r\nConnection: close\r\n\r\n"))
    assert status == 200
    text = body.decode("utf-8")
    assert list(text_string_to_metric_families(text))
    return text


def gopls(text: str) -> List[str]:
    return [line for line in text.split("\n") if 'job="gopls"' in line]


def send(port: int, data: bytes) -> bytes:
    """``data`` on a new connection, half-closed after it; the reply until the close."""
    with connect(port) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # answered and closed before all of it was sent
            pass
        return read_to_eof(sock)


def post(port: int, body: bytes, content_type: str) -> List[int]:
    return [s for s, _, _ in parse(send(port, b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                                        % (content_type.encode(), len(body), body)))]


def final_statuses(reply: bytes, head_request: bool) -> List[int]:
    while reply.startswith(b"HTTP/1.1 1"):  # 100 Continue
        reply = reply.partition(b"\r\n\r\n")[2]
    if head_request and reply.startswith(b"HTTP/1.1 4") and not reply.endswith(b"\r\n\r\n"):
        # Refused before the method was known (by h11): a body, though it was a HEAD.
        [(status, headers, body)] = parse(reply)
        assert headers["connection"] == "close" and body.startswith(b'{"error": "invalid HTTP')
        return [status]
    return [s for s, _, _ in parse(reply, head_request) if s >= 200]


def run_then_check(agent: Agent, run: Callable[[], None]) -> None:
    before = gopls(scrape(agent))
    assert len(before) > 10
    run()
    assert gopls(scrape(agent)) == before


# -- bodies ----------------------------------------------------------------------

ODD = st.sampled_from(["\ud800", "\udfff", "a\ud800b", "\ud83d\ude00", "\x00", "\u2028", "é",
                       "", " ", "le", "__name__", "a{b}", 'q"\\\n'])
STRINGS = st.one_of(st.text(max_size=12), ODD)
KEYS = st.sampled_from(["node", "metrics", "metric_descriptor", "metricDescriptor", "name",
                        "type", "timeseries", "points", "int64Value", "doubleValue",
                        "distributionValue", "label_keys", "labelValues", "label_values",
                        "key", "value", "hasValue", "service_info", "identifier", "host_name",
                        "pid", "resource", "count", "sum", "buckets", "bucketOptions",
                        "explicit", "bounds", "timestamp", "startTimestamp", "unit"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | STRINGS, inner,
                                                                max_size=4),
    max_leaves=25)
POINT_VALUES = st.one_of(
    st.integers(-2 ** 70, 2 ** 70).map(lambda v: {"int64Value": v}),
    st.one_of(st.floats(), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]))
    .map(lambda v: {"doubleValue": v}),
    st.fixed_dictionaries({"count": st.integers(-5, 10), "sum": st.floats(),
                           "bucketOptions": st.just({"explicit": {"bounds": [1, 2]}}),
                           "buckets": st.lists(st.fixed_dictionaries(
                               {"count": st.integers(-3, 9)}), max_size=4)})
    .map(lambda v: {"distributionValue": v}),
    JSON)
METRIC_SHAPED = st.fixed_dictionaries({
    "node": st.fixed_dictionaries({"service_info": st.fixed_dictionaries({"name": STRINGS}),
                                   "identifier": st.fixed_dictionaries(
                                       {"host_name": STRINGS, "pid": st.integers(0, 2 ** 33)})}),
    "metrics": st.lists(st.fixed_dictionaries({
        "metric_descriptor": st.fixed_dictionaries({
            "name": STRINGS, "description": STRINGS, "unit": STRINGS,
            "type": st.integers(-1, 9),
            "label_keys": st.lists(st.fixed_dictionaries({"key": STRINGS}), max_size=3)}),
        "timeseries": st.lists(st.fixed_dictionaries({
            "label_values": st.lists(st.fixed_dictionaries(
                {"value": STRINGS, "has_value": st.booleans()}), max_size=3),
            "points": st.lists(POINT_VALUES, max_size=2)}), max_size=3)}), max_size=3)})


@st.composite
def json_bodies(draw: Any) -> bytes:
    value = draw(st.one_of(JSON, METRIC_SHAPED))
    if draw(st.booleans()):
        return json.dumps(value).encode("ascii")  # lone surrogates as \ud800 escapes
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _binary_request(service: str, name: str, values: List[int], label: str) -> bytes:
    return metrics_service_pb2.ExportMetricsServiceRequest(  # type: ignore[no-any-return]
        node=common_pb2.Node(identifier=common_pb2.ProcessIdentifier(host_name="f", pid=1),
                             service_info=common_pb2.ServiceInfo(name=service)),
        metrics=[metrics_pb2.Metric(
            metric_descriptor=metrics_pb2.MetricDescriptor(
                name=name, type=metrics_pb2.MetricDescriptor.CUMULATIVE_INT64,
                label_keys=[metrics_pb2.LabelKey(key=label)]),
            timeseries=[metrics_pb2.TimeSeries(
                label_values=[metrics_pb2.LabelValue(value=label, has_value=True)],
                points=[metrics_pb2.Point(int64_value=v) for v in values])])],
    ).SerializeToString()


SAFE = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
PROTOBUF = st.one_of(
    st.binary(max_size=300),
    st.builds(_binary_request, SAFE, SAFE, st.lists(st.integers(-2 ** 63, 2 ** 63 - 1),
                                                    max_size=3), SAFE),
    st.tuples(st.builds(_binary_request, SAFE, SAFE, st.lists(st.integers(0, 9), max_size=2),
                        SAFE), st.integers(0, 60), st.binary(max_size=4))
    .map(lambda t: t[0][:t[1]] + t[2]),  # cut short, with junk after
)


def test_well_framed_posts_of_random_bodies_are_200_400_or_413(agent: Agent) -> None:
    @FUZZ
    @given(body=st.one_of(json_bodies(), PROTOBUF, st.binary(min_size=MAX_BODY - 8,
                                                             max_size=MAX_BODY + 8)),
           binary=st.booleans(), chunks=st.lists(st.integers(1, 700), max_size=5),
           on_grpc_port=st.booleans())
    def run(body: bytes, binary: bool, chunks: List[int], on_grpc_port: bool) -> None:
        content_type = b"application/x-protobuf" if binary else b"application/json"
        head = b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n" % content_type
        if chunks:
            data = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, chunks)
        else:
            data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        port = agent.port if on_grpc_port else agent.prometheus_port
        assert port is not None
        statuses = final_statuses(send(port, data), False)
        assert len(statuses) == 1 and statuses[0] in (200, 400, 413), (statuses, data[:300])
        assert (statuses[0] == 413) is (len(body) > MAX_BODY)

    run_then_check(agent, run)


def chunked(body: bytes, sizes: List[int], tokens: Optional[List[bytes]] = None) -> bytes:
    out, i = [], 0
    for n, size in enumerate(sizes * (len(body) // max(1, sum(sizes)) + 1)):
        if i >= len(body):
            break
        part = body[i:i + size]
        token = tokens[n % len(tokens)] if tokens else b"%x" % len(part)
        out.append(token + b"\r\n" + part + b"\r\n")
        i += size
    return b"".join(out) + b"0\r\n\r\n"


# -- request heads from a grammar ------------------------------------------------

METHODS = st.sampled_from(["POST", "POST", "POST", "GET", "HEAD", "PUT", "DELETE", "OPTIONS",
                           "BREW", "post", "GE T"])
TARGETS = st.sampled_from(["/v1/metrics", "/v1/metrics", "/v1/metrics?x=1", "/metrics", "/",
                           "/v1/trace", "/debug/tracez", "/debug/tracez.json?limit=x", "/nope",
                           "*", "http://x/v1/metrics", "/%ff\x7f", "", "/a b"])
VERSIONS = st.sampled_from(["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "HTTP/1",
                                               "http/1.1", "HTTP/1.1 "])
TOKEN = st.text(string.ascii_letters + string.digits + "-_!#$%&'*+.^`|~", min_size=1,
                max_size=16)
VALUE = st.text(st.characters(max_codepoint=255), max_size=24)
LENGTH_TOKENS = st.sampled_from(["-1", "+5", "0x10", "1_0", " 5", "5 5", "", "1e3", "٣",
                                 "99999999999999999999999", "00000000000000000005"])
CHUNK_TOKENS = st.lists(st.sampled_from([b"-1", b"0x10", b"+5", b"1_0", b" 5", b"5 ", b"G",
                                         b"fffffffffffffffffffff", b"5;ext=1", b"5;", b"",
                                         b"\xff", b"5\r"]), min_size=1, max_size=3)
CODINGS = st.sampled_from(["chunked", "Chunked", "xchunked", "chunked, gzip", "gzip, chunked",
                           "identity", "chunked, chunked", "chunked;q=1", " chunked", ""])
BODIES = st.one_of(json_bodies(), PROTOBUF, st.binary(max_size=MAX_BODY + 100))


@st.composite
def requests(draw: Any) -> Tuple[bytes, bool, bool]:
    """Bytes of a request, whether it is a HEAD and whether it is well framed."""
    method, target, version = draw(METHODS), draw(TARGETS), draw(VERSIONS)
    body = draw(BODIES)
    headers: List[Tuple[str, str]] = []
    well = method == "POST" and target.startswith("/v1/metrics") and version == "HTTP/1.1"
    if draw(st.integers(0, 9)):
        headers.append(("Host", "x"))
    else:
        well = False
    headers.append(("Content-Type", draw(st.sampled_from(
        ["application/json", "application/x-protobuf", "text/plain", "application/protobuf"]))))
    framing = draw(st.sampled_from(["length", "length", "chunked", "chunked", "none",
                                    "bad-length", "two-lengths", "coding", "bad-chunks",
                                    "length-and-chunked"]))
    tail = b""
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
        tail = body
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        tail = chunked(body, draw(st.lists(st.integers(1, 900), min_size=1, max_size=4)))
    elif framing == "none":
        body = b""
    else:
        well = False
        if framing == "bad-length":
            headers.append(("Content-Length", draw(st.one_of(
                LENGTH_TOKENS, st.integers(0, 6000).map(str)))))
            tail = body
        elif framing == "two-lengths":
            headers += [("Content-Length", str(len(body))), ("Content-Length", draw(
                st.sampled_from([str(len(body)), str(len(body) + 1), "0"])))]
            tail = body
        elif framing == "coding":
            headers.append(("Transfer-Encoding", draw(CODINGS)))
            tail = chunked(body, [700])
        elif framing == "bad-chunks":
            headers.append(("Transfer-Encoding", "chunked"))
            tail = chunked(body, [5, 300], draw(CHUNK_TOKENS))
        else:
            headers += [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
            tail = chunked(body, [700])
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["expect", "connection", "random", "big", "odd"]))
        if kind == "expect":
            headers.append(("Expect", "100-continue"))
        elif kind == "connection":
            headers.append(("Connection", draw(st.sampled_from(["close", "keep-alive",
                                                               "upgrade", "close, te"]))))
        elif kind == "random":
            headers.append((draw(TOKEN), draw(st.text(string.printable.strip(), max_size=24))))
        else:
            well = False
            if kind == "big":
                headers.append(("X-Big", "b" * 3000))
            else:
                headers.append((draw(st.one_of(TOKEN, VALUE)), draw(VALUE)))
    newline = b"\r\n" if draw(st.integers(0, 9)) else b"\n"
    well = well and newline == b"\r\n"
    lines = [("%s %s %s" % (method, target, version)).encode("utf-8")]
    lines += [("%s: %s" % (k, v)).encode("utf-8") for k, v in headers]
    data = newline.join(lines) + newline + newline + tail
    return data, method == "HEAD", well


def test_every_request_from_the_grammar_is_answered_with_a_front_door_status(
        agent: Agent) -> None:
    @FUZZ
    @given(request=requests(), on_grpc_port=st.booleans())
    def run(request: Tuple[bytes, bool, bool], on_grpc_port: bool) -> None:
        data, head_request, well = request
        port = agent.port if on_grpc_port else agent.prometheus_port
        assert port is not None
        statuses = final_statuses(send(port, data), head_request)
        assert statuses and set(statuses) <= ANSWERS, (statuses, data[:300])
        if well:
            assert statuses == [statuses[0]] and statuses[0] in (200, 400, 413), \
                (statuses, data[:300])

    run_then_check(agent, run)


def test_random_bytes_are_answered_with_a_front_door_status(agent: Agent) -> None:
    @FUZZ
    @given(data=st.one_of(st.binary(min_size=1, max_size=2000),
                          st.tuples(st.sampled_from([b"GET ", b"POST /v1/metrics HTTP/1.1\r\n",
                                                     b"GET / HTTP/1.1\r\nHost: x\r\n"]),
                                    st.binary(max_size=500)).map(b"".join)))
    def run(data: bytes) -> None:
        assert agent.prometheus_port is not None
        statuses = final_statuses(send(agent.prometheus_port, data), False)
        assert statuses and set(statuses) <= ANSWERS, (statuses, data[:300])

    run_then_check(agent, run)
