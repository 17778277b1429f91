import threading

from board import BoardDescription
from hal import Hardware
from hal.simulated import SimulatedPanel


def test_hook_starts_on_hook(hardware: Hardware) -> None:
    assert not hardware.hook.is_off_hook


def test_driving_the_hook_pin_reports_lift_and_replace(
    hardware: Hardware, factory, sim_board: BoardDescription
) -> None:
    changes: list[bool] = []
    lifted, replaced = threading.Event(), threading.Event()

    def changed(off_hook: bool) -> None:
        changes.append(off_hook)
        (lifted if off_hook else replaced).set()

    hardware.hook.when_changed = changed
    pin = factory.pin(sim_board.hook_pin)
    pin.drive_low()  # active low: the switch closes to ground when the handset is lifted
    assert lifted.wait(2)
    assert hardware.hook.is_off_hook
    pin.drive_high()
    assert replaced.wait(2)
    assert not hardware.hook.is_off_hook
    assert changes == [True, False]


def test_panel_lift_and_replace(hardware: Hardware, panel: SimulatedPanel) -> None:
    lifted = threading.Event()
    hardware.hook.when_changed = lambda off_hook: off_hook and lifted.set()
    panel.lift()
    assert lifted.wait(2)
    assert hardware.hook.is_off_hook and panel.is_off_hook()
    panel.replace()
    assert not hardware.hook.is_off_hook and not panel.is_off_hook()


def test_a_failing_callback_does_not_break_the_switch(hardware: Hardware, panel: SimulatedPanel) -> None:
    def broken(off_hook: bool) -> None:
        raise RuntimeError("boom")

    hardware.hook.when_changed = broken
    panel.lift()
    assert hardware.hook.is_off_hook


def test_hook_bounce_time_comes_from_the_board(hardware: Hardware, sim_board: BoardDescription) -> None:
    assert hardware.hook._switch.pin.bounce == sim_board.hook_bounce_s
