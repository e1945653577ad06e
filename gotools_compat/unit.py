"""Units of measures, as in Go's ``telemetry/unit`` package.

A unit is a plain string in the UCUM form that OpenCensus and Prometheus use
("1", "By", "ms"); it travels with the metric descriptor for display.
"""

from __future__ import annotations

Unit = str

DIMENSIONLESS: Unit = "1"
BYTES: Unit = "By"
MILLISECONDS: Unit = "ms"

__all__ = ["Unit", "DIMENSIONLESS", "BYTES", "MILLISECONDS"]
