"""Exceptions of the provisioning tools; each also subclasses the builtin that fits."""

from __future__ import annotations


class ProvisioningError(Exception):
    """Base class: a provisioning step failed; the message says what and where."""


class RefusedTarget(ProvisioningError, ValueError):
    """The target is not something we may write to (not Raspberry Pi OS, mounted, a system disk)."""


class InvalidDevice(ProvisioningError, ValueError):
    """A device description or inventory is invalid; ``errors`` holds every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


class ToolMissing(ProvisioningError, FileNotFoundError):
    """An external program (mtools, sfdisk...) is not installed."""


class WriteFailed(ProvisioningError, OSError):
    """Writing to the target failed part-way; the target may be half-written."""


class VerifyFailed(ProvisioningError):
    """What is on the target does not match what was expected; ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))
