import threading

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from board import BoardDescription
from hal import Hardware, PanelError, PanelTimeoutError, UnknownKeyError, build_hardware
from hal.keypad import MatrixKeypad
from hal.simulated import SimulatedPanel


class KeyLog:
    def __init__(self, expected: int) -> None:
        self.keys: list[str] = []
        self._expected = expected
        self.done = threading.Event()

    def __call__(self, key: str) -> None:
        self.keys.append(key)
        if len(self.keys) >= self._expected:
            self.done.set()


def test_pressing_1002_hash_quickly_gives_exactly_those_keys(
    hardware: Hardware, panel: SimulatedPanel
) -> None:
    log = KeyLog(5)
    hardware.keypad.when_key = log
    hardware.keypad.start()
    panel.type("1002#")
    assert log.done.wait(30)
    assert log.keys == list("1002#")


def test_every_key_of_the_matrix(
    hardware: Hardware, panel: SimulatedPanel, sim_board: BoardDescription
) -> None:
    log = KeyLog(12)
    hardware.keypad.when_key = log
    hardware.keypad.start()
    panel.type("".join(sim_board.keys))
    assert log.done.wait(30)
    assert log.keys == list(sim_board.keys)


class WiredColumnPin(MockPin):
    """A column pin with one key held down: it reads low while ``row`` is driven low."""

    row: MockPin | None = None

    def _get_state(self) -> bool:
        row = self.row
        return super()._get_state() and not (row is not None and row.function == "output" and not row.state)


def test_scan_drives_rows_low_and_reads_columns(sim_board: BoardDescription) -> None:
    factory = MockFactory()
    column = factory.pin(sim_board.keypad_cols[1], pin_class=WiredColumnPin)
    keypad = MatrixKeypad(sim_board, factory)
    try:
        rows = [factory.pin(p) for p in sim_board.keypad_rows]
        assert all(row.state for row in rows)  # idle: every row high
        column.row = rows[2]  # hold "8"
        scans = [keypad.scan_once() for _ in range(sim_board.key_debounce_scans + 3)]
        assert [key for scan in scans for key in scan] == ["8"]
        assert scans[sim_board.key_debounce_scans - 1] == ["8"]
        assert all(row.state for row in rows)  # every row released after a scan
        column.row = None
        assert [keypad.scan_once() for _ in range(3)] == [[], [], []]
    finally:
        keypad.close()
        factory.reset()


def test_unknown_key(panel: SimulatedPanel) -> None:
    with pytest.raises(UnknownKeyError):
        panel.press("A")


def test_press_times_out_when_the_keypad_does_not_scan(panel: SimulatedPanel) -> None:
    with pytest.raises(PanelTimeoutError):
        panel.press("5", timeout=0.1)


def test_a_failing_key_callback_does_not_stop_the_scan(hardware: Hardware, panel: SimulatedPanel) -> None:
    log = KeyLog(2)

    def flaky(key: str) -> None:
        log(key)
        if key == "1":
            raise RuntimeError("boom")

    hardware.keypad.when_key = flaky
    hardware.keypad.start()
    panel.type("12")
    assert log.done.wait(30)
    assert log.keys == ["1", "2"]


def test_panel_first_on_a_plain_mock_factory(sim_board: BoardDescription) -> None:
    factory = MockFactory()
    panel = SimulatedPanel(factory, sim_board)
    hardware = build_hardware(sim_board, factory)
    try:
        log = KeyLog(3)
        hardware.keypad.when_key = log
        hardware.keypad.start()
        panel.type("*0#")
        assert log.done.wait(30)
        assert log.keys == ["*", "0", "#"]
    finally:
        hardware.close()
        factory.reset()


def test_panel_after_hardware_on_a_plain_mock_factory_is_refused(sim_board: BoardDescription) -> None:
    factory = MockFactory()
    hardware = build_hardware(sim_board, factory)
    try:
        with pytest.raises(PanelError, match="make_mock_factory"):
            SimulatedPanel(factory, sim_board)
    finally:
        hardware.close()
        factory.reset()


def test_an_idle_keypad_wakes_on_a_column_edge(
    hardware: Hardware, panel: SimulatedPanel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the idle re-check pushed out of reach, only the column's edge can start the scan."""
    monkeypatch.setattr("hal.keypad.IDLE_CHECK_S", 3600.0)
    log = KeyLog(3)
    hardware.keypad.when_key = log
    hardware.keypad.start()
    panel.type("5*9")
    assert log.done.wait(30)
    assert log.keys == list("5*9")
