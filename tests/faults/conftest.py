"""Fault tests: the phone daemon against real servers while something goes wrong."""

from tests.servers.mosquitto import mosquitto  # noqa: F401 - fixture used by name
