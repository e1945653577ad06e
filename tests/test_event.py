"""Keys, tags and contexts (gotools_compat.event)."""

from __future__ import annotations

import pytest

from gotools_compat import background, event, todo


def test_label_returns_a_new_context_and_leaves_the_old_one_alone() -> None:
    method = event.new_string_key("method")
    base = event.label(todo(), method.of("hover"))
    child = event.label(base, method.of("definition"))
    assert method.get(base) == "hover"
    assert method.get(child) == "definition"
    assert method.get(todo()) is None


def test_keys_are_compared_by_identity_not_by_name() -> None:
    first = event.new_string_key("method")
    second = event.new_string_key("method")
    ctx = event.label(background(), first.of("a"))
    assert first.get(ctx) == "a"
    assert second.get(ctx) is None


def test_query_returns_tags_in_key_order_with_none_for_missing_keys() -> None:
    a = event.new_string_key("a")
    n = event.new_int_key("n")
    missing = event.new_boolean_key("missing")
    ctx = event.label(None, a.of("x"), n.of(3))
    tags = event.query(ctx, n, missing, a)
    assert [(t.key, t.value) for t in tags] == [(n, 3), (missing, None), (a, "x")]
    assert n.get(tags) == 3
    assert str(tags[0]) == "n=3"


@pytest.mark.parametrize("maker, good, bad", [
    (event.new_string_key, "s", 1),
    (event.new_int_key, 5, 5.0),
    (event.new_int64_key, -(2 ** 63), True),
    (event.new_float64_key, 1, "1.0"),
    (event.new_boolean_key, False, 0),
    (event.new_error_key, ValueError("x"), "x"),
])
def test_typed_keys_refuse_values_of_the_wrong_type(maker, good, bad) -> None:  # type: ignore[no-untyped-def]
    key = maker("k")
    assert key.of(good).value == good
    with pytest.raises(TypeError):
        key.of(bad)


def test_sized_integer_keys_check_their_range() -> None:
    assert event.new_int8_key("i8").of(-128).value == -128
    with pytest.raises(ValueError, match="-128, 127"):
        event.new_int8_key("i8").of(128)
    with pytest.raises(ValueError):
        event.new_uint_key("u").of(-1)
    assert event.new_uint64_key("u64").of(2 ** 64 - 1).value == 2 ** 64 - 1


@pytest.mark.parametrize("name", ["", "x" * 256, "caf\u00e9", "tab\there", 7])
def test_key_names_opencensus_would_refuse_are_rejected_at_definition(name: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        event.new_string_key(name)  # type: ignore[arg-type]


def test_labels_are_formatted_like_go() -> None:
    b = event.new_boolean_key("b")
    f = event.new_float64_key("f")
    e = event.new_error_key("e")
    assert b.label(True) == "true"
    assert f.label(2.0) == "2"
    assert f.label(0.25) == "0.25"
    assert e.label(OSError("disk full")) == "disk full"


def test_label_rejects_things_that_are_not_tags() -> None:
    with pytest.raises(TypeError):
        event.label(todo(), ("method", "x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        event.label({"method": "x"}, )  # type: ignore[arg-type]


def test_long_label_values_are_cut_to_255_characters_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    key = event.new_string_key("path")
    assert key.label("p" * 1000) == "p" * 255
    assert key.label("q" * 300) == "q" * 255
    warnings = [r for r in caplog.records if "longer than 255" in r.getMessage()]
    assert len(warnings) == 1


def test_label_from_the_root_hands_out_one_context_per_str_or_int_tags() -> None:
    # A handler labels the same route again and again: the same context comes
    # back (with the metric rows it found), whatever the root spelling.
    route = event.new_string_key("route")
    code = event.new_int_key("code")
    first = event.label(todo(), route.of("/items"), code.of(200))
    assert event.label(background(), route.of("/items"), code.of(200)) is first
    assert event.label(None, route.of("/items"), code.of(200)) is first
    assert event.label(todo(), route.of("/items"), code.of(404)) is not first
    assert event.label(todo(), code.of(200), route.of("/items")) is not first  # order kept
    assert (route.get(first), code.get(first)) == ("/items", 200)


def test_label_makes_new_contexts_where_equal_values_would_show_differently() -> None:
    any_value = event.new_key("v")
    ratio = event.new_float64_key("ratio")
    route = event.new_string_key("route")
    one = event.label(todo(), any_value.of(1))
    assert any_value.get(event.label(todo(), any_value.of(True))) is True
    assert any_value.get(event.label(todo(), any_value.of(1.0))) == 1.0
    assert event.label(todo(), any_value.of(1)) is one  # an int is kept
    negative = event.label(todo(), ratio.of(-0.0))
    assert str(ratio.get(negative)) == "-0.0"
    assert str(ratio.get(event.label(todo(), ratio.of(0.0)))) == "0.0"
    long = "x" * 300  # past the label length: not kept (and cut in rows)
    assert event.label(todo(), route.of(long)) is not event.label(todo(), route.of(long))
    parent = event.label(todo(), route.of("/a"))  # only contexts made from the root
    assert event.label(parent, route.of("/b")) is not event.label(parent, route.of("/b"))
    with pytest.raises(TypeError):
        event.label(todo(), "route=/a")  # type: ignore[arg-type]


def test_contexts_kept_for_reuse_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from gotools_compat.event import keys

    monkeypatch.setattr(keys, "_interned", {})
    monkeypatch.setattr(keys, "MAX_INTERNED", 3)
    n = event.new_int_key("n")
    kept = [event.label(todo(), n.of(i)) for i in range(3)]
    assert [event.label(todo(), n.of(i)) for i in range(3)] == kept
    past = event.label(todo(), n.of(3))
    assert event.label(todo(), n.of(3)) is not past and n.get(past) == 3
    assert len(keys._interned) == 3
