"""The only code that touches opencensus internals.

Importing this package makes opencensus's clock calls warning-free (E13):
opencensus 0.11.4 calls ``datetime.utcnow()``, deprecated since Python 3.12,
on its import, record and export paths, so under ``-W error`` (or pytest's
``filterwarnings = error``) plain ``stats.get_metrics()`` raises.  We give the
modules that call it a ``datetime`` whose ``utcnow()`` returns the very same
naive UTC value through the non-deprecated ``now(timezone.utc)``.  This runs
before ``opencensus.stats.stats`` is imported, since that import itself reads
the clock.
"""

from __future__ import annotations

import datetime as _datetime
import importlib
import sys
import types


class _UTCDateTime(_datetime.datetime):
    @classmethod
    def utcnow(cls) -> "_UTCDateTime":
        return cls.now(_datetime.timezone.utc).replace(tzinfo=None)


# Modules that did ``from datetime import datetime`` and call utcnow().
_CLASS_USERS = (
    "opencensus.stats.stats",
    "opencensus.trace.span",
    "opencensus.metrics.export.gauge",
)
# Modules that did ``import datetime`` and call datetime.datetime.utcnow().
_MODULE_USERS = (
    "opencensus.common.utils",
    "opencensus.ext.ocagent.utils",
)


def _datetime_module_shim() -> types.ModuleType:
    shim = types.ModuleType("datetime")
    shim.__dict__.update(_datetime.__dict__)
    shim.datetime = _UTCDateTime  # type: ignore[attr-defined]
    return shim


def _patch_module(name: str, replacement: object) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError:  # an optional extension that is not installed
        return
    if getattr(module, "datetime", None) is not replacement:
        module.datetime = replacement  # type: ignore[attr-defined]


_SHIM = _datetime_module_shim()


def patch_clock(name: str) -> None:
    """Make one opencensus module's clock warning-free; call before using it."""
    _patch_module(name, _SHIM if name in _MODULE_USERS else _UTCDateTime)


# The utils module first: importing opencensus.stats.stats calls its clock.
patch_clock("opencensus.common.utils")
patch_clock("opencensus.stats.stats")
# Modules we do not import ourselves (tracing costs 50 ms to import) are
# patched when the code that uses them imports them, or now if already loaded.
for _name in _CLASS_USERS + _MODULE_USERS:
    if _name in sys.modules:
        patch_clock(_name)
