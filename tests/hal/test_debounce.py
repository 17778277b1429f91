import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.debounce import KeyDebouncer


def feed(debouncer: KeyDebouncer, scans: list[set[str]]) -> list[str]:
    return [key for scan in scans for key in debouncer.update(scan)]


def test_a_clean_press_is_reported_once_after_enough_scans() -> None:
    debouncer = KeyDebouncer(3)
    assert debouncer.update({"5"}) == []
    assert debouncer.update({"5"}) == []
    assert debouncer.update({"5"}) == ["5"]
    assert feed(debouncer, [{"5"}] * 10) == []
    assert debouncer.pressed == {"5"}


def test_chatter_yields_one_key() -> None:
    debouncer = KeyDebouncer(3)
    bouncing_press = [{"1"}, set(), {"1"}, {"1"}, set(), {"1"}, {"1"}, {"1"}, {"1"}]
    bouncing_release = [set(), {"1"}, set(), {"1"}, set(), set(), set(), set()]
    assert feed(debouncer, bouncing_press + [{"1"}] * 5 + bouncing_release) == ["1"]
    assert debouncer.pressed == frozenset()


def test_a_glitch_shorter_than_the_debounce_is_ignored() -> None:
    debouncer = KeyDebouncer(2)
    assert feed(debouncer, [{"7"}, set(), {"7"}, set(), set()]) == []


def test_holding_a_key_reports_it_once_and_pressing_again_reports_again() -> None:
    debouncer = KeyDebouncer(2)
    assert feed(debouncer, [{"0"}] * 50 + [set()] * 2 + [{"0"}] * 2) == ["0", "0"]


def test_keys_pressed_in_the_same_scan_come_in_keymap_order() -> None:
    debouncer = KeyDebouncer(1, order="123456789*0#")
    assert debouncer.update({"#", "1", "5"}) == ["1", "5", "#"]


def test_release_is_debounced_too() -> None:
    debouncer = KeyDebouncer(3)
    feed(debouncer, [{"2"}] * 3)
    # a short open while held does not release, so no second press
    assert feed(debouncer, [set(), set(), {"2"}, {"2"}]) == []


def test_scans_must_be_positive() -> None:
    with pytest.raises(ValueError):
        KeyDebouncer(0)


@given(st.lists(st.sampled_from("1234"), min_size=1, max_size=12), st.integers(1, 5))
def test_separated_clean_presses_come_out_exactly(keys: list[str], scans: int) -> None:
    debouncer = KeyDebouncer(scans)
    out: list[str] = []
    for key in keys:
        out += feed(debouncer, [{key}] * scans + [set()] * scans)
    assert out == keys


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 4))
def test_never_more_presses_than_stable_runs(raw: list[bool], scans: int) -> None:
    debouncer = KeyDebouncer(scans)
    out = feed(debouncer, [{"9"} if closed else set() for closed in raw])
    runs = sum(1 for i in range(len(raw)) if raw[i] and (i == 0 or not raw[i - 1]))
    assert len(out) <= runs
