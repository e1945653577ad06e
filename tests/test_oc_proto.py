"""gotools_compat._oc.proto: opencensus-proto's messages rebuilt for protobuf >= 4 (E1).

The rebuilt classes are registered under the original module names, read
what Go's x/tools exporter sends (tests/fixtures/) and write it back to the
same bytes; the descriptor reader copes with quotes and backslashes in the
embedded literal.
"""

from __future__ import annotations

import base64
import importlib
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.internal import api_implementation

from gotools_compat._oc import proto

proto.install()

from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.agent.trace.v1 import trace_service_pb2  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
GO_METRICS = (FIXTURES / "go-ocagent-v1-metrics.json").read_bytes()
GO_TRACE = (FIXTURES / "go-ocagent-v1-trace.json").read_bytes()


# Registration.

@pytest.mark.parametrize("name", proto._MODULES)
def test_each_rebuilt_module_is_registered_under_its_original_name(name: str) -> None:
    module = sys.modules[name]
    parent_name, _, leaf = name.rpartition(".")
    assert getattr(importlib.import_module(parent_name), leaf) is module
    assert importlib.import_module(name) is module
    assert module.DESCRIPTOR.name == name.replace(".", "/")[:-len("_pb2")] + ".proto"


def test_the_rebuilt_files_are_in_the_default_descriptor_pool() -> None:
    found = descriptor_pool.Default().FindMessageTypeByName(
        "opencensus.proto.agent.metrics.v1.ExportMetricsServiceRequest")
    assert found is metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR
    assert metrics_service_pb2.ExportMetricsServiceRequest.__module__ == (
        "opencensus.proto.agent.metrics.v1.metrics_service_pb2")


def test_the_stock_grpc_stubs_use_the_rebuilt_modules() -> None:
    from opencensus.proto.agent.metrics.v1 import metrics_service_pb2_grpc
    from opencensus.proto.agent.trace.v1 import trace_service_pb2_grpc

    assert metrics_service_pb2_grpc.opencensus_dot_proto_dot_agent_dot_metrics_dot_v1_dot_metrics__service__pb2 is metrics_service_pb2  # noqa: E501
    assert trace_service_pb2_grpc.opencensus_dot_proto_dot_agent_dot_trace_dot_v1_dot_trace__service__pb2 is trace_service_pb2  # noqa: E501


def test_install_twice_keeps_the_same_modules() -> None:
    before = [sys.modules[name] for name in proto._MODULES]
    proto.install()
    assert [sys.modules[name] for name in proto._MODULES] == before


def test_a_module_that_already_imported_is_left_as_it_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    name = "opencensus.proto.stats.v1.stats_pb2"
    working = types.ModuleType(name)
    monkeypatch.setattr(proto, "_installed", False)
    monkeypatch.setitem(sys.modules, name, working)
    proto.install()
    assert sys.modules[name] is working


@pytest.mark.skipif(api_implementation.Type() == "python",
                    reason="the pure-Python protobuf runs the shipped modules as they are")
def test_the_shipped_modules_fail_on_this_protobuf_and_work_after_install() -> None:
    script = textwrap.dedent("""
        try:
            from opencensus.proto.metrics.v1 import metrics_pb2
        except TypeError as e:
            print("stock:", str(e).splitlines()[0])
        from gotools_compat._oc import proto
        proto.install()
        from opencensus.proto.metrics.v1 import metrics_pb2
        print("rebuilt:", metrics_pb2.Point.FromString(b"\\x10\\x07").int64_value)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["stock: Descriptors cannot be created directly.",
                                       "rebuilt: 7"]


# The embedded descriptor.

def test_the_embedded_descriptor_is_the_file_in_the_pool(
        monkeypatch: pytest.MonkeyPatch) -> None:
    name = "opencensus.proto.metrics.v1.metrics_pb2"
    rebuilt = sys.modules[name]
    # The rebuilt module has no __spec__: find the shipped file as before install().
    monkeypatch.delitem(sys.modules, name)
    raw = proto.serialized_descriptor(name)
    parsed = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert (parsed.name, parsed.package) == ("opencensus/proto/metrics/v1/metrics.proto",
                                             "opencensus.proto.metrics.v1")
    assert list(parsed.dependency) == ["google/protobuf/timestamp.proto",
                                       "google/protobuf/wrappers.proto",
                                       "opencensus/proto/resource/v1/resource.proto"]
    assert raw == rebuilt.DESCRIPTOR.serialized_pb


def fake_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    name = "fake_pb2_%d" % (abs(hash(body)) % 10 ** 9)
    (tmp_path / (name + ".py")).write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_an_escaped_quote_does_not_end_the_literal(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    name = fake_module(tmp_path, monkeypatch,
                       "DESCRIPTOR = x(serialized_pb=_b('a\\'b\\x00\\xff'), y=1)\n")
    assert proto.serialized_descriptor(name) == b"a'b\x00\xff"


def test_a_quote_after_an_escaped_backslash_ends_the_literal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = fake_module(tmp_path, monkeypatch,
                       "D = x(serialized_pb=_b('x\\\\\\\\'), other='z')\n")
    assert proto.serialized_descriptor(name) == b"x\\\\"


def test_a_module_without_an_embedded_descriptor_is_an_import_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = fake_module(tmp_path, monkeypatch, "X = 1\n")
    with pytest.raises(ImportError, match="no serialized descriptor"):
        proto.serialized_descriptor(name)


def test_a_missing_module_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="opencensus-proto is not installed"):
        proto.serialized_descriptor("gotools_compat_no_such_module_pb2")


# Go's fixtures.

def test_gos_metrics_request_reads_with_its_numbers() -> None:
    request = json_format.Parse(GO_METRICS, metrics_service_pb2.ExportMetricsServiceRequest())
    assert (request.node.identifier.host_name, request.node.identifier.pid,
            request.node.service_info.name) == ("vm", 2411, "gopls")
    assert request.node.identifier.start_timestamp.nanos == 99119649
    started, received, sent = request.metrics
    assert [started.metric_descriptor.name, received.metric_descriptor.name,
            sent.metric_descriptor.name] == ["started", "received_bytes", "sent_bytes"]
    assert [k.key for k in started.metric_descriptor.label_keys] == ["direction", "method"]
    assert [ts.points[0].int64_value for ts in started.timeseries] == [1, 1, 1, 10, 1, 3, 2]
    dist = received.timeseries[0].points[0].distribution_value
    assert list(dist.bucket_options.explicit.bounds) == [1024, 2048, 4096, 16384, 65536,
                                                         1048576]
    assert (dist.count, dist.sum, [b.count for b in dist.buckets]) == (1, 222.0, [1] * 6)
    assert [b.count for b in sent.timeseries[0].points[0].distribution_value.buckets] == [
        0, 1, 1, 1, 1, 1]


def test_gos_metrics_request_round_trips_through_the_binary_form() -> None:
    request = json_format.Parse(GO_METRICS, metrics_service_pb2.ExportMetricsServiceRequest())
    wire = request.SerializeToString(deterministic=True)
    again = metrics_service_pb2.ExportMetricsServiceRequest.FromString(wire)
    assert again == request
    assert again.SerializeToString(deterministic=True) == wire
    assert json_format.Parse(json_format.MessageToJson(again),
                             metrics_service_pb2.ExportMetricsServiceRequest()) == request


def test_gos_trace_request_reads_its_ids_as_the_bytes_go_sent() -> None:
    request = json_format.Parse(GO_TRACE, trace_service_pb2.ExportTraceServiceRequest())
    names = [span.name.value for span in request.spans]
    assert names[:4] == ["queued", "source.Identifier", "source.Hover", "textDocument/hover"]
    root = request.spans[3]
    assert root.trace_id == base64.b64decode("y3adjUGS8HPpsPNkhodfEQ==")
    assert root.span_id == base64.b64decode("o5PIwrN1obI=")
    assert request.spans[0].parent_span_id == root.span_id
    assert request.spans[0].same_process_as_parent_span.value is True
    assert root.attributes.attribute_map["method"].string_value.value == "textDocument/hover"


def test_gos_trace_request_round_trips_through_the_binary_form() -> None:
    request = json_format.Parse(GO_TRACE, trace_service_pb2.ExportTraceServiceRequest())
    wire = request.SerializeToString(deterministic=True)
    again = trace_service_pb2.ExportTraceServiceRequest.FromString(wire)
    assert again == request
    assert again.SerializeToString(deterministic=True) == wire
