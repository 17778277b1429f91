"""The desk phone: configuration, events, commands, the phone state machine and the daemon."""

# The one place of the version (pyproject.toml reads it): importlib.metadata would cost the phone
# ~30 ms of imports before its first REGISTER.
__version__ = "0.1.0"
