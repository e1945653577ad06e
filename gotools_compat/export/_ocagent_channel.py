"""The gRPC channel and streams to an OpenCensus agent (E5, E6).

- E5: the stock handler keeps one bidi stream forever and dies when the agent
  ends it.  We open one stream per export on a long-lived channel: the first
  request carries the node, the call has a deadline, and any failure is an
  exception for the exporter thread, which backs off and retries.
- E6: the channel is TLS for ``https://`` addresses, with an optional CA file,
  and every call carries the configured metadata.
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Sequence, Tuple

import grpc

METRICS_METHOD = "/opencensus.proto.agent.metrics.v1.MetricsService/Export"
TRACE_METHOD = "/opencensus.proto.agent.trace.v1.TraceService/Export"

Metadata = Tuple[Tuple[str, str], ...]

DEFAULT_PORT = 55678


class SendError(Exception):
    """An export that did not reach the agent (wraps the gRPC error)."""


def parse_address(address: str) -> Tuple[str, bool]:
    """``(gRPC target, use TLS)`` for an ``http://``, ``https://`` or bare address."""
    text = address.strip()
    tls = False
    lower = text.lower()
    if lower.startswith("https://"):
        tls, text = True, text[len("https://"):]
    elif lower.startswith("http://"):
        text = text[len("http://"):]
    text = text.rstrip("/")
    if not text:
        raise ValueError("no host in agent address %r" % address)
    if "/" in text:
        raise ValueError("agent address %r has a path; give scheme://host:port" % address)
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise ValueError("bad IPv6 address in agent address %r; give [host]:port"
                             % address)
        if not rest:
            text += ":%d" % DEFAULT_PORT
    elif text.count(":") > 1:  # a bare IPv6 address
        text = "[%s]:%d" % (text, DEFAULT_PORT)
    elif ":" not in text:
        text += ":%d" % DEFAULT_PORT
    port = text.rpartition(":")[2]
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("bad port in agent address %r" % address)
    return text, tls


def make_channel(target: str, tls: bool, ca_file: Optional[str],
                 max_backoff: float) -> grpc.Channel:
    # gRPC's own reconnect backoff, capped like ours, so a restarted agent is
    # found again within the cap.
    options = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", max(100, int(max_backoff * 1000))),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.enable_http_proxy", 0),  # only the configured address, ever (E2)
        # Subchannels of this channel alone: a channel made in a forked child
        # must not pick up a connection (and its fd) from before the fork out
        # of gRPC's process-wide pool ("Wrong file descriptor generation").
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if not tls:
        return grpc.insecure_channel(target, options=options)
    root: Optional[bytes] = None
    if ca_file is not None:
        with open(ca_file, "rb") as f:
            root = f.read()
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root),
                               options=options)


def _identity(data: bytes) -> bytes:
    return data


class Streams:
    """Sends request bodies over one stream per export on a long-lived channel."""

    def __init__(self, channel: grpc.Channel, metadata: Metadata) -> None:
        self.channel = channel
        self.metadata = metadata
        self._metrics = channel.stream_stream(
            METRICS_METHOD, request_serializer=_identity,
            response_deserializer=_identity)
        self._trace = channel.stream_stream(
            TRACE_METHOD, request_serializer=_identity, response_deserializer=_identity)
        self._lock = threading.Lock()
        self._call: Any = None  # the one in flight (sends are serialized by the caller)
        self._stopped: Optional[str] = None

    def send_metrics(self, bodies: Sequence[bytes], timeout: float) -> None:
        self._send(self._metrics, bodies, timeout)

    def send_trace(self, bodies: Sequence[bytes], timeout: float) -> None:
        self._send(self._trace, bodies, timeout)

    def stop(self, why: str) -> None:
        """Cancel the call in flight; every later send fails at once with ``why``."""
        with self._lock:
            if self._stopped is None:
                self._stopped = why
            call = self._call
        if call is not None:
            call.cancel()

    def _send(self, method: Any, bodies: Sequence[bytes], timeout: float) -> None:
        try:
            with self._lock:
                if self._stopped is not None:
                    raise SendError(self._stopped)
                # wait_for_ready: a call made while the channel reconnects waits
                # (within its deadline) instead of failing at once.
                self._call = responses = method(iter(bodies), timeout=timeout,
                                                metadata=self.metadata, wait_for_ready=True)
            for _ in responses:
                pass
        except grpc.RpcError as e:
            if self._stopped is not None:
                raise SendError(self._stopped) from None
            code = e.code() if hasattr(e, "code") else None
            details = e.details() if hasattr(e, "details") else str(e)
            raise SendError("%s: %s" % (getattr(code, "name", code), details)) from None
        finally:
            self._call = None
