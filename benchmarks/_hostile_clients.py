"""The processes of bench_hostile.py: the servers under test and the hostile clients.

Each mode is run as ``python benchmarks/_hostile_clients.py MODE ...`` by the
bench; it prints one JSON line when ready (and one per command or at the
end), reads commands on stdin, and stops by itself at end of stdin or after
``--lifetime`` seconds.  Everything is on loopback: servers listen on
127.0.0.1, clients connect there from 127.0.0.x source addresses.

- ``agent``: an Agent (gRPC + HTTP/JSON port and a Prometheus port) with the
  given connection bounds and open-files limit; its log goes to stderr.
- ``hold``: opens idle and half-preface (``P``) connections and holds them.
- ``streams``: gRPC Export streams, each sends one request and then nothing.
- ``serve``: an application that records a histogram in a loop and serves it
  with ``Exporter.serve()``; reports its recording rate and open() failures.
- ``slow``: connections that send a request head one byte per interval.
- ``scrapers``: keep-alive scrapers, back to back, for a while.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import errno
import json
import os
import queue
import resource
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def emit(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raise_nofile(soft: int = 0) -> int:
    """Set the soft open-files limit (0: to the hard limit); the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if not soft else soft
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def commands(lifetime: float) -> "queue.Queue[Optional[str]]":
    """Lines of stdin on a queue; None at end of stdin or when ``lifetime`` is over."""
    q: "queue.Queue[Optional[str]]" = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            q.put(line.strip())
        q.put(None)

    threading.Thread(target=read, daemon=True).start()
    timer = threading.Timer(lifetime, q.put, (None,))
    timer.daemon = True
    timer.start()
    return q


def connect_from(source: str, port: int, timeout: float = 5.0,
                 blocking: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        if blocking:
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
        else:
            sock.setblocking(False)
            err = sock.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return sock


# -- the agent ---------------------------------------------------------------------


def agent_main(args: argparse.Namespace) -> None:
    import logging

    fds = raise_nofile(args.nofile)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from gotools_compat._server import Limits
    from gotools_compat.agent import Agent

    limits = Limits(max_connections=args.max_connections,
                    max_connections_per_peer=args.per_peer)
    agent = Agent("127.0.0.1:0", "127.0.0.1:0", limits=limits).start()
    server = agent._server
    emit({"pid": os.getpid(), "port": agent.port, "prometheus_port": agent.prometheus_port,
          "fd_limit": fds, "max_connections": server.max_connections if server else 0,
          "max_per_peer": server.max_per_peer if server else 0})
    q = commands(args.lifetime)
    while q.get() is not None:
        pass
    agent.stop(0.5)


# -- idle and half-preface connections ---------------------------------------------


def hold_main(args: argparse.Namespace) -> None:
    raise_nofile()
    sources = args.sources.split(",")
    total = args.idle + args.preface
    every = total // args.preface if args.preface else 0
    socks: List[socket.socket] = []
    failed: "collections.Counter[str]" = collections.Counter()
    start = time.monotonic()
    deadline = start + args.connect_within
    prefaces = 0
    burst, rate, stalls = 100, args.rate, 0
    due = start
    for i in range(total):
        if rate and i % burst == 0 and i:
            # Paced: connecting faster than the server accepts overflows its
            # backlog, and each dropped SYN costs the client a 1 s retry; so
            # the pace slows by a quarter at each such stall.
            due += burst / rate
            time.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() > deadline:
            failed["connect_within"] += total - i
            break
        try:
            t0 = time.monotonic()
            sock = connect_from(sources[i % len(sources)], args.port)
            if rate and time.monotonic() - t0 > 0.25:
                stalls += 1
                rate = max(500.0, rate * 0.75)
                due = time.monotonic()
            if every and i % every == 0 and prefaces < args.preface:
                sock.send(b"P")
                prefaces += 1
        except OSError as exc:
            failed[errno.errorcode.get(exc.errno or 0, str(exc))] += 1
            continue
        socks.append(sock)
    emit({"connected": len(socks), "prefaces": prefaces, "failed": dict(failed),
          "first": start, "seconds": time.monotonic() - start, "stalls": stalls,
          "rate": rate})
    q = commands(args.lifetime)
    while True:
        line = q.get()
        if line is None or line == "close":
            break
    for sock in socks:
        sock.close()
    emit({"closed_at": time.monotonic()})


# -- held gRPC streams --------------------------------------------------------------


def export_request(name: str = "hostile", series: int = 10, service: str = "bench") -> Any:
    from gotools_compat._oc import proto

    proto.install()
    from opencensus.proto.agent.common.v1 import common_pb2
    from opencensus.proto.agent.metrics.v1 import metrics_service_pb2
    from opencensus.proto.metrics.v1 import metrics_pb2

    ts = [metrics_pb2.TimeSeries(label_values=[{"value": "k%d" % i, "has_value": True}],
                                 points=[{"double_value": 1.0 + i}]) for i in range(series)]
    metric = metrics_pb2.Metric(metric_descriptor={"name": name, "type": 2,  # GAUGE_DOUBLE
                                                   "label_keys": [{"key": "k"}]},
                                timeseries=ts)
    node = common_pb2.Node(identifier={"host_name": "bench", "pid": os.getpid()},
                           service_info={"name": service})
    return metrics_service_pb2.ExportMetricsServiceRequest(node=node, metrics=[metric])


def streams_main(args: argparse.Namespace) -> None:
    import grpc

    request = export_request("held_stream", 1, "holder")  # installs the protos first
    from opencensus.proto.agent.metrics.v1 import metrics_service_pb2_grpc

    release = threading.Event()

    def requests() -> Any:
        yield request
        release.wait(args.lifetime)

    channels = [grpc.insecure_channel("127.0.0.1:%d" % args.port,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(args.channels)]
    stubs = [metrics_service_pb2_grpc.MetricsServiceStub(c) for c in channels]
    calls = [stubs[i % len(stubs)].Export(requests(), timeout=args.lifetime + 10)
             for i in range(args.streams)]
    time.sleep(args.settle)
    codes: "collections.Counter[str]" = collections.Counter()
    for call in calls:
        codes[call.code().name if call.done() else "held"] += 1
    emit({"streams": args.streams, "channels": args.channels, "codes": dict(codes)})
    q = commands(args.lifetime)
    while q.get() not in (None, "release"):
        pass
    release.set()
    for c in channels:
        c.close()
    emit({"released": True})


# -- the application that serves its metrics ---------------------------------------


def serve_main(args: argparse.Namespace) -> None:
    fds = raise_nofile(args.nofile)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    from gotools_compat import event, metric, stats
    from gotools_compat.export import prometheus

    buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0]
    method = event.new_string_key("method")
    route = event.new_string_key("route")
    m = stats.Float64("hostile_latency", "latency", "s")
    metric.HistogramFloat64("hostile_latency_seconds", "latency", buckets,
                            keys=[method, route], max_rows=args.series + 1).record(m)
    contexts = [event.label(None, method.of("GET"), route.of("/r/%d" % i))
                for i in range(args.series)]
    for ctx in contexts:
        m.record(ctx, 0.1)
    # The application's own files: some held open, one more opened per batch.
    held = [open(os.devnull, "rb") for _ in range(args.app_files)]
    if args.peer:  # the peer: prometheus_client's own server and histogram, same series
        import prometheus_client

        peer = prometheus_client.Histogram("hostile_latency_seconds", "latency",
                                           ["method", "route"], buckets=buckets)
        children = [peer.labels("GET", "/r/%d" % i) for i in range(args.series)]
        peer_server, _ = prometheus_client.start_http_server(0, "127.0.0.1")
        port, max_connections = peer_server.server_port, 0
        calls = [(child.observe, None) for child in children]
    else:
        exporter = prometheus.new()
        server = exporter.serve(0, "127.0.0.1")
        port, max_connections = server.port, server._server.max_connections
        calls = [(m.record, ctx) for ctx in contexts]
    emit({"pid": os.getpid(), "port": port, "fd_limit": fds,
          "max_connections": max_connections, "app_files": len(held)})

    stamps: List[float] = []
    counts: List[int] = []
    opened = [0, 0]  # ok, EMFILE/ENFILE
    stop = threading.Event()
    busy_stop: List[threading.Event] = []

    def busy(flag: threading.Event) -> None:
        x = 0
        while not flag.is_set():
            for _ in range(1000):
                x += 1

    def control() -> None:
        q = commands(args.lifetime)
        while True:
            line = q.get()
            if line is None or line == "quit":
                break
            word, *rest = line.split()
            if word == "rate":
                t0, t1 = float(rest[0]), float(rest[1])
                i, j = bisect.bisect_left(stamps, t0), bisect.bisect_right(stamps, t1) - 1
                rate = (counts[j] - counts[i]) / (stamps[j] - stamps[i]) if j > i else 0.0
                emit({"rate": rate})
            elif word == "busy":
                if rest[0] == "1":
                    flag = threading.Event()
                    busy_stop.append(flag)
                    threading.Thread(target=busy, args=(flag,), daemon=True).start()
                else:
                    for flag in busy_stop:
                        flag.set()
                    busy_stop.clear()
                emit({"busy": rest[0]})
            elif word == "stats":
                emit({"open_ok": opened[0], "open_failed": opened[1],
                      "threads": threading.active_count(),
                      "hits": {} if args.peer else dict(server.counters.items())})
        stop.set()

    def files() -> None:
        # The application's other work: a file opened every 20 ms.  On its own
        # thread, so that the record loop is pure Python (a syscall there would
        # hand the GIL to any other thread at every batch).
        while not stop.wait(0.02):
            try:
                with open(os.devnull, "rb"):
                    opened[0] += 1
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                opened[1] += 1

    threading.Thread(target=control, daemon=True).start()
    threading.Thread(target=files, daemon=True).start()
    n = len(calls)
    batch = 5000
    total = 0
    values = [0.001 * (i % 997) for i in range(batch)]
    while not stop.is_set():
        if args.idle_app:  # a reference: the same process, not recording
            stop.wait(0.01)
            continue
        if args.peer:
            for i in range(batch):
                calls[i % n][0](values[i])
        else:
            for i in range(batch):
                fn, ctx = calls[i % n]
                fn(ctx, values[i])
        total += batch
        stamps.append(time.monotonic())
        counts.append(total)
    if args.peer:
        peer_server.shutdown()
    else:
        server.stop()
    for f in held:
        f.close()


# -- slow clients -------------------------------------------------------------------

SLOW_HEAD = (b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 8000 + b"\r\n\r\n")


def slow_main(args: argparse.Namespace) -> None:
    """``count`` clients, each sending one byte of a long head per ``interval``;
    one closed by the server reconnects after ``reconnect`` seconds."""
    raise_nofile()
    sources = args.sources.split(",")
    socks: List[Optional[socket.socket]] = [None] * args.count
    pos = [0] * args.count
    born = [0.0] * args.count
    retry_at = [0.0] * args.count
    stats: "collections.Counter[str]" = collections.Counter()
    start = time.monotonic()
    end = start + min(args.duration, args.lifetime)
    tick = start
    q = commands(args.lifetime)
    while time.monotonic() < end and q.empty():
        now = time.monotonic()
        for i in range(args.count):
            sock = socks[i]
            if sock is None:
                if now >= retry_at[i]:
                    try:
                        socks[i] = connect_from(sources[i % len(sources)], args.port,
                                                blocking=False)
                        pos[i], born[i] = 0, now
                        stats["connects"] += 1
                    except OSError:
                        stats["connect_errors"] += 1
                        retry_at[i] = now + args.reconnect
                continue
            try:
                sent = sock.send(SLOW_HEAD[pos[i]:pos[i] + 1])
                pos[i] = (pos[i] + sent) % len(SLOW_HEAD)
                stats["bytes"] += sent
            except BlockingIOError:
                pass  # still connecting, or the server is not reading
            except OSError:
                sock.close()
                socks[i] = None
                stats["closed_by_server"] += 1
                retry_at[i] = now + args.reconnect
        tick += args.interval
        time.sleep(max(0.0, tick - time.monotonic()))
    alive = sum(1 for s in socks if s is not None)
    for sock in socks:
        if sock is not None:
            sock.close()
    stats["alive_at_end"] = alive
    emit({"seconds": time.monotonic() - start, **stats})


# -- scrapers -----------------------------------------------------------------------


_SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _scrape(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  timeout: float) -> Tuple[int, bool]:
    """One GET on a keep-alive connection: (status, whether the server closes it)."""
    writer.write(_SCRAPE)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await asyncio.wait_for(reader.readexactly(length), timeout)
    return int(head.split(b" ", 2)[1]), b"connection: close" in head.lower()


async def _scraper(port: int, end: float, timeout: float, latencies: List[float],
                   errors: "collections.Counter[str]", interval: float, phase: float) -> None:
    """Scrape over one keep-alive connection (a new one after an error), back to back
    or, with ``interval``, once per interval from ``phase`` on."""
    conn: Optional[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = None
    tick = time.monotonic() + phase
    while time.monotonic() < end:
        if interval:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            tick += interval
            if time.monotonic() >= end:
                break
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                              timeout)
            status, closing = await _scrape(conn[0], conn[1], timeout)
            if status != 200:
                errors["status %d" % status] += 1
            else:
                latencies.append(time.perf_counter() - t0)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
            closing = True
        if closing and conn is not None:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


def scrapers_main(args: argparse.Namespace) -> None:
    raise_nofile()
    latencies: List[float] = []
    errors: "collections.Counter[str]" = collections.Counter()

    async def run() -> None:
        end = time.monotonic() + min(args.duration, args.lifetime)
        await asyncio.gather(*(_scraper(args.port, end, args.timeout, latencies, errors,
                                        args.interval, args.interval * i / args.count)
                               for i in range(args.count)))

    start = time.monotonic()
    asyncio.run(run())
    emit({"start": start, "end": time.monotonic(), "latencies": latencies,
          "errors": dict(errors)})


# -- the command line -----------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lifetime", type=float, default=120.0,
                   help="seconds after which the process stops by itself")
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("agent")
    a.add_argument("--nofile", type=int, default=0, help="soft open-files limit (0: hard)")
    a.add_argument("--max-connections", type=int, default=0)
    a.add_argument("--per-peer", type=int, default=0)
    h = sub.add_parser("hold")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--idle", type=int, default=0)
    h.add_argument("--preface", type=int, default=0)
    h.add_argument("--sources", default="127.0.0.2")
    h.add_argument("--connect-within", type=float, default=60.0)
    h.add_argument("--rate", type=float, default=0.0, help="connections per second (0: free)")
    s = sub.add_parser("streams")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--streams", type=int, default=300)
    s.add_argument("--channels", type=int, default=1)
    s.add_argument("--settle", type=float, default=2.0)
    v = sub.add_parser("serve")
    v.add_argument("--nofile", type=int, default=0)
    v.add_argument("--series", type=int, default=100)
    v.add_argument("--app-files", type=int, default=0)
    v.add_argument("--idle-app", action="store_true", help="do not record (a reference)")
    v.add_argument("--peer", action="store_true",
                   help="record with prometheus_client and serve with its start_http_server")
    v.add_argument("--switch-interval", type=float, default=0.0,
                   help="sys.setswitchinterval for the application (0: Python's 5 ms)")
    w = sub.add_parser("slow")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--count", type=int, default=700)
    w.add_argument("--interval", type=float, default=0.1)
    w.add_argument("--reconnect", type=float, default=1.0)
    w.add_argument("--duration", type=float, default=10.0)
    w.add_argument("--sources", default="127.0.0.2")
    c = sub.add_parser("scrapers")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--count", type=int, default=50)
    c.add_argument("--duration", type=float, default=10.0)
    c.add_argument("--timeout", type=float, default=10.0)
    c.add_argument("--interval", type=float, default=0.0, help="seconds between scrapes "
                   "of one scraper (0: back to back)")
    args = p.parse_args(argv)
    {"agent": agent_main, "hold": hold_main, "streams": streams_main, "serve": serve_main,
     "slow": slow_main, "scrapers": scrapers_main}[args.mode](args)


if __name__ == "__main__":
    main()
