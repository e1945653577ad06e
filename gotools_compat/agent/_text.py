"""The agent's label pairs as the UTF-8 bytes its store keys series by.

Everything else about the Prometheus text formats is in :mod:`gotools_compat._promtext`.
"""

from __future__ import annotations

from gotools_compat._promtext import label_pair as _label_pair


def label_pair(key: str, value: str) -> bytes:
    """``key="value"`` with the value escaped, as UTF-8 (lone surrogates made U+FFFD)."""
    return _label_pair(key, value).encode("utf-8")
