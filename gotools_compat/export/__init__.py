"""Exporters, as in Go's ``telemetry/export`` package."""
