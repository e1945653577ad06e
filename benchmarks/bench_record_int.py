"""Instructions per record call, float against int, counted by callgrind.

Figure of issue 14: ``Float64.record(ctx, 12)`` (an int, what most callers
pass) costs at most 1.1x the instructions of ``record(ctx, 12.0)``.  Also
shown: ``Int64.record`` of an int and prometheus_client's ``observe`` of a
float and of an int, on the same 13 tutorial buckets.

Instructions, not time: they do not depend on the machine's load, so the
ratio is stable to a fraction of a percent.  Each case runs in its own
process under ``valgrind --tool=callgrind``, twice: once with no calls and
once with CALLS calls after the same warm-up; the difference over CALLS is
the cost of one call, start-up and imports cancelled out.  The cost of the
bare loop (``for _ in repeat(None, n)``) is measured the same way and taken
off.  CALLS is a multiple of 64, so buffer folds are counted at their share.

    .venv/bin/python benchmarks/bench_record_int.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from typing import Callable, Dict, Tuple

from _common import TUTORIAL

CALLS = 64 * 200
WARMUP = 64 * 16
TARGET = 1.1

CASES = {
    "loop": "the bare loop (taken off the others)",
    "ours_float": "Float64 record(ctx, 12.0)",
    "ours_int": "Float64 record(ctx, 12)",
    "ours_int64": "Int64 record(ctx, 12)",
    "peer_float": "prometheus_client observe(12.0)",
    "peer_int": "prometheus_client observe(12)",
}


def _setup(case: str) -> Callable[[int], None]:
    """The loop of ``case``: a function running it ``n`` times."""
    if case == "loop":
        def run(n: int) -> None:
            for _ in repeat(None, n):
                pass
        return run
    if case.startswith("peer"):
        from prometheus_client import CollectorRegistry, Histogram

        observe = Histogram("peer", "d", buckets=TUTORIAL,
                            registry=CollectorRegistry()).observe
        value: object = 12.0 if case == "peer_float" else 12

        def run_peer(n: int) -> None:
            for _ in repeat(None, n):
                observe(value)  # type: ignore[arg-type]
        return run_peer

    from gotools_compat import metric, stats, todo

    record: Callable[[object, object], None]
    if case == "ours_int64":
        int64 = stats.Int64("bench_int64", "d", "ms")
        metric.HistogramInt64("bench_int64_h", "d", TUTORIAL).record(int64)
        record = int64.record  # type: ignore[assignment]
    else:
        float64 = stats.Float64("bench_float", "d", "ms")
        metric.HistogramFloat64("bench_float_h", "d", TUTORIAL).record(float64)
        record = float64.record  # type: ignore[assignment]
    ctx = todo()
    value = 12.0 if case == "ours_float" else 12

    def run_ours(n: int) -> None:
        for _ in repeat(None, n):
            record(ctx, value)
    return run_ours


def child(case: str, calls: int) -> None:
    run = _setup(case)
    run(WARMUP)  # rows made, the interpreter's specialisation done
    run(calls)


def _instructions(case: str, calls: int, out_dir: str) -> int:
    out = os.path.join(out_dir, "%s.%d.out" % (case, calls))
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
         sys.executable, os.path.abspath(__file__), "--child", case, str(calls)],
        env=dict(os.environ, PYTHONHASHSEED="0"),  # the same dict layouts in every run
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("callgrind run of %s failed:\n%s" % (case, proc.stderr[-2000:]))
    found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if found is None:
        raise SystemExit("no instruction count in callgrind's output:\n" + proc.stderr[-2000:])
    return int(found.group(1))


def per_call() -> Dict[str, float]:
    """Instructions of one call of each case, the bare loop taken off."""
    jobs = [(case, calls) for case in CASES for calls in (0, CALLS)]
    with tempfile.TemporaryDirectory() as out_dir, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: _instructions(job[0], job[1], out_dir),
                                         jobs)))
    raw = {case: (counts[case, CALLS] - counts[case, 0]) / CALLS for case in CASES}
    loop = raw.pop("loop")
    return {case: cost - loop for case, cost in raw.items()}


def _ratio(label: str, pair: Tuple[float, float], limit: float = 0.0) -> None:
    ours, base = pair
    verdict = ("(target <= %g) %s" % (limit, "ok" if ours / base <= limit else "MISSED")
               if limit else "")
    print("%-50s %7.3f %s" % (label, ours / base, verdict))


def main() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    cost = per_call()
    for case, text in CASES.items():
        if case != "loop":
            print("%-50s %8.0f instructions per call" % (text, cost[case]))
    _ratio("Float64 int / float", (cost["ours_int"], cost["ours_float"]), TARGET)
    _ratio("Int64 int / Float64 float", (cost["ours_int64"], cost["ours_float"]))
    _ratio("Float64 float / prometheus_client float",
           (cost["ours_float"], cost["peer_float"]))
    _ratio("Float64 int / prometheus_client int", (cost["ours_int"], cost["peer_int"]))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
