"""The pages' files (package data under ``static/``) and the headers they are served with.

Every file is read once through :mod:`importlib.resources` (so an installed
wheel serves the same bytes as a checkout) and kept in memory; all of them
together are a few tens of KB.  Each answer carries:

- ``Content-Security-Policy``: only the page's own origin, for everything
  (``default-src 'self'``), no inline script or style, no plugins, no
  framing, no form posts, no ``<base>``;
- ``X-Content-Type-Options: nosniff`` (a JSON or text answer is never run
  as script), ``Referrer-Policy: no-referrer``;
- ``Cache-Control: no-cache`` (pages and assets: revalidated, so an upgraded
  agent serves its new script at once) or ``no-store`` (JSON).
"""

from __future__ import annotations

from importlib import resources
from typing import Dict, List, Optional, Tuple

#: (status, headers, body): what the servers wrap in their response type.
Answer = Tuple[int, List[Tuple[str, str]], bytes]

ASSET_PREFIX = "/_pages/"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS: List[Tuple[str, str]] = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]

_HTML = "text/html; charset=utf-8"
_TYPES = {".html": _HTML, ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
#: The pages, by path; tracez only where there is a span store.
_PAGES = {"/": "index.html", "/debug/tracez": "tracez.html"}
#: What the pages load, under ASSET_PREFIX.
ASSETS = ("pages.css", "common.js", "metrics.js", "tracez.js", "icon.svg")
PAGE_PATHS = frozenset(list(_PAGES) + [ASSET_PREFIX + name for name in ASSETS])

_cache: Dict[str, bytes] = {}


def asset_bytes(name: str) -> bytes:
    """The bytes of one file of ``static/`` (``index.html``, ``metrics.js`` ...)."""
    data = _cache.get(name)
    if data is None:
        data = (resources.files("gotools_compat._pages") / "static" / name).read_bytes()
        _cache[name] = data
    return data


def asset(path: str, tracez: bool = True) -> Optional[Answer]:
    """The answer for a page or asset ``path``; None when it is neither
    (``/debug/tracez`` is one only with ``tracez``)."""
    name = _PAGES.get(path)
    if name is None:
        if not path.startswith(ASSET_PREFIX):
            return None
        name = path[len(ASSET_PREFIX):]
        if name not in ASSETS:
            return None
    elif name == "tracez.html" and not tracez:
        return None
    content_type = _TYPES[name[name.rindex("."):]]
    headers = [("Content-Type", content_type), ("Cache-Control", "no-cache")]
    return 200, headers + SECURITY_HEADERS, asset_bytes(name)


def json_answer(body: bytes) -> Answer:
    """A JSON answer of the pages (``/metrics.json``, ``/debug/tracez.json``)."""
    return 200, [("Content-Type", "application/json"),
                 ("Cache-Control", "no-store")] + SECURITY_HEADERS, body


def total_bytes() -> int:
    """The size of every page and asset together (benchmarks/bench_pages.py)."""
    return sum(len(asset_bytes(name)) for name in list(_PAGES.values()) + list(ASSETS))
