from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from board import BoardDescription, get_board
from hal import Hardware, build_hardware
from hal.simulated import SimulatedPanel, make_mock_factory


@pytest.fixture
def sim_board() -> BoardDescription:
    return get_board("sim")


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = make_mock_factory()
    yield factory
    factory.reset()


@pytest.fixture
def hardware(sim_board: BoardDescription, factory: MockFactory) -> Iterator[Hardware]:
    hardware = build_hardware(sim_board, factory)
    yield hardware
    hardware.close()


@pytest.fixture
def panel(sim_board: BoardDescription, factory: MockFactory, hardware: Hardware) -> SimulatedPanel:
    return SimulatedPanel(factory, sim_board)
