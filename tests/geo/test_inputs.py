"""The shapes of values callers send (geo.inputs): each refusal names the field, no value of the
wrong kind is taken for another (`true` for 1, a list for a number)."""
from __future__ import annotations

import json

import pytest

from geo.errors import InvalidInput
from geo.inputs import MAX_DEPTH, check_json_tree, number_value, text_value, whole_number


@pytest.mark.parametrize("value", [True, False, [1], {"a": 1}, "abc", "1e400", float("inf"), float("nan"), 10 ** 400])
def test_a_number_is_never_taken_from_the_wrong_kind(value):
    with pytest.raises(InvalidInput) as caught:
        number_value(value, "lon")
    assert caught.value.field == "lon"


def test_numbers_and_ranges():
    assert number_value("114.05", "lon") == 114.05 and number_value(3, "x") == 3.0
    assert number_value(None, "x") is None and number_value("  ", "x") is None
    with pytest.raises(InvalidInput, match="speed must be at least 0"):
        number_value(-3, "speed", lo=0)
    with pytest.raises(InvalidInput, match="is required"):
        number_value(None, "lat", required=True)
    assert whole_number("42", "id") == 42 and whole_number(7.0, "id") == 7
    for bad in (2 ** 53, "9" * 40, 1.5, "1.5"):
        with pytest.raises(InvalidInput):
            whole_number(bad, "id")


def test_text_refuses_what_postgresql_text_cannot_hold():
    assert text_value("  巡A-1 ", "callsign") == "巡A-1" and text_value("", "x") is None
    for bad in ("a\x00b", "\ud800", "x\udfff"):
        with pytest.raises(InvalidInput) as caught:
            text_value(bad, "callsign")
        assert caught.value.field == "callsign"
    for bad in (1, True, ["a"], {"a": "b"}):
        with pytest.raises(InvalidInput, match="must be text"):
            text_value(bad, "reason")
    with pytest.raises(InvalidInput, match="at most 3 characters"):
        text_value("abcd", "code", max_length=3)


def test_a_json_tree_names_the_path_of_what_it_refuses():
    check_json_tree(json.loads('{"names": ["a", "b"], "geometry": {"coordinates": [[[[1, 2]]]]}}'))
    cases = {'{"names": ["a", "b\\u0000"]}': "names[1]", '{"a": {"b": NaN}}': "a.b",
             '{"lon": 1e400}': "lon", '{"id": 10000000000000000000}': "id", '{"a": {"x\\ud800": 1}}': "a",
             '{"a": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}": None}
    for raw, field in cases.items():
        with pytest.raises(InvalidInput) as caught:
            check_json_tree(json.loads(raw))
        if field is not None:
            assert caught.value.field == field, raw
