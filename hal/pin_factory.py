"""Makes the gpiozero pin factory named in the configuration (never gpiozero's automatic detection)."""

from __future__ import annotations

import logging

from gpiozero.pins import Factory

from hal.exc import HalError

logger = logging.getLogger(__name__)


class UnknownPinFactoryError(HalError, ValueError):
    """A pin factory name that we do not know."""


PIN_FACTORIES = ("lgpio", "mock", "rpigpio", "native")


def make_pin_factory(name: str) -> Factory:
    """The pin factory called ``name``: "lgpio" (Pi 5 and Pi 4), "mock" (sim board: PanelPins),
    "rpigpio", "native". The choice is logged."""
    if name == "mock":
        from hal.simulated import make_mock_factory

        factory: Factory = make_mock_factory()
    elif name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        factory = LGPIOFactory()
    elif name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        factory = RPiGPIOFactory()
    elif name == "native":
        from gpiozero.pins.native import NativeFactory

        factory = NativeFactory()
    else:
        raise UnknownPinFactoryError(f"unknown pin factory {name!r}; known: {', '.join(PIN_FACTORIES)}")
    logger.info("pin factory %s (%s)", name, type(factory).__name__)
    return factory
