import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.dialplan import DialPlan, DialPlanError, parse_digit_map

EMERGENCY_LOCAL_NATIONAL = "112|[2-8]xxx|0[1-9]xxxxxxx.|*[0-9]x#"

digit_strings = st.text(alphabet="0123456789*#", max_size=12)


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("", "partial"),
        ("1", "partial"),
        ("11", "partial"),
        ("112", "complete"),
        ("1121", "invalid"),
        ("9", "invalid"),
        ("2", "partial"),
        ("2345", "complete"),
        ("23456", "invalid"),
        ("0", "partial"),
        ("00", "invalid"),
        ("012345678", "partial"),  # matches 0[1-9]xxxxxxx. but a longer number still can
        ("*", "partial"),
        ("*21#", "complete"),
        ("*21", "partial"),
    ],
)
def test_classify_against_a_realistic_map(digits, expected):
    assert DialPlan(EMERGENCY_LOCAL_NATIONAL, max_digits=16).classify(digits) == expected


def test_a_full_match_is_partial_while_a_longer_alternative_can_still_match():
    plan = DialPlan("12|123")
    assert plan.classify("12") == "partial"
    assert plan.classify("123") == "complete"


def test_sets_ranges_and_x():
    plan = DialPlan("[135]x|[7-8]")
    assert plan.classify("10") == "complete"
    assert plan.classify("2") == "invalid"
    assert plan.classify("7") == "complete"
    assert plan.classify("9") == "invalid"


def test_dot_repeats_zero_or_more_times():
    plan = DialPlan("9x.", max_digits=6)
    assert plan.classify("9") == "partial"
    assert plan.classify("912345") == "complete"  # at the length limit
    assert plan.classify("9123456") == "invalid"


def test_star_and_hash_are_literal_inside_a_pattern():
    plan = DialPlan("#31#x.|*x")
    assert plan.classify("#31#") == "partial"
    assert plan.classify("*5") == "complete"
    assert plan.classify("#3") == "partial"
    assert plan.classify("#4") == "invalid"


def test_optional_parentheses_and_whitespace():
    assert DialPlan("( 112 | 2xx )").classify("112") == "complete"


def test_empty_map_is_always_partial_until_max_digits():
    plan = DialPlan("", max_digits=4)
    assert plan.classify("") == "partial"
    assert plan.classify("123") == "partial"
    assert plan.classify("1234") == "complete"
    assert plan.classify("12345") == "invalid"


@pytest.mark.parametrize(
    ("digit_map", "position"),
    [
        ("12|", 3),
        ("|12", 0),
        ("(12", 0),
        ("1a", 1),
        ("[]", 0),
        ("[12", 0),
        (".1", 0),
        ("1..", 2),
        ("[9-1]", 1),
        ("1 | 2|  y", 8),
        ("T", 0),
    ],
)
def test_parse_errors_name_the_position(digit_map, position):
    with pytest.raises(DialPlanError) as caught:
        DialPlan(digit_map)
    assert caught.value.position == position
    assert f"position {position}" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_max_digits_must_be_positive():
    with pytest.raises(ValueError, match="max_digits"):
        DialPlan("", max_digits=0)


# --- properties -------------------------------------------------------------------------------------

elements = st.one_of(
    st.sampled_from(list("0123456789*#")),
    st.just("x"),
    st.lists(st.sampled_from(list("0123456789")), min_size=1, max_size=4, unique=True).map(
        lambda ds: "[" + "".join(ds) + "]"
    ),
)


@st.composite
def alternatives(draw):
    parts = draw(st.lists(elements, min_size=1, max_size=6))
    repeat_flags = draw(st.lists(st.booleans(), min_size=len(parts), max_size=len(parts)))
    return "".join(part + ("." if repeat else "") for part, repeat in zip(parts, repeat_flags, strict=True))


digit_maps = st.lists(alternatives(), min_size=1, max_size=4).map("|".join)


def as_regex(digit_map):
    regex = digit_map.replace("*", r"\*").replace("x", "[0-9]").replace(".", "*")
    return re.compile(f"(?:{regex})")


@settings(max_examples=60, deadline=None)
@given(digit_maps, digit_strings)
def test_classification_agrees_with_an_equivalent_regex(digit_map, digits):
    plan = DialPlan(digit_map, max_digits=32)
    result = plan.classify(digits)
    if as_regex(digit_map).fullmatch(digits):
        assert result in ("complete", "partial")
    if result == "complete":
        assert as_regex(digit_map).fullmatch(digits)


@settings(max_examples=60, deadline=None)
@given(digit_maps, digit_strings, st.sampled_from(list("0123456789*#")))
def test_invalid_and_complete_numbers_cannot_be_extended(digit_map, digits, next_key):
    plan = DialPlan(digit_map, max_digits=32)
    if plan.classify(digits) in ("invalid", "complete"):
        assert plan.classify(digits + next_key) == "invalid"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_proper_prefix_of_a_matching_number_is_partial(data):
    digit_map = data.draw(digit_maps)
    alternative = data.draw(st.sampled_from(digit_map.split("|")))
    number = data.draw(st.from_regex(as_regex(alternative), fullmatch=True).filter(lambda s: len(s) <= 12))
    plan = DialPlan(digit_map, max_digits=32)
    assert plan.classify(number) in ("complete", "partial")
    for end in range(len(number)):
        assert plan.classify(number[:end]) == "partial"


@settings(max_examples=50, deadline=None)
@given(digit_strings, st.integers(min_value=1, max_value=12))
def test_empty_map_is_partial_below_the_limit(digits, max_digits):
    result = DialPlan("", max_digits=max_digits).classify(digits)
    if len(digits) < max_digits:
        assert result == "partial"
    elif len(digits) == max_digits:
        assert result == "complete"
    else:
        assert result == "invalid"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=20))
def test_parsing_arbitrary_text_either_succeeds_or_names_a_position(text):
    try:
        parse_digit_map(text)
    except DialPlanError as error:
        assert 0 <= error.position <= len(text)
