"""End-to-end tests: the phone daemon on the sim board with real kamailio, baresip and mosquitto."""

from tests.servers.mosquitto import mosquitto  # noqa: F401 - fixture used by name
