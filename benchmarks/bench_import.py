"""import gotools_compat: <= 1.2x the import time of opencensus.stats.stats (fresh interpreters)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

# Compare like with like: installed packages import from cached bytecode, so
# let ours write its cache too (this workplace sets PYTHONDONTWRITEBYTECODE).
# Import the package from this checkout, as an installed copy would be found
# (an editable install adds a finder that a normal install does not have).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_time(module: str) -> float:
    code = ("import time; t = time.perf_counter(); import %s; "
            "print(time.perf_counter() - t)" % module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=ENV)
    return float(out.stdout)


def main() -> None:
    import_time("gotools_compat.metric")  # writes the bytecode cache
    ratios = []
    ours_t, peer_t = [], []
    for _ in range(21):
        o = import_time("gotools_compat.metric")
        p = import_time("opencensus.stats.stats")
        ours_t.append(o)
        peer_t.append(p)
        ratios.append(o / p)
    ratio = statistics.median(ratios)
    print("%-58s ours %7.1f ms  peer %7.1f ms  ratio %7.3f  (target <= 1.2) %s"
          % ("import gotools_compat (+metric) vs opencensus.stats.stats",
             statistics.median(ours_t) * 1e3, statistics.median(peer_t) * 1e3, ratio,
             "ok" if ratio <= 1.2 else "MISSED"))


if __name__ == "__main__":
    main()
