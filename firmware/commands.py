"""Commands: what someone asks the phone to do.

The keypad, the MQTT bridge and the simulator's control socket all turn their input into these
objects, and the phone handles them with the same code whatever their source. Commands are named as
imperatives; what happened as a result is reported by events (``firmware.events``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Origin = Literal["manual", "crm", "pbx"]


@dataclass(frozen=True)
class PressKey:
    """A key of the keypad went down: ``0-9``, ``*`` or ``#``."""

    key: str


@dataclass(frozen=True)
class LiftHandset:
    """The hook switch reports the handset lifted."""


@dataclass(frozen=True)
class ReplaceHandset:
    """The hook switch reports the handset put down."""


@dataclass(frozen=True)
class Dial:
    """Call ``number``: placed at once if the handset is up and idle, else the phone alerts first.

    ``request_id`` identifies the request for its reply and for ``cmd/cancel``. ``expires_at`` is the
    moment after which the request must never dial (from ``ttl_s``, ``expires_at`` or the MQTT 5
    message expiry). ``crm`` is the CRM's opaque object, echoed in every event of the call.
    """

    request_id: str
    number: str
    expires_at: datetime
    origin: Origin = "crm"
    display: str | None = None
    crm: dict[str, Any] | None = None


@dataclass(frozen=True)
class CancelDial:
    """Withdraw a click-to-call that is still alerting."""

    request_id: str


@dataclass(frozen=True)
class Hangup:
    """End the current call (or the one named by ``call_id``)."""

    request_id: str
    call_id: str | None = None


@dataclass(frozen=True)
class ShowCaller:
    """The CRM's name for the caller of call ``call_id``: shown on the display from now on."""

    request_id: str
    call_id: str
    name: str


@dataclass(frozen=True)
class SetDoNotDisturb:
    """Do-not-disturb on or off; ``request_id`` (a remote command's) is answered with the new state."""

    enabled: bool
    request_id: str | None = None


ForwardMode = Literal["always", "busy", "no_answer"]
FORWARD_MODES: tuple[ForwardMode, ...] = ("always", "busy", "no_answer")


@dataclass(frozen=True)
class SetForward:
    """Forward calls of ``mode`` to ``number`` (None: stop forwarding them). ``no_answer_s``: how long
    a call rings before a ``no_answer`` forward takes it (None: keep the current time)."""

    request_id: str
    mode: ForwardMode
    number: str | None
    no_answer_s: int | None = None


Command = (
    PressKey
    | LiftHandset
    | ReplaceHandset
    | Dial
    | CancelDial
    | Hangup
    | ShowCaller
    | SetDoNotDisturb
    | SetForward
)


@dataclass(frozen=True)
class Reply:
    """The single answer to a remote command: ``ok`` with a ``result``, or an error code and reason."""

    request_id: str
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def success(cls, request_id: str, **result: Any) -> Reply:
        return cls(request_id=request_id, ok=True, result=result)

    @classmethod
    def failure(cls, request_id: str, code: str, message: str) -> Reply:
        return cls(request_id=request_id, ok=False, error_code=code, error_message=message)
