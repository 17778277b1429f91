"""The desk phone: configuration, events, commands, the phone state machine and the daemon."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deskphone")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
