"""_server.outbox: a response written as fast as the client reads it, without sockets."""

from __future__ import annotations

from typing import List, Union

from gotools_compat._server.outbox import CHUNK, JOIN_BELOW, Outbox


class Transport:
    """Takes writes and pauses itself once it holds ``high`` bytes, as asyncio's do."""

    def __init__(self, high: int) -> None:
        self.high = high
        self.held = 0
        self.writes: List[Union[bytes, memoryview]] = []

    def write(self, piece: Union[bytes, memoryview]) -> None:
        self.writes.append(piece)
        self.held += len(piece)

    def paused(self) -> bool:
        return self.held >= self.high

    def drain(self) -> None:
        self.held = 0

    def sent(self) -> bytes:
        return b"".join(bytes(piece) for piece in self.writes)


def test_a_small_response_is_one_write_of_bytes_even_with_many_pieces() -> None:
    body = [b"a" * 100, b"b" * 200, b"c"]
    out = Outbox(b"HEAD", body, b"TAIL", 301)
    t = Transport(high=10 ** 9)
    assert out.feed(t.write, t.paused) is True
    assert len(t.writes) == 1 and type(t.writes[0]) is bytes
    assert t.sent() == b"HEAD" + b"a" * 100 + b"b" * 200 + b"c" + b"TAIL"


def test_an_empty_body_is_one_write() -> None:
    t = Transport(high=10 ** 9)
    assert Outbox(b"HEAD", [], b"", 0).feed(t.write, t.paused) is True
    assert t.writes == [b"HEAD"]


def test_a_large_body_goes_out_by_reference_a_chunk_at_a_time() -> None:
    big = bytes(range(256)) * (CHUNK * 5 // 2 // 256)  # 2.5 chunks
    small = b"z" * JOIN_BELOW
    out = Outbox(b"HEAD", [big, small], b"TAIL", len(big) + len(small))
    t = Transport(high=10 ** 9)
    assert out.feed(t.write, t.paused) is True
    assert [len(piece) for piece in t.writes] == [4, CHUNK, CHUNK, CHUNK // 2, JOIN_BELOW, 4]
    assert all(type(piece) is memoryview for piece in t.writes[1:5])
    assert t.writes[1].obj is big  # not copied
    assert t.sent() == b"HEAD" + big + small + b"TAIL"


def test_nothing_more_is_written_while_the_transport_is_paused() -> None:
    big = b"x" * (3 * CHUNK)
    out = Outbox(b"H", [big], b"", len(big))
    t = Transport(high=CHUNK)  # pauses once it holds a chunk
    assert out.feed(t.write, t.paused) is False
    assert [len(piece) for piece in t.writes] == [1, CHUNK]
    assert out.feed(t.write, t.paused) is False  # still paused: no write
    assert len(t.writes) == 2
    rounds = 0
    while not out.feed(t.write, t.paused):
        t.drain()
        rounds += 1
    assert rounds == 2
    assert [len(piece) for piece in t.writes] == [1, CHUNK, CHUNK, CHUNK]
    assert t.sent() == b"H" + big


def test_a_paused_transport_holds_even_a_small_response() -> None:
    t = Transport(high=1)
    t.held = 1
    out = Outbox(b"HEAD", [b"body"], b"", 4)
    assert out.feed(t.write, t.paused) is False and t.writes == []
    t.drain()
    assert out.feed(t.write, t.paused) is True and t.sent() == b"HEADbody"
