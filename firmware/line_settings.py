"""Forwarding and do-not-disturb as the CRM last set them, kept across restarts.

The file (``line_settings.json`` in ``storage.dir``, 0600, replaced atomically) holds the settings and
the config values they were changed from. Which wins at start-up: the CRM's change, as long as the
config's own values (``[forward]``, ``sip.do_not_disturb``) are still the ones it was made over; once
an administrator changes those, the config is the newer intent and the file is dropped. A user who
set "forward to my mobile" from the CRM keeps it through a power cut, and a re-provisioned phone
does what its new config says.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware.commands import ForwardMode
    from firmware.phone.state import PhoneState

logger = logging.getLogger(__name__)

FILE_NAME = "line_settings.json"
VERSION = 1

DEFAULT_NO_ANSWER_S = 20


@dataclass(frozen=True)
class Forwarding:
    """Where calls go instead of ringing here: every call (``always``), the calls the line cannot take
    (``busy``), the calls not answered within ``no_answer_s`` (``no_answer``); None: not forwarded."""

    always: str | None = None
    busy: str | None = None
    no_answer: str | None = None
    no_answer_s: int = DEFAULT_NO_ANSWER_S

    def target(self, mode: ForwardMode) -> str | None:
        return {"always": self.always, "busy": self.busy, "no_answer": self.no_answer}[mode]

    def as_dict(self) -> dict[str, Any]:
        """The settings as the contract shows them (status, replies, the sim snapshot)."""
        return {
            "always": self.always,
            "busy": self.busy,
            "no_answer": self.no_answer,
            "no_answer_s": self.no_answer_s,
        }


@dataclass(frozen=True)
class LineSettings:
    dnd: bool
    forwarding: Forwarding

    @classmethod
    def of(cls, state: PhoneState) -> LineSettings:
        return cls(state.dnd, state.forwarding)

    def as_dict(self) -> dict[str, Any]:
        """Forwarding and do-not-disturb as the CRM sees them (replies, status)."""
        return {"dnd": self.dnd, "forward": self.forwarding.as_dict()}


class LineSettingsStore:
    def __init__(self, storage_dir: Path, from_config: LineSettings) -> None:
        self.path = storage_dir / FILE_NAME
        self._from_config = from_config

    def load(self) -> LineSettings:
        """The settings to start with: the CRM's last ones, unless the config changed since."""
        try:
            stored = json.loads(self.path.read_text())
        except FileNotFoundError:
            return self._from_config
        except (OSError, ValueError) as exc:
            logger.warning("%s unreadable (%s): forwarding and DND from the config", self.path, exc)
            return self._from_config
        try:
            if stored.get("v") != VERSION or stored.get("config") != self._from_config.as_dict():
                logger.info("the config's forwarding/DND changed since the CRM set them: the config wins")
                self.path.unlink(missing_ok=True)
                return self._from_config
            settings = _settings_of(stored["settings"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("%s is not valid (%s): forwarding and DND from the config", self.path, exc)
            return self._from_config
        logger.info("forwarding and DND as last set by the CRM: %s", settings.as_dict())
        return settings

    def save(self, settings: LineSettings) -> None:
        """Write ``settings`` (0600, atomically); an error is logged, the phone goes on."""
        payload = {"v": VERSION, "config": self._from_config.as_dict(), "settings": settings.as_dict()}
        temporary = self.path.with_suffix(".tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                json.dump(payload, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.error("cannot keep forwarding/DND in %s: %s", self.path, exc)


def _settings_of(obj: dict[str, Any]) -> LineSettings:
    forward = obj["forward"]
    targets = {mode: forward[mode] for mode in ("always", "busy", "no_answer")}
    for value in targets.values():
        if value is not None and not isinstance(value, str):
            raise ValueError("a forwarding target must be a string or null")
    seconds = forward["no_answer_s"]
    if type(seconds) is not int or type(obj["dnd"]) is not bool:
        raise ValueError("no_answer_s must be an integer and dnd a boolean")
    return LineSettings(dnd=obj["dnd"], forwarding=Forwarding(**targets, no_answer_s=seconds))
