"""The sim console's state line shows do-not-disturb and forwarding as the snapshot has them."""

from firmware.sim_console import summary

STATE = {"phone_state": "idle", "hook": "down", "registered": True, "leds": {"line": "off", "message": "off"},
         "ringer": None, "display": "Fwd -> 1003 DND"}  # fmt: skip


def test_the_state_line_shows_dnd_and_each_forward():
    forward = {"always": "1003", "busy": None, "no_answer": "0170123", "no_answer_s": 20}
    line = summary({**STATE, "dnd": True, "forward": forward})
    assert line.endswith(" dnd=on forward=always>1003,no_answer>0170123")
    assert "display='Fwd -> 1003 DND'" in line


def test_nothing_extra_without_them():
    assert "dnd" not in summary({**STATE, "dnd": False, "forward": None})
    assert "forward" not in summary(STATE)
