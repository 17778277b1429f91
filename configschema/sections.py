"""Config sections the phone and the gateway have alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import values as check

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: the log level (Python's names, any case)."""

    level: Annotated[str, check.one_of(*LOG_LEVELS, ignore_case=True)] = "INFO"
