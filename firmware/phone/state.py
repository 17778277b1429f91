"""The phone's state: frozen data, changed only by ``firmware.phone.step``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from firmware.commands import Origin
from firmware.config import DialplanConfig
from firmware.dialplan import DialPlan
from firmware.effects import ToneKind
from firmware.events import CallRecord
from firmware.line_settings import Forwarding

Mode = Literal["idle", "dialing", "outgoing", "ringing_in", "in_call", "alerting", "ended"]
"""
idle        handset down, nothing going on
dialing     handset up, collecting digits (dial tone until the first)
outgoing    our call is being set up
ringing_in  a call rings, handset down
in_call     talking
alerting    a click-to-call (CRM or trusted PBX) rings, lifting the handset places or answers it
ended       handset still up after a call or a refused number: a tone until it is put down
"""

OFF_HOOK_MODES = frozenset({"dialing", "outgoing", "in_call", "ended"})
CALL_MODES = frozenset({"outgoing", "ringing_in", "in_call"})


@dataclass(frozen=True)
class PhoneSettings:
    """What the state machine needs from the configuration.

    Calls we place get the id ``f"{call_id_prefix}{n}"``; the daemon picks a prefix unique to this run
    (and distinct from the SIP stack's ids of incoming calls) so ids never repeat across restarts.
    """

    dial_plan: DialPlan = field(default_factory=DialPlan)
    interdigit_timeout_s: float = 4.0
    redial_key: str = "#"
    call_id_prefix: str = "out-"
    # A handset down for ``hook_flash_min_s`` .. ``hook_flash_max_s`` and up again is a hook flash;
    # a max of 0 turns flashing off (every on-hook hangs up at once).
    hook_flash_min_s: float = 0.0
    hook_flash_max_s: float = 0.0
    call_waiting: bool = False  # a second incoming call during a call waits (tone, display) instead of 486
    own_number: str = ""  # our extension: a forward to it would loop through the PBX
    # A flash with a call waiting waits this long for a key that says what to do with it (0 reject,
    # 1 end the call and take it, 2 hold the call and take it); then it does what 2 does. 0: at once.
    waiting_choice_s: float = 0.0

    @classmethod
    def from_config(
        cls,
        dialplan: DialplanConfig,
        call_id_prefix: str = "out-",
        hook_flash_s: tuple[float, float] = (0.0, 0.0),
        call_waiting: bool = False,
        own_number: str = "",
        waiting_choice_s: float = 0.0,
    ) -> PhoneSettings:
        return cls(
            dial_plan=DialPlan(dialplan.digit_map, dialplan.max_digits),
            interdigit_timeout_s=dialplan.interdigit_timeout_s,
            redial_key=dialplan.redial_key,
            call_id_prefix=call_id_prefix,
            hook_flash_min_s=hook_flash_s[0],
            hook_flash_max_s=hook_flash_s[1],
            call_waiting=call_waiting,
            own_number=own_number,
            waiting_choice_s=waiting_choice_s,
        )


@dataclass(frozen=True)
class ClickToCall:
    """A click-to-call that alerts: from the CRM (a ``Dial`` command) or a trusted PBX (a call)."""

    origin: Origin
    number: str
    request_id: str | None = None
    expires_at: datetime | None = None
    display: str | None = None
    crm: dict[str, Any] | None = None


@dataclass(frozen=True)
class PhoneState:
    settings: PhoneSettings = field(default_factory=PhoneSettings)
    mode: Mode = "idle"
    off_hook: bool = False
    registered: bool = False
    registration_code: int | None = None
    dnd: bool = False
    forwarding: Forwarding = field(default_factory=Forwarding)
    digits: str = ""
    last_key_at: datetime | None = None
    last_number: str | None = None
    missed_call: bool = False
    call: CallRecord | None = None
    # The call the SIP stack places because the far end of ``call`` transferred us (a REFER), while
    # it is set up; it becomes ``call`` when it is answered or when the far end hangs up on ``call``.
    transfer: CallRecord | None = None
    held: CallRecord | None = None  # the call we put on hold (hook flash); ``call`` is another one or None
    consultation: bool = False  # ``call`` was dialled with ``held`` on hold: hanging up transfers
    waiting: CallRecord | None = None  # a second incoming call, ringing while we talk (call waiting)
    waiting_choice_at: datetime | None = None  # a flash with ``waiting``: the next key 0/1/2 decides
    on_hook_at: datetime | None = None  # the handset went down during a call: a hang-up, or a hook flash
    held_by_remote: bool = False  # the far end of ``call`` put it on hold
    remote_ringing: bool = False  # of the call being set up: ours in ``outgoing``, or ``transfer``
    ringback: bool = False
    end_tone: ToneKind | None = None
    click_to_call: ClickToCall | None = None
    calls_placed: int = 0


def initial_state(
    settings: PhoneSettings | None = None,
    dnd: bool = False,
    off_hook: bool = False,
    forwarding: Forwarding | None = None,
) -> PhoneState:
    """The state at start-up; a handset already lifted starts in ``dialing``."""
    return PhoneState(
        settings=settings or PhoneSettings(),
        dnd=dnd,
        forwarding=forwarding or Forwarding(),
        off_hook=off_hook,
        mode="dialing" if off_hook else "idle",
    )
