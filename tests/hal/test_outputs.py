import pytest

from hal import BadModeError, Hardware
from hal.ringer import RING_PATTERNS
from hal.simulated import SimulatedPanel
from lab.waiting import wait_until


def test_leds_on_off(hardware: Hardware, panel: SimulatedPanel) -> None:
    assert panel.read_leds() == {"line": "off", "message": "off"}
    hardware.message_led.set("on")
    assert hardware.message_led.mode == "on"
    assert panel.read_leds() == {"line": "off", "message": "on"}
    hardware.message_led.set("off")
    assert panel.read_leds()["message"] == "off"


def test_led_blink_is_seen_on_the_pin(hardware: Hardware, panel: SimulatedPanel) -> None:
    hardware.line_led.set("blink")
    assert hardware.line_led.mode == "blink"
    assert wait_until(lambda: panel.read_leds()["line"] == "blink", timeout=3.0)
    hardware.line_led.set("off")
    assert hardware.line_led.mode == "off"


def test_bad_led_mode(hardware: Hardware) -> None:
    with pytest.raises(BadModeError):
        hardware.line_led.set("flash")
    with pytest.raises(ValueError):
        hardware.line_led.set("dim")


def test_ringer_patterns(hardware: Hardware, panel: SimulatedPanel) -> None:
    assert hardware.ringer.pattern is None and not panel.ringer_on()
    hardware.ringer.ring("normal")
    assert hardware.ringer.pattern == "normal"
    assert panel.ringer_on()  # every pattern starts sounding at once
    hardware.ringer.ring("click_to_call")
    assert hardware.ringer.pattern == "click_to_call"
    # the double burst: the buzzer goes silent and sounds again
    assert wait_until(lambda: not panel.ringer_on(), timeout=3.0)
    assert wait_until(panel.ringer_on, timeout=3.0)
    hardware.ringer.stop()
    assert hardware.ringer.pattern is None
    assert not panel.ringer_on()


def test_ring_patterns_are_distinct() -> None:
    assert RING_PATTERNS["normal"] != RING_PATTERNS["click_to_call"]
    assert sum(1 for on, _ in RING_PATTERNS["click_to_call"] if on) == 2
    assert RING_PATTERNS["normal"] == ((True, 2.0), (False, 4.0))


def test_bad_ring_pattern(hardware: Hardware) -> None:
    with pytest.raises(BadModeError):
        hardware.ringer.ring("siren")


def test_display_keeps_and_logs_the_line(hardware: Hardware, caplog: pytest.LogCaptureFixture) -> None:
    assert hardware.display.text == ""
    with caplog.at_level("INFO", logger="hal.display"):
        hardware.display.show("Call 1002?")
    assert hardware.display.text == "Call 1002?"
    assert "Call 1002?" in caplog.text
