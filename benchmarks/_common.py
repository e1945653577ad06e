"""Timing helpers shared by the benchmark scripts (medians of repeats)."""

from __future__ import annotations

import statistics
import time
from typing import Callable, List

TUTORIAL = [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]


def per_call(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls."""
    runs: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def median_of(fn: Callable[[], float], repeat: int = 7) -> float:
    return statistics.median(fn() for _ in range(repeat))


def report(label: str, ours: float, peer: float, limit: float, unit: str = "ns",
           scale: float = 1e9) -> None:
    """Print ours/peer and whether it is within ``limit`` (ours/peer <= limit)."""
    ratio = ours / peer
    print("%-58s ours %10.1f %s  peer %10.1f %s  ratio %7.3f  (target <= %g) %s"
          % (label, ours * scale, unit, peer * scale, unit, ratio, limit,
             "ok" if ratio <= limit else "MISSED"))
