"""The package version, at the bottom of every layer (the agent reports it too)."""

__version__ = "0.1.0"
