"""import gotools_compat: <= 1.2x the import time of opencensus.stats.stats (fresh interpreters).

Histograms, Go's ``collect()`` data and opencensus's View and Point load on
first use, so the second line also times the import together with the first
definitions (a counter and a 13-bucket histogram), against opencensus doing
the same with its own measure, views and aggregations.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Optional

from _common import TUTORIAL

# Compare like with like: installed packages import from cached bytecode, so
# let ours write its cache too (this workplace sets PYTHONDONTWRITEBYTECODE).
# Import the package from this checkout, as an installed copy would be found
# (an editable install adds a finder that a normal install does not have).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


OURS_DEFINE = """
import gotools_compat.metric as metric
from gotools_compat import stats
m = stats.Float64("latency", "d", "ms")
metric.Scalar("total").sum_float64(m)
metric.HistogramFloat64("latency_h", "d", %r).record(m)
""" % (TUTORIAL,)
PEER_DEFINE = """
from opencensus.stats import aggregation, measure, stats, view
m = measure.MeasureFloat("latency", "d", "ms")
for v in (view.View("total", "", [], m, aggregation.SumAggregation()),
          view.View("latency_h", "d", [], m, aggregation.DistributionAggregation(%r))):
    stats.stats.view_manager.register_view(v)
""" % (TUTORIAL,)


def import_time(module: str) -> float:
    return run_time("import %s" % module)


def run_time(body: str) -> float:
    code = "import time\nt = time.perf_counter()\n%s\nprint(time.perf_counter() - t)" % body
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=ENV)
    return float(out.stdout)


def compare(label: str, ours: str, peer: str, target: Optional[float]) -> None:
    ratios = []
    ours_t, peer_t = [], []
    for _ in range(21):
        o = run_time(ours)
        p = run_time(peer)
        ours_t.append(o)
        peer_t.append(p)
        ratios.append(o / p)
    ratio = statistics.median(ratios)
    verdict = "" if target is None else "(target <= %s) %s" % (
        target, "ok" if ratio <= target else "MISSED")
    print("%-58s ours %7.1f ms  peer %7.1f ms  ratio %7.3f  %s"
          % (label, statistics.median(ours_t) * 1e3, statistics.median(peer_t) * 1e3, ratio,
             verdict))


def main() -> None:
    import_time("gotools_compat.metric")  # writes the bytecode cache
    compare("import gotools_compat (+metric) vs opencensus.stats.stats",
            "import gotools_compat.metric", "import opencensus.stats.stats", 1.2)
    compare("import + define a counter and a histogram, each", OURS_DEFINE, PEER_DEFINE, None)


if __name__ == "__main__":
    main()
