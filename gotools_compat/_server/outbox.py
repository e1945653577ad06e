"""A response's bytes on their way out, written only as fast as the client reads them.

A small response (under ``JOIN_BELOW`` bytes) leaves in one write.  A larger
one is written a piece at a time, each body piece by reference (a
``memoryview``) and at most ``CHUNK`` bytes per write, and only while the
transport is under its high-water mark: the transport never holds or copies
more than a chunk of a body, however large, and the rest is freed piece by
piece as it leaves.
"""

from __future__ import annotations

import collections
from typing import Callable, Deque, List, Union

JOIN_BELOW = 64 * 1024
CHUNK = 1024 * 1024

Piece = Union[bytes, memoryview]


class Outbox:
    """The pieces of one response (head, body pieces, tail) not yet written."""

    __slots__ = ("_pieces",)

    def __init__(self, head: bytes, body: List[bytes], tail: bytes, size: int) -> None:
        if size < JOIN_BELOW or not body:
            self._pieces: Deque[Piece] = collections.deque([b"".join([head, *body, tail])])
        else:
            self._pieces = collections.deque([head, *(memoryview(piece) for piece in body)])
            if tail:
                self._pieces.append(tail)

    def feed(self, write: Callable[[Piece], None], paused: Callable[[], bool]) -> bool:
        """Write while ``paused()`` is false; True once every byte has been written.

        ``write`` may pause the transport itself (asyncio calls
        ``pause_writing`` from inside ``transport.write``): the next piece waits.
        """
        pieces = self._pieces
        while pieces and not paused():
            piece = pieces[0]
            if len(piece) > CHUNK:
                write(piece[:CHUNK])
                pieces[0] = piece[CHUNK:]
            else:
                write(piece)
                pieces.popleft()  # freed as it leaves, not all at the end
        return not pieces
