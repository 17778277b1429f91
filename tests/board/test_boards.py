import dataclasses

import pytest

import board
from board import BOARDS, BadBoardError, BoardDescription, UnknownBoardError, get_board

I2S_AND_I2C = {2, 3, 18, 19, 20, 21}


@pytest.fixture(params=sorted(BOARDS))
def each_board(request: pytest.FixtureRequest) -> BoardDescription:
    return BOARDS[request.param]


def test_known_boards() -> None:
    assert board.board_names() == ("rpi-v1", "sim")
    assert get_board("rpi-v1").name == "rpi-v1"
    assert get_board("sim").audio_self_clocked


def test_unknown_board_names_the_known_ones() -> None:
    with pytest.raises(UnknownBoardError, match="rpi-v1, sim"):
        get_board("rpi-v9")
    with pytest.raises(LookupError):
        get_board("nope")


def test_no_pin_used_twice(each_board: BoardDescription) -> None:
    pins = list(each_board.pins().values())
    assert len(pins) == len(set(pins))
    assert not each_board.problems()


def test_every_pin_in_bcm_range(each_board: BoardDescription) -> None:
    assert all(0 <= pin <= 27 for pin in each_board.pins().values())


def test_reference_pins_leave_i2s_and_i2c_free() -> None:
    assert not I2S_AND_I2C & set(get_board("rpi-v1").pins().values())


def test_keymap_matches_rows_and_columns(each_board: BoardDescription) -> None:
    assert len(each_board.keymap) == len(each_board.keypad_rows) == 4
    assert all(len(row) == len(each_board.keypad_cols) == 3 for row in each_board.keymap)
    assert sorted(each_board.keys) == sorted("0123456789*#")


def test_bounce_times_are_set(each_board: BoardDescription) -> None:
    assert each_board.hook_bounce_s > 0
    assert each_board.key_debounce_s > 0
    assert each_board.key_scan_interval_s > 0
    assert each_board.key_debounce_scans >= 1


def test_debounce_scans_from_times() -> None:
    assert get_board("rpi-v1").key_debounce_scans == 4
    assert get_board("sim").key_debounce_scans == 2


def test_boards_are_frozen(each_board: BoardDescription) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        each_board.hook_pin = 4  # type: ignore[misc]


def test_bad_boards_are_refused_with_every_problem() -> None:
    with pytest.raises(BadBoardError) as caught:
        dataclasses.replace(get_board("sim"), ringer_pin=17, line_led_pin=40, keymap=("12", "45", "78", "*0"))
    text = str(caught.value)
    assert "pin 17 is used by both hook and ringer" in text
    assert "line_led pin 40" in text
    assert "keymap row 0" in text
    with pytest.raises(ValueError, match="hook_bounce_s must be > 0"):
        dataclasses.replace(get_board("sim"), hook_bounce_s=0)
