"""The live pages of ``gotools-agent`` and of ``serve()``: what a browser is shown.

- ``/``: every metric drawn, one card per family (:mod:`.static` ``metrics.js``),
  from ``/metrics.json`` (:mod:`.metrics_json` shapes it);
- ``/debug/tracez``: span names, their latency buckets, their spans and
  traces (``tracez.js``), from ``/debug/tracez.json`` (the agent's).

HTML, CSS and JS ship as package data and are served from the page's own
origin only (:mod:`.assets`: a strict Content-Security-Policy, no inline
script or style).  The scripts show every string as text
(``textContent``/``createElement``, never ``innerHTML``).

A shared piece: it imports nothing of gotools_compat but ``_promtext``, so
the agent and ``export.prometheus`` both use it.
"""

from .assets import (ASSET_PREFIX, CSP, PAGE_PATHS, SECURITY_HEADERS, asset, asset_bytes,
                     json_answer)
from .metrics_json import (DEFAULT_INTERVAL, Changes, Doc, LabelCache, Paced, Texts, document,
                           labels_json, le_json, number_json, parse_labels)

__all__ = ["ASSET_PREFIX", "CSP", "PAGE_PATHS", "SECURITY_HEADERS", "asset", "asset_bytes",
           "json_answer", "DEFAULT_INTERVAL", "Changes", "Doc", "LabelCache", "Paced", "Texts",
           "document", "labels_json", "le_json", "number_json", "parse_labels"]
