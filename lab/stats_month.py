"""A generated month of calls for five managers and an accountant, as the gateway records them.

``month_of_calls`` returns the plan (what happened, in the office's local time and plain words) beside
the gateway's ``CallState`` records of it, so a test can count the plan by hand and compare with the
statistics computed from the records; ``make run`` and the bench fill a store with the same records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.calls import CallState
from gateway.store import GatewayStore

MANAGERS = (
    ("desk-201", "201", "11", "Anna Berg"),
    ("desk-202", "202", "12", "Ben Adler"),
    ("desk-203", "203", "13", "Carla Diaz"),
    ("desk-204", "204", "14", "Dmitri Orlov"),
    ("desk-205", "205", "15", "Eva Novak"),
)
ACCOUNTANT = ("desk-209", "209", "", "Accounts")
CLIENTS = tuple(f"+4930555{n:04d}" for n in range(40))

# What the client and the desk did; "missed" is inbound only, "busy"/"no_answer" outbound only.
Outcome = str
DISPOSITION = {"answered": "answered", "missed": "missed", "busy": "busy", "no_answer": "no_answer"}
SIP_CODE = {"answered": 200, "missed": 487, "busy": 486, "no_answer": 408}


@dataclass(frozen=True)
class PlannedCall:
    desk: int  # index into MANAGERS; -1 is the accountant
    local_start: datetime  # naive, office time
    direction: str  # "inbound" / "outbound"
    outcome: Outcome
    ring_s: int
    talk_s: int
    number: str


def inventory_csv() -> str:
    """``office.csv`` rows for these desks (the inventory's columns)."""
    lines = ["device_id,extension,name,crm_user"]
    for device, ext, user, name in (*MANAGERS, ACCOUNTANT):
        lines.append(f"{device},{ext},{name},{user}")
    return "\n".join(lines) + "\n"


def plan_month(year: int = 2026, month: int = 5, seed: int = 10) -> list[PlannedCall]:
    """Working days of the month: each manager makes and takes 1-6 calls a day, 08:00-18:59."""
    rng = random.Random(seed)
    plan: list[PlannedCall] = []
    day = date(year, month, 1)
    while day.month == month:
        if day.weekday() < 5:
            for desk in (*range(len(MANAGERS)), -1):
                for _ in range(rng.randint(1, 6)):
                    start = datetime(day.year, day.month, day.day, rng.randint(8, 18), rng.randint(0, 59))
                    direction = rng.choice(("inbound", "inbound", "outbound"))
                    if direction == "inbound":
                        outcome = rng.choice(("answered", "answered", "answered", "missed"))
                    else:
                        outcome = rng.choice(("answered", "answered", "busy", "no_answer"))
                    ring = rng.randint(2, 30)
                    talk = rng.randint(15, 900) if outcome == "answered" else 0
                    plan.append(PlannedCall(desk, start, direction, outcome, ring, talk, rng.choice(CLIENTS)))
        day += timedelta(days=1)
    return plan


def record_of(planned: PlannedCall, index: int, tz: ZoneInfo) -> CallState:
    device, ext, user, _ = MANAGERS[planned.desk] if planned.desk >= 0 else ACCOUNTANT
    started = planned.local_start.replace(tzinfo=tz).astimezone(UTC)
    answered = started + timedelta(seconds=planned.ring_s) if planned.outcome == "answered" else None
    ended = (
        (answered + timedelta(seconds=planned.talk_s))
        if answered
        else started + timedelta(seconds=planned.ring_s)
    )
    return CallState(
        call_id=f"gen-{index:05d}",
        device_id=device,
        phase="ended",
        direction=planned.direction,  # type: ignore[arg-type]
        origin="manual" if planned.direction == "outbound" else "pbx",
        remote_number=planned.number,
        started_at=started,
        crm_user=user,
        extension=ext,
        answered_at=answered,
        ended_at=ended,
        disposition=DISPOSITION[planned.outcome],
        sip_code=SIP_CODE[planned.outcome],
        hangup_by="remote",
        skipped=None if user else "desk without a CRM user",
    )


def month_of_calls(
    year: int = 2026, month: int = 5, time_zone: str = "Europe/Berlin", seed: int = 10
) -> tuple[list[PlannedCall], list[CallState]]:
    tz = ZoneInfo(time_zone)
    plan = plan_month(year, month, seed)
    return plan, [record_of(p, i, tz) for i, p in enumerate(plan)]


def fill_store(store: GatewayStore, records: list[CallState]) -> None:
    """Save the records as the gateway would once their calls ended (no CRM requests)."""
    for record in records:
        store.record(record, {})
