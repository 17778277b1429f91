"""Call statistics per manager and period: pure functions over the gateway's call records.

This is the one place where the numbers are computed; the ``report`` command, the ``/stats`` page and
its CSV export all show what ``compute`` returns.

What counts (every rule a sales department asks about, said once):

- A call counts once it has ended, in the period (and the hour) in which it *started*, in the office's
  time zone. Calls between two of our extensions and desks missing from the inventory are not client
  calls and never count. A click-to-call that never became a call (the phone refused it, or nobody
  picked up the handset before it expired) is not a call either.
- Desks without a CRM user (the accountant's plain extension) are left out, or shown apart as rows
  with ``crm = False`` when asked (``accountants="apart"``).
- ``answered``: calls in either direction that were answered. ``missed``: inbound calls nobody
  answered (whatever the phone's disposition: missed, rejected, busy), except those the phone
  forwarded (disposition ``forwarded``: they rang elsewhere, a mobile or another desk, which reports
  its own call when it is ours). ``busy`` and ``no_answer``:
  outbound calls the client did not take, by the phone's disposition.
- ``answer_rate``: answered inbound calls / inbound calls (None without inbound calls).
- ``missed_not_called_back``: missed inbound calls whose number the same desk has not dialled since
  the call ended (any outbound call to that number started after it, up to the newest record given,
  answered or not). Numbers are compared as the phone reported them.
- Ring time before answer: inbound answered calls, from the first ring to the answer (how long the
  client waited); average and 90th percentile by the nearest-rank rule (the smallest value that at
  least 90 % of the values do not exceed).
- Talk time: answered calls, from the answer to the end; total and average per answered call.
- ``by_hour``: calls (both directions) per hour of the day in which they started, 24 counts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from ..calls import CallState

Grouping = Literal["total", "day", "week", "month"]
GROUPINGS: tuple[str, ...] = ("total", "day", "week", "month")
Accountants = Literal["omit", "apart"]

NOT_CLIENT_CALLS = frozenset({"internal call", "desk not in the inventory"})
NO_CRM_USER = "desk without a CRM user"


@dataclass(frozen=True)
class Figures:
    """The numbers of one manager (or one desk without a CRM user) in one period."""

    calls_in: int = 0
    calls_out: int = 0
    answered: int = 0
    missed: int = 0
    busy: int = 0
    no_answer: int = 0
    answer_rate: float | None = None
    missed_not_called_back: int = 0
    ring_avg_s: float | None = None
    ring_p90_s: float | None = None
    talk_total_s: float = 0.0
    talk_avg_s: float | None = None
    by_hour: tuple[int, ...] = field(default_factory=lambda: (0,) * 24)


@dataclass(frozen=True)
class Row:
    """``period`` is its label (``2026-05-04``, ``2026-W19``, ``2026-05``; ``total`` rows carry
    ``<from>..<to>``); ``manager`` is the CRM user, or ``desk <extension>`` for a desk without one."""

    period: str
    manager: str
    name: str
    extension: str
    crm: bool
    figures: Figures


@dataclass(frozen=True)
class Report:
    start: date  # first day, inclusive, in the office's time zone
    end: date  # last day, inclusive
    time_zone: str
    grouping: Grouping
    rows: tuple[Row, ...]


def day_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants at which local day ``start`` begins and local day ``end`` is over."""
    return (
        datetime.combine(start, time(0), tz),
        datetime.combine(end + timedelta(days=1), time(0), tz),
    )


def is_call(call: CallState) -> bool:
    """Whether the record is a finished client call of a known desk (see the module's rules)."""
    if call.phase != "ended" or call.skipped in NOT_CLIENT_CALLS:
        return False
    never_dialled = (
        call.origin == "crm"
        and call.answered_at is None
        and call.sip_code is None
        and call.disposition in ("cancelled", "failed")
        and call.ended_at == call.started_at
    )
    return not never_dialled


def compute(
    calls: Iterable[CallState],
    start: date,
    end: date,
    time_zone: str,
    grouping: Grouping = "total",
    accountants: Accountants = "omit",
    names: Mapping[str, str] | None = None,
) -> Report:
    """The figures per manager and period for local days ``start``..``end`` (inclusive).

    ``calls`` may hold records from before and after the range: only those that started inside it
    are counted, and later ones are still looked at to decide whether a missed call was called back.
    ``names`` maps a CRM user to the name shown beside it.
    """
    tz = ZoneInfo(time_zone)
    since, until = day_bounds(start, end, tz)
    everything = sorted((c for c in calls if is_call(c)), key=lambda c: c.started_at)
    groups: dict[tuple[str, str], list[CallState]] = defaultdict(list)
    who: dict[str, tuple[str, str, bool]] = {}
    for call in everything:
        if not since <= call.started_at < until:
            continue
        with_crm = call.skipped != NO_CRM_USER and bool(call.crm_user)
        if not with_crm and accountants == "omit":
            continue
        manager = call.crm_user if with_crm else f"desk {call.extension or call.device_id}"
        who[manager] = (call.extension, (names or {}).get(call.crm_user, ""), with_crm)
        groups[(_period(call.started_at.astimezone(tz).date(), grouping, start, end), manager)].append(call)
    called_back = _called_back(everything)
    rows = [
        Row(
            period,
            manager,
            who[manager][1],
            who[manager][0],
            who[manager][2],
            _figures(group, tz, called_back),
        )
        for (period, manager), group in groups.items()
    ]
    rows.sort(key=lambda r: (r.period, not r.crm, r.manager))
    return Report(start, end, time_zone, grouping, tuple(rows))


def _period(day: date, grouping: Grouping, start: date, end: date) -> str:
    if grouping == "day":
        return day.isoformat()
    if grouping == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if grouping == "month":
        return f"{day.year}-{day.month:02d}"
    return f"{start.isoformat()}..{end.isoformat()}"


def _called_back(calls: list[CallState]) -> set[str]:
    """Ids of missed inbound calls whose number their desk dialled after the call ended."""
    last_dialled: dict[tuple[str, str], datetime] = {}
    for call in calls:
        if call.direction == "outbound":
            key = (call.device_id, call.remote_number)
            last_dialled[key] = max(last_dialled.get(key, call.started_at), call.started_at)
    out = set()
    for call in calls:
        if call.direction == "inbound" and call.answered_at is None:
            dialled = last_dialled.get((call.device_id, call.remote_number))
            if dialled is not None and dialled >= (call.ended_at or call.started_at):
                out.add(call.call_id)
    return out


def _figures(calls: list[CallState], tz: ZoneInfo, called_back: set[str]) -> Figures:
    inbound = [c for c in calls if c.direction == "inbound"]
    outbound = [c for c in calls if c.direction == "outbound"]
    answered = [c for c in calls if c.answered_at is not None]
    answered_in = [c for c in inbound if c.answered_at is not None]
    missed = [c for c in inbound if c.answered_at is None and c.disposition != "forwarded"]
    rings = sorted(c.ring_s or 0.0 for c in answered_in)
    talk = sum(c.talk_s for c in answered)
    hours = [0] * 24
    for call in calls:
        hours[call.started_at.astimezone(tz).hour] += 1
    return Figures(
        calls_in=len(inbound),
        calls_out=len(outbound),
        answered=len(answered),
        missed=len(missed),
        busy=sum(1 for c in outbound if c.answered_at is None and c.disposition == "busy"),
        no_answer=sum(1 for c in outbound if c.answered_at is None and c.disposition == "no_answer"),
        answer_rate=round(len(answered_in) / len(inbound), 4) if inbound else None,
        missed_not_called_back=sum(1 for c in missed if c.call_id not in called_back),
        ring_avg_s=round(sum(rings) / len(rings), 3) if rings else None,
        ring_p90_s=rings[math.ceil(0.9 * len(rings)) - 1] if rings else None,
        talk_total_s=round(talk, 3),
        talk_avg_s=round(talk / len(answered), 3) if answered else None,
        by_hour=tuple(hours),
    )
