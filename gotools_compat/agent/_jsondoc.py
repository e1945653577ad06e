"""A JSON body decoded into a document whose strings are all valid UTF-8.

Bad strings are replaced, not refused: invalid UTF-8 bytes and lone
surrogates (``"\\ud800"``, which ``json`` decodes as they are) become U+FFFD,
so a sender's bad description or label value can never break an ingest or a
scrape.  Only a body with a surrogate escape is walked: the common body costs
one ``memchr`` more than ``json.loads``.  Nesting is bounded: the
decoder's RecursionError and :func:`too_deep` (for the json_format path,
which recurses in Python) make a BadRequest.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gotools_compat._promtext import clean

from ._model import BadRequest

#: How deep a body the fast path does not take may nest (objects and arrays);
#: the deepest valid request nests about 12 deep.
MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # high (D8-DB) and low (DC-DF)
_SURROGATE = re.compile("[\ud800-\udfff]")


def load(body: bytes) -> Any:
    """The decoded JSON document, its strings valid UTF-8; BadRequest if invalid."""
    if isinstance(body, str):
        text = body
    else:
        encoding = json.detect_encoding(body)
        try:
            text = bytes(body).decode(encoding)
        except UnicodeDecodeError:
            text = bytes(body).decode(encoding, "replace")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BadRequest("invalid JSON: %s" % exc) from None
    except RecursionError:
        raise BadRequest("JSON nested too deep") from None
    # A backslash is found with memchr; most bodies have none.
    if "\\" in text and _SURROGATE_ESCAPE.search(text):
        doc = _sanitized(doc)
    return doc


def _sanitized(doc: Any) -> Any:
    """``doc`` with lone surrogates in its strings (keys too) made U+FFFD,
    walked without recursion (the decoder allows deeper nesting than Python)."""
    if isinstance(doc, str):
        return clean(doc)
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if any(_SURROGATE.search(k) for k in node):
                items = [(clean(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            for key, value in node.items():
                if isinstance(value, str):
                    if _SURROGATE.search(value):
                        node[key] = clean(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str):
                    if _SURROGATE.search(value):
                        node[i] = clean(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)
    return doc


def too_deep(doc: Any, max_depth: int) -> bool:
    """Whether ``doc`` nests more than ``max_depth`` objects and arrays deep
    (checked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False
