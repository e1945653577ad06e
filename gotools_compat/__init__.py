"""Go x/tools-style telemetry for Python, kept in opencensus views.

The modules mirror Go's packages: :mod:`~gotools_compat.unit`,
:mod:`~gotools_compat.event`, :mod:`~gotools_compat.stats`,
:mod:`~gotools_compat.metric` and :mod:`~gotools_compat.export`.
"""

from gotools_compat._version import __version__
from gotools_compat.event import background, todo

__all__ = ["background", "todo", "__version__"]
