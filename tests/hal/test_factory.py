import pytest
from gpiozero.pins.mock import MockFactory

from board import get_board
from hal import Hardware, build_hardware, make_pin_factory
from hal.pin_factory import UnknownPinFactoryError
from hal.simulated import PanelPin


def test_build_hardware_for_the_reference_board_on_mock_pins() -> None:
    factory = MockFactory()
    hardware = build_hardware(get_board("rpi-v1"), factory)
    try:
        assert isinstance(hardware, Hardware)
        assert not hardware.hook.is_off_hook
        assert hardware.line_led.mode == "off" and hardware.ringer.pattern is None
        used = {pin.info.name for pin in factory.pins.values()}
        assert {f"GPIO{pin}" for pin in get_board("rpi-v1").pins().values()} <= used
    finally:
        hardware.close()
        factory.reset()


def test_close_releases_every_pin() -> None:
    factory = MockFactory()
    board = get_board("sim")
    build_hardware(board, factory).close()
    # every pin can be claimed again
    build_hardware(board, factory).close()
    factory.reset()


def test_pin_factory_by_name() -> None:
    factory = make_pin_factory("mock")
    assert factory.pin_class is PanelPin
    with pytest.raises(UnknownPinFactoryError, match="lgpio, mock"):
        make_pin_factory("auto")
