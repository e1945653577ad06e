"""gotools_compat.export._ocagent_channel: agent addresses, the gRPC channel and its
per-export streams, directly (no exporter; a few calls to a receiver on 127.0.0.1)."""

from __future__ import annotations

import re
from concurrent import futures
from pathlib import Path
from typing import Iterator, Tuple

import grpc
import pytest

from gotools_compat._oc import proto
from gotools_compat.export._ocagent_channel import (DEFAULT_PORT, METRICS_METHOD,
                                                    TRACE_METHOD, SendError, Streams,
                                                    make_channel, parse_address)

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402

from tests.ocagent_receiver import Receiver, metrics_service_pb2, trace_service_pb2  # noqa: E402


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _streams(port: int, metadata: Tuple[Tuple[str, str], ...] = ()) -> Streams:
    return Streams(make_channel("127.0.0.1:%d" % port, False, None, 1.0), metadata)


# parse_address: the pure part.

def test_the_default_port_is_the_opencensus_agents() -> None:
    assert DEFAULT_PORT == 55678  # the port the OpenCensus agent listens on by default
    assert parse_address("localhost") == ("localhost:55678", False)


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:9000", ("127.0.0.1:9000", False)),
    ("http://agent.local:1234", ("agent.local:1234", False)),
    ("http://agent.local:1234/", ("agent.local:1234", False)),
    ("http://agent.local", ("agent.local:55678", False)),
    ("https://agent.local:443", ("agent.local:443", True)),
    ("https://agent.local", ("agent.local:55678", True)),
    ("HTTPS://Agent.Local:8443", ("Agent.Local:8443", True)),
    ("HttP://h:1", ("h:1", False)),
    ("  http://h:2//  ", ("h:2", False)),
])
def test_scheme_host_and_port_forms(address: str, expected: Tuple[str, bool]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address, target", [
    ("[::1]", "[::1]:55678"),
    ("[::1]:9000", "[::1]:9000"),
    ("::1", "[::1]:55678"),
    ("2001:db8::7", "[2001:db8::7]:55678"),
    ("http://[fe80::1]:1", "[fe80::1]:1"),
])
def test_ipv6_addresses_are_bracketed_with_a_port(address: str, target: str) -> None:
    assert parse_address(address) == (target, False)


def test_an_https_ipv6_address_without_a_port_gets_the_default_and_tls() -> None:
    assert parse_address("https://[2001:db8::1]") == ("[2001:db8::1]:55678", True)


@pytest.mark.parametrize("address", ["", "   ", "http://", "https://", "https:///"])
def test_an_address_without_a_host_is_refused(address: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_address(address)
    assert str(info.value) == "no host in agent address %r" % address


@pytest.mark.parametrize("address", ["http://h:1/v1/metrics", "h:1/x", "https://h/a/"])
def test_an_address_with_a_path_is_refused(address: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_address(address)
    assert str(info.value) == ("agent address %r has a path; give scheme://host:port"
                               % address)


@pytest.mark.parametrize("address", ["h:", "h:http", "h:-1", "http://h:1x", "[::1]:",
                                     "[::1]:port"])
def test_an_address_with_a_bad_port_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="^%s$" % re.escape(
            "bad port in agent address %r" % address)):
        parse_address(address)


@pytest.mark.parametrize("address", ["h:0", "h:65536", "h:99999", "[::1]:0"])
def test_a_port_outside_1_to_65535_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="^%s$" % re.escape(
            "bad port in agent address %r" % address)):
        parse_address(address)
    assert parse_address(address.rpartition(":")[0] + ":65535")[0].endswith(":65535")


@pytest.mark.parametrize("address", ["[::1", "[::1]x", "[]:1", "[]", "http://[::1]x:1"])
def test_a_bracketed_address_that_is_not_host_then_port_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="^%s$" % re.escape(
            "bad IPv6 address in agent address %r; give [host]:port" % address)):
        parse_address(address)


# The channel and the streams.

def test_the_method_paths_are_the_agent_services_export_methods() -> None:
    # The oracle: the services as the opencensus-proto descriptors name them.
    for module, service, path in ((metrics_service_pb2, "MetricsService", METRICS_METHOD),
                                  (trace_service_pb2, "TraceService", TRACE_METHOD)):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        assert "Export" in descriptor.methods_by_name
        assert path == "/%s/Export" % descriptor.full_name


def test_a_tls_channel_reads_its_ca_file_and_a_missing_one_is_an_error(
        tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make_channel("localhost:1", True, str(tmp_path / "absent.pem"), 1.0)


def test_after_stop_every_send_fails_at_once_with_the_first_reason() -> None:
    # No call is ever started: the channel is never used.
    streams = _streams(1)
    streams.stop("the exporter is closed")
    streams.stop("a second reason")
    for send in (streams.send_metrics, streams.send_trace):
        with pytest.raises(SendError) as info:
            send([b"anything"], 10.0)
        assert str(info.value) == "the exporter is closed"
    streams.channel.close()


def test_metrics_bodies_arrive_as_sent_with_the_metadata(receiver: Receiver) -> None:
    first = metrics_service_pb2.ExportMetricsServiceRequest(
        node=common_pb2.Node(service_info={"name": "chan-test"}),
        metrics=[metrics_pb2.Metric(metric_descriptor={"name": "a"})])
    second = metrics_service_pb2.ExportMetricsServiceRequest(
        metrics=[metrics_pb2.Metric(metric_descriptor={"name": "b"})])
    metadata = (("authorization", "Bearer s3cret"), ("x-team", "tools"))
    streams = _streams(receiver.port, metadata)
    try:
        streams.send_metrics([first.SerializeToString(), second.SerializeToString()], 10.0)
    finally:
        streams.channel.close()
    assert [r.request for r in receiver.requests] == [first, second]
    assert receiver.requests[1].node.service_info.name == "chan-test"  # one stream
    assert receiver.streams == 1
    for r in receiver.requests:
        assert (r.metadata["authorization"], r.metadata["x-team"]) == ("Bearer s3cret",
                                                                      "tools")


def test_trace_bodies_go_to_the_trace_service(receiver: Receiver) -> None:
    span = trace_pb2.Span(trace_id=bytes(range(16)), span_id=bytes(range(8)),
                          name={"value": "over-the-channel"})
    request = trace_service_pb2.ExportTraceServiceRequest(
        node=common_pb2.Node(service_info={"name": "chan-test"}), spans=[span])
    streams = _streams(receiver.port)
    try:
        streams.send_trace([request.SerializeToString()], 10.0)
    finally:
        streams.channel.close()
    assert [(node.service_info.name, got) for node, got in receiver.spans] == [
        ("chan-test", span)]
    assert receiver.requests == []


def test_an_agent_error_is_a_send_error_with_the_status_name_and_details() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))  # no services at all
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    streams = _streams(port)
    try:
        with pytest.raises(SendError) as info:
            streams.send_metrics([b""], 10.0)
    finally:
        streams.channel.close()
        server.stop(None).wait(5)
    assert str(info.value).startswith("UNIMPLEMENTED: ")
    assert info.value.__cause__ is None and info.value.__suppress_context__
