"""The tutorial's main.go in Python: random latencies into ``latencyDistribution``.

By default it also runs the agent in this process (gRPC + HTTP on
127.0.0.1:55678, Prometheus text on http://127.0.0.1:8844/metrics) and exports
to it over the stock opencensus ocagent gRPC exporter: the whole pipeline of
the tutorial in one command.  ``--agent http://HOST:PORT`` sends to an agent
that is already running (``gotools-agent``) instead.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import time
from typing import Callable, List, Optional

from gotools_compat import event, export, metric, stats, todo
from gotools_compat.export import ocagent

BUCKETS = [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]


def random_sleep(rng: random.Random, now: Callable[[], float]) -> int:
    """The tutorial's schedule: the bound depends on the current second."""
    bound = {0: 17001, 1: 8007, 2: 917, 3: 87, 4: 1173}[int(now()) % 5]
    return rng.randrange(bound)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", metavar="URL",
                   help="send to this running agent (e.g. http://127.0.0.1:55678) instead of "
                        "starting one in this process; 'off' sends nothing")
    p.add_argument("--listen", default="127.0.0.1:55678",
                   help="address of the in-process agent (default %(default)s)")
    p.add_argument("--prometheus", default="127.0.0.1:8844",
                   help="where the in-process agent serves /metrics (default %(default)s)")
    p.add_argument("--rate", type=float, default=5.0,
                   help="seconds between exports (default %(default)s, as in the tutorial)")
    p.add_argument("--count", type=int, default=0, help="stop after N values (default: never)")
    p.add_argument("--no-sleep", action="store_true",
                   help="do not sleep between values (the schedule then follows a simulated "
                        "clock advanced by each would-be sleep)")
    p.add_argument("--seed", type=int, help="seed the random values (repeatable runs)")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    agent = None
    metrics_url = ""
    address = args.agent
    if address is None:
        from gotools_compat.agent import Agent

        agent = Agent(args.listen, args.prometheus)
        try:
            agent.start()
        except OSError as exc:
            print("demo: %s\n(is another demo or gotools-agent running? use --agent URL to "
                  "send to it, or --listen/--prometheus for other ports)" % exc, file=sys.stderr)
            return 1
        address = "http://%s:%d" % (args.listen.rsplit(":", 1)[0], agent.port)
        metrics_url = "http://%s:%s/metrics" % (args.prometheus.rsplit(":", 1)[0],
                                                agent.prometheus_port)
        print("Agent running in this process; metrics at %s" % metrics_url, flush=True)
    elif address == "off":
        print("Not exporting (--agent off)", flush=True)
    else:
        print("Exporting to the agent at %s" % address, flush=True)

    exporter = ocagent.connect(ocagent.Config(
        start=None, address=address, service="go-tools-test", rate=args.rate))
    export.set_exporter(exporter)

    ctx = todo()
    m_latency = stats.Float64("latency", "the latency in milliseconds", "ms")
    metric.HistogramFloat64("latencyDistribution", "the various latencies",
                            buckets=BUCKETS).record(m_latency)

    rng = random.Random(args.seed)
    # With --no-sleep or --seed the schedule follows a simulated clock that
    # each would-be sleep advances, so a seeded run repeats exactly.
    simulated = args.no_sleep or args.seed is not None
    clock = [float(args.seed) if args.seed is not None else time.time()]
    now: Callable[[], float] = (lambda: clock[0]) if simulated else time.time

    stopping: List[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    sent = 0
    try:
        while not stopping and (args.count <= 0 or sent < args.count):
            # One span per value: the agent's /debug/tracez and its Zipkin
            # forwarding (the tutorial's Zipkin step) show them.
            with event.span(ctx, "demo.iteration") as span_ctx:
                sleep = random_sleep(rng, now)
                clock[0] += sleep / 1000.0
                if not args.no_sleep:
                    time.sleep(sleep / 1000.0)
                m_latency.record(span_ctx, float(sleep))
            print("Latency: ", sleep, flush=True)
            sent += 1
        if exporter is not None:
            exporter.flush()
        if agent is not None and not stopping:
            print("Sent %d values; metrics at %s (Ctrl+C to stop)" % (sent, metrics_url),
                  flush=True)
            while not stopping:  # keep serving until Ctrl+C or SIGTERM
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if exporter is not None:
            exporter.close()  # a final flush: the agent holds every value
        export.set_exporter(None)
        if agent is not None:
            agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
