"""``gotools-agent``: the command line.

Settings come from, in rising precedence: the defaults (the tutorial's agent
configuration), a TOML file (``--config``), ``GOTOOLS_AGENT_*`` environment
variables, and the options.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from gotools_compat._server import Limits, raise_fd_limit

from ._agent import (DEFAULT_CONST_LABELS, DEFAULT_LISTEN, DEFAULT_NAMESPACE, DEFAULT_PROMETHEUS,
                     Agent, parse_address)
from ._otlp import metrics_url
from ._zipkin import zipkin_url

# Not __name__: run as `python -m gotools_compat.agent` that is "__main__".
logger = logging.getLogger("gotools_compat.agent")

DEFAULTS: Dict[str, Any] = {
    "listen": DEFAULT_LISTEN,
    "prometheus": DEFAULT_PROMETHEUS,
    "namespace": DEFAULT_NAMESPACE,
    "const_labels": dict(DEFAULT_CONST_LABELS),
    "target_labels": True,
    "merge_instances": False,
    "gauge_merge": "last",
    "expire": 300.0,
    "zipkin": "",
    "otlp": "",
    "log_level": "INFO",
}

# The bounds: (setting, type, default, help).  Each is an option (--max-streams),
# an environment variable (GOTOOLS_AGENT_MAX_STREAMS) and a config file key.
_L = Limits()
BOUNDS: Tuple[Tuple[str, type, Any, str], ...] = (
    ("max_connections", int, 0, "client connections open at once; at the bound the one "
     "waiting longest without a request is closed (default 0: a third of the open-files "
     "limit, less 128)"),
    ("max_connections_per_peer", int, 0, "the same per client address (default 0: as "
     "--max-connections)"),
    ("max_grpc_connections_per_peer", int, _L.max_grpc_connections_per_peer, "gRPC "
     "connections of one client address; a new one beyond closes its quietest (default %d)"
     % _L.max_grpc_connections_per_peer),
    ("header_timeout", float, _L.header_timeout, "seconds to send a request head (default %g)"
     % _L.header_timeout),
    ("body_timeout", float, _L.body_timeout, "seconds to send a request body (default %g)"
     % _L.body_timeout),
    ("idle_timeout", float, _L.idle_timeout, "seconds a keep-alive or gRPC connection may "
     "idle between requests (default %g)" % _L.idle_timeout),
    ("write_timeout", float, _L.write_timeout, "seconds a client may leave a response "
     "unread (default %g)" % _L.write_timeout),
    ("max_header_bytes", int, _L.max_header_bytes, "request line and headers (default %d; "
     "431 above)" % _L.max_header_bytes),
    ("max_message_bytes", int, 16 * 1024 * 1024, "largest gRPC message or HTTP body, under "
     "any framing (default 16 MiB; 413 above)"),
    ("max_streams", int, 256, "gRPC streams open at once; one more is refused with "
     "RESOURCE_EXHAUSTED (default 256)"),
    ("max_streams_per_connection", int, 8, "gRPC streams open at once on one connection "
     "(default 8; with --max-grpc-connections-per-peer 16, a client address holds at most "
     "128, half of --max-streams)"),
    ("stream_idle_timeout", float, 120.0, "seconds a gRPC stream may go without a message "
     "before it is ended (default 120)"),
    ("max_json_depth", int, 64, "levels of nesting in a JSON body (default 64; 400 above)"),
    ("max_series", int, 1_000_000, "series kept in all; new ones beyond are refused, stored "
     "ones keep updating (default 1000000)"),
    ("max_series_per_sender", int, 100_000, "series kept of one sender (default 100000)"),
    ("max_series_per_metric", int, 100_000, "series kept of one metric, all senders "
     "(default 100000)"),
    ("max_senders", int, 10_000, "senders kept; a new one beyond is refused until another "
     "expires (default 10000)"),
    ("max_spans", int, 10_000, "spans kept for /debug/tracez (default 10000)"),
    ("max_span_bytes", int, 64 * 1024 * 1024, "bytes of spans kept in all, oldest evicted "
     "first (default 64 MiB)"),
    ("max_bytes_per_span", int, 64 * 1024, "a span larger than this (after strings are cut "
     "to 4096 characters) is dropped (default 64 KiB)"),
    ("max_tracez_spans", int, 1_000, "spans in one /debug/tracez answer, whatever ?limit= "
     "asks (default 1000)"),
)
DEFAULTS.update({name: default for name, _, default, _ in BOUNDS})
_TYPES: Dict[str, type] = {"expire": float}
_TYPES.update({name: kind for name, kind, _, _ in BOUNDS})
_LIMIT_KEYS = ("max_connections", "max_connections_per_peer", "max_grpc_connections_per_peer",
               "header_timeout",
               "body_timeout", "idle_timeout", "write_timeout", "max_header_bytes")
# The other bounds are Agent keyword arguments of the same names.
_AGENT_KEYS = tuple(name for name, _, _, _ in BOUNDS
                    if name not in _LIMIT_KEYS + ("max_message_bytes", "max_spans"))

EPILOG = """\
environment variables (below the options, above --config):
  GOTOOLS_AGENT_LISTEN, GOTOOLS_AGENT_PROMETHEUS, GOTOOLS_AGENT_NAMESPACE,
  GOTOOLS_AGENT_CONST_LABELS (k=v,k=v; empty for none),
  GOTOOLS_AGENT_TARGET_LABELS (1/0), GOTOOLS_AGENT_MERGE_INSTANCES (1/0),
  GOTOOLS_AGENT_GAUGE_MERGE, GOTOOLS_AGENT_EXPIRE, GOTOOLS_AGENT_ZIPKIN,
  GOTOOLS_AGENT_OTLP, GOTOOLS_AGENT_LOG_LEVEL, and one per bound: the option's
  name in capitals, e.g. GOTOOLS_AGENT_MAX_CONNECTIONS, GOTOOLS_AGENT_HEADER_TIMEOUT

config file (TOML, same names with underscores):
  listen = "127.0.0.1:55678"
  prometheus = "127.0.0.1:8844"      # "" turns the Prometheus port off
  namespace = "promdemo"
  const_labels = { vendor = "otc" }
  target_labels = true
  merge_instances = false            # true: one series per job, summed over instances
  gauge_merge = "last"               # with merge_instances: last, sum, min or max
  expire = 300.0
  otlp = "http://127.0.0.1:4318"     # metrics and spans as OTLP/HTTP; needs gotools_compat[otel]
  max_connections = 20000            # every bound too, e.g. header_timeout = 5.0

--otlp counts on /metrics, for metrics and for spans (each a bounded queue, with backoff):
  gotools_agent_otlp_sent_series_total      gotools_agent_otlp_sent_spans_total
  gotools_agent_otlp_failed_exports_total   gotools_agent_otlp_failed_trace_exports_total
  gotools_agent_otlp_dropped_series_total   gotools_agent_otlp_dropped_spans_total
  gotools_agent_otlp_rejected_series_total  gotools_agent_otlp_rejected_spans_total
  gotools_agent_otlp_pending_series         gotools_agent_otlp_pending_spans   (gauges)

The agent raises its soft open-files limit to the hard limit at start, as Go
programs do.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gotools-agent", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Receive the OpenCensus agent protocol (gRPC and HTTP/JSON on one "
                    "address) and serve the metrics to Prometheus.")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="gRPC and HTTP/JSON address (default %s)" % DEFAULT_LISTEN)
    p.add_argument("--prometheus", metavar="HOST:PORT",
                   help="address of /metrics and /debug/tracez (default %s; '' for none: "
                        "then they are served on --listen only)" % DEFAULT_PROMETHEUS)
    p.add_argument("--namespace", help="prefix of every metric name (default %s; '' none)"
                   % DEFAULT_NAMESPACE)
    p.add_argument("--const-label", action="append", metavar="KEY=VALUE", dest="const_label",
                   help="label added to every series, repeatable (default %s)"
                   % ",".join("%s=%s" % kv for kv in DEFAULT_CONST_LABELS.items()))
    p.add_argument("--no-const-labels", action="store_true",
                   help="no const labels, not even the default")
    p.add_argument("--no-target-labels", action="store_true",
                   help="no job/instance labels from the sender's node; series of different "
                        "senders are then summed (gauges: the newest wins)")
    p.add_argument("--merge-instances", action="store_true", default=None,
                   help="one series per job and label set instead of one per instance: "
                        "counters and histograms are the sum over live instances plus the "
                        "final totals of gone ones (expired, or restarted), so they never "
                        "go backwards; gauges are of live instances, see --gauge-merge")
    p.add_argument("--gauge-merge", choices=("last", "sum", "min", "max"),
                   help="with --merge-instances, a gauge of several instances is the value "
                        "of the one heard from last (default), or their sum, min or max")
    p.add_argument("--expire", type=float, metavar="SECONDS",
                   help="drop the series of a sender silent this long (default 300; 0 never)")
    p.add_argument("--zipkin", metavar="URL",
                   help="forward spans to this Zipkin v2 endpoint, "
                        "e.g. http://127.0.0.1:9411/api/v2/spans")
    p.add_argument("--otlp", metavar="URL",
                   help="forward every metric received (to <URL>/v1/metrics) and every "
                        "span kept (to <URL>/v1/traces) as OTLP/HTTP, e.g. "
                        "http://127.0.0.1:4318 (needs: pip install 'gotools_compat[otel]'); "
                        "what cannot be sent is counted on /metrics (below)")
    p.add_argument("--config", metavar="FILE", help="TOML file with the settings above")
    p.add_argument("--log-level", help="DEBUG, INFO (default), WARNING or ERROR")
    bounds = p.add_argument_group(
        "bounds", "what senders and scrapers can make the agent hold; each bound hit is "
        "counted on /metrics as gotools_agent_limit_hits_total{limit=\"<setting>\"}, with "
        "one WARNING per bound")
    for name, kind, _, help_text in BOUNDS:
        bounds.add_argument("--" + name.replace("_", "-"), type=kind, dest=name,
                            metavar="SECONDS" if kind is float else "N", help=help_text)
    return p


def _labels(text: Any) -> Dict[str, str]:
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    pairs: List[str] = text if isinstance(text, list) else str(text).split(",")
    labels = {}
    for pair in pairs:
        pair = pair.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError("const label %r: expected KEY=VALUE" % pair)
        labels[key.strip()] = value
    return labels


def _load_config(path: str) -> Dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            raise ValueError("--config needs Python 3.11 or the tomli package") from None
    with open(path, "rb") as f:
        doc: Dict[str, Any] = tomllib.load(f)
    unknown = set(doc) - set(DEFAULTS)
    if unknown:
        raise ValueError("%s: unknown settings %s" % (path, ", ".join(sorted(unknown))))
    return doc


def settings(argv: Optional[Sequence[str]] = None,
             environ: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The effective settings; ValueError for a bad one."""
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    result = dict(DEFAULTS)
    if args.config:
        result.update(_load_config(args.config))
    for key in DEFAULTS:
        text = env.get("GOTOOLS_AGENT_" + key.upper())
        if text is not None:
            result[key] = text.strip().lower() not in ("0", "false", "no", "") \
                if key in ("target_labels", "merge_instances") else text
    for key in ("listen", "prometheus", "namespace", "expire", "zipkin", "otlp",
                "merge_instances", "gauge_merge",
                "log_level", *(name for name, _, _, _ in BOUNDS)):
        value = getattr(args, key)
        if value is not None:
            result[key] = value
    if args.const_label:
        result["const_labels"] = args.const_label
    if args.no_const_labels:
        result["const_labels"] = {}
    if args.no_target_labels:
        result["target_labels"] = False
    result["const_labels"] = _labels(result["const_labels"])
    for key, kind in _TYPES.items():
        try:
            result[key] = kind(result[key])
        except (TypeError, ValueError):
            raise ValueError("%s: not a number: %r" % (key, result[key])) from None
    limits(result)  # ValueError for a bad bound
    result["gauge_merge"] = str(result["gauge_merge"]).strip().lower()
    if result["gauge_merge"] not in ("last", "sum", "min", "max"):
        raise ValueError("gauge_merge: %r is not last, sum, min or max" % result["gauge_merge"])
    parse_address(str(result["listen"]))
    if result["prometheus"]:
        parse_address(str(result["prometheus"]))
    if result["otlp"]:
        metrics_url(str(result["otlp"]))
    if result["zipkin"]:
        zipkin_url(str(result["zipkin"]))
    return result


def limits(s: Dict[str, Any]) -> Limits:
    """The front door's bounds of the effective settings."""
    return Limits(**{key: s[key] for key in _LIMIT_KEYS})


def main(argv: Optional[Sequence[str]] = None) -> int:
    # The handler only notes the signal. It runs on the main thread between
    # two bytecodes, maybe inside a write to stderr or with a lock held, so a
    # log line or an Event.set() there can raise "reentrant call" or hang and
    # the agent would never stop.
    received: List[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)

    # First thing: a SIGTERM during start-up must also stop cleanly.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        s = settings(argv)
    except (ValueError, OSError) as exc:
        sys.stderr.write("gotools-agent: %s\n" % exc)
        return 2
    logging.basicConfig(level=str(s["log_level"]).upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    # As Go programs do: the soft open-files limit up to the hard one, so that
    # a fleet's connections fit (the derived --max-connections follows it).
    logger.debug("open-files limit: %d", raise_fd_limit())
    try:
        agent = Agent(str(s["listen"]), str(s["prometheus"]) or None,
                      namespace=str(s["namespace"]), const_labels=s["const_labels"],
                      target_labels=bool(s["target_labels"]), expire_after=s["expire"],
                      merge_instances=bool(s["merge_instances"]),
                      gauge_merge=str(s["gauge_merge"]),
                      max_message_bytes=s["max_message_bytes"], max_spans=s["max_spans"],
                      zipkin=str(s["zipkin"]) or None, otlp=str(s["otlp"]) or None,
                      limits=limits(s), **{name: s[name] for name in _AGENT_KEYS})
    except (ImportError, ValueError) as exc:
        sys.stderr.write("gotools-agent: %s\n" % exc)
        return 2
    try:
        agent.start()
    except OSError as exc:
        logger.error("gotools-agent: %s", exc.strerror or exc)
        logger.error("gotools-agent: is another agent running? Choose a free address "
                     "with --listen / --prometheus.")
        return 1
    try:
        while not received:
            time.sleep(0.2)
        logger.info("gotools-agent: %s received, stopping", signal.Signals(received[0]).name)
    finally:
        agent.stop()
        # Stopped: only the interpreter's exit is left, and it puts back the
        # default handlers, so a late second SIGTERM would turn exit 0 into -15.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
