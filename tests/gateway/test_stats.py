"""Statistics: a hand-written day with every rule's edge, and a generated month for five managers
whose figures this test counts from the plan itself (never through ``gateway.stats``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.calls import CallState
from gateway.stats import compute, to_csv, to_json
from lab.stats_month import MANAGERS, PlannedCall, month_of_calls

BERLIN = ZoneInfo("Europe/Berlin")


def rec(
    call_id: str,
    local: str,
    direction: str = "inbound",
    ring: int = 5,
    talk: int | None = None,
    disposition: str | None = None,
    number: str = "+4930111",
    desk: str = "desk-1",
    user: str = "7",
    skipped: str | None = None,
    origin: str = "pbx",
    phase: str = "ended",
) -> CallState:
    """A call that started at ``local`` (Berlin), rang ``ring`` s and, with ``talk``, was answered."""
    start = datetime.fromisoformat(local).replace(tzinfo=BERLIN).astimezone(UTC)
    answered = start + timedelta(seconds=ring) if talk is not None else None
    ended = (
        answered + timedelta(seconds=talk)
        if answered and talk is not None
        else start + timedelta(seconds=ring)
    )
    return CallState(
        call_id,
        desk,
        phase,  # type: ignore[arg-type]
        direction,  # type: ignore[arg-type]
        origin,  # type: ignore[arg-type]
        number,
        start,
        crm_user=user,
        extension=desk.removeprefix("desk-"),
        answered_at=answered,
        ended_at=ended if phase == "ended" else None,
        disposition=disposition or ("answered" if talk is not None else "missed"),
        sip_code=None if origin == "crm" else 200,
        skipped=skipped,
    )


# One manager (user 7 at desk-1) on Monday 4 May 2026, plus calls that must not count.
DAY = [
    rec("a", "2026-05-04 00:30", ring=4, talk=60),  # 22:30 UTC the day before: still the 4th in Berlin
    rec("b", "2026-05-04 09:10", ring=10, talk=120),
    rec("c", "2026-05-04 09:40", ring=20, number="+4930222"),  # missed, called back by "d"
    rec("d", "2026-05-04 10:05", "outbound", ring=3, talk=30, number="+4930222"),
    rec("e", "2026-05-04 11:00", ring=30, number="+4930333"),  # missed; dialled only before it ("f")
    rec("f", "2026-05-04 10:59", "outbound", ring=8, disposition="busy", number="+4930333"),
    rec("g", "2026-05-04 12:00", ring=7, number="+4930444"),  # missed; another desk called back
    rec("h", "2026-05-04 12:30", "outbound", ring=4, talk=10, number="+4930444", desk="desk-2", user="8"),
    rec("i", "2026-05-04 13:00", "outbound", ring=25, disposition="no_answer"),
    rec("j", "2026-05-04 14:00", ring=2, talk=600, number="201", skipped="internal call"),
    rec("k", "2026-05-04 14:10", ring=9, talk=40, desk="desk-9", user="", skipped="desk without a CRM user"),
    rec("l", "2026-05-04 15:00", "outbound", ring=0, disposition="cancelled", origin="crm"),  # never rang
    rec("m", "2026-05-04 16:00", ring=3, phase="ringing"),  # still ringing
    rec("n", "2026-05-05 00:10", ring=5, talk=50),  # the 5th in Berlin (22:10 UTC on the 4th)
    rec("o", "2026-05-05 09:00", "outbound", ring=2, talk=5, number="+4930333"),  # calls "e" back, next day
]


def test_a_hand_counted_day() -> None:
    report = compute(DAY, date(2026, 5, 4), date(2026, 5, 4), "Europe/Berlin")
    assert [(r.manager, r.period) for r in report.rows] == [
        ("7", "2026-05-04..2026-05-04"),
        ("8", "2026-05-04..2026-05-04"),
    ]
    f = report.rows[0].figures
    # in: a b c e g (5), out: d f i (3); answered a b d; missed c e g; busy f; no answer i
    assert (f.calls_in, f.calls_out, f.answered, f.missed, f.busy, f.no_answer) == (5, 3, 3, 3, 1, 1)
    assert f.answer_rate == 0.4
    assert f.missed_not_called_back == 1  # g: desk-2 called it, not desk-1; e was called back on the 5th
    assert (f.ring_avg_s, f.ring_p90_s) == (7.0, 10.0)  # answered inbound a (4 s), b (10 s)
    assert (f.talk_total_s, f.talk_avg_s) == (210.0, 70.0)  # 60 + 120 + 30 over 3 answered
    assert f.by_hour[0] == 1 and f.by_hour[9] == 2 and f.by_hour[10] == 2 and sum(f.by_hour) == 8

    # Without the next day's records, "e" has not been called back yet.
    early = compute(DAY[:-1], date(2026, 5, 4), date(2026, 5, 4), "Europe/Berlin")
    assert early.rows[0].figures.missed_not_called_back == 2

    apart = compute(DAY, date(2026, 5, 4), date(2026, 5, 4), "Europe/Berlin", accountants="apart")
    desk9 = [r for r in apart.rows if not r.crm]
    assert [(r.manager, r.figures.calls_in, r.figures.answered) for r in desk9] == [("desk 9", 1, 1)]

    # In UTC, "a" falls on the 3rd and "n" on the 4th.
    utc = compute(DAY, date(2026, 5, 4), date(2026, 5, 4), "UTC").rows[0].figures
    assert utc.calls_in == 5 and utc.by_hour[22] == 1 and utc.by_hour[0] == 0


def test_no_calls_no_rows_and_no_division_by_zero() -> None:
    only_out = [rec("x", "2026-05-04 10:00", "outbound", ring=5, disposition="busy")]
    f = compute(only_out, date(2026, 5, 4), date(2026, 5, 4), "Europe/Berlin").rows[0].figures
    assert f.answer_rate is None and f.ring_avg_s is None and f.ring_p90_s is None and f.talk_avg_s is None
    assert compute([], date(2026, 5, 1), date(2026, 5, 31), "Europe/Berlin").rows == ()


# --- the generated month, counted from the plan ----------------------------------------------------


def expected_by(plan: list[PlannedCall], key) -> dict[tuple[str, str], dict[str, object]]:  # type: ignore[no-untyped-def]
    """The figures per (period, CRM user), counted from the plan with plain loops."""
    groups: dict[tuple[str, str], list[PlannedCall]] = defaultdict(list)
    for p in plan:
        if p.desk >= 0:
            groups[(key(p.local_start.date()), MANAGERS[p.desk][2])].append(p)
    out = {}
    for group_key, calls in groups.items():
        inbound = [p for p in calls if p.direction == "inbound"]
        answered_in = [p for p in inbound if p.outcome == "answered"]
        rings = sorted(p.ring_s for p in answered_in)
        talks = [p.talk_s for p in calls if p.outcome == "answered"]
        missed = [p for p in inbound if p.outcome == "missed"]
        not_called_back = 0
        for m in missed:
            ended = m.local_start + timedelta(seconds=m.ring_s)
            if not any(
                q.desk == m.desk
                and q.direction == "outbound"
                and q.number == m.number
                and q.local_start >= ended
                for q in plan
            ):
                not_called_back += 1
        hours = [0] * 24
        for p in calls:
            hours[p.local_start.hour] += 1
        out[group_key] = {
            "calls_in": len(inbound),
            "calls_out": len(calls) - len(inbound),
            "answered": len(talks),
            "missed": len(missed),
            "busy": sum(p.outcome == "busy" for p in calls),
            "no_answer": sum(p.outcome == "no_answer" for p in calls),
            "answer_rate": round(len(answered_in) / len(inbound), 4) if inbound else None,
            "missed_not_called_back": not_called_back,
            "ring_avg_s": round(sum(rings) / len(rings), 3) if rings else None,
            "ring_p90_s": float(rings[len(rings) - len(rings) // 10 - 1]) if rings else None,
            "talk_total_s": float(sum(talks)),
            "talk_avg_s": round(sum(talks) / len(talks), 3) if talks else None,
            "by_hour": hours,
        }
    return out


def week_of(day: date) -> str:
    monday = day - timedelta(days=day.weekday())
    thursday = monday + timedelta(days=3)  # ISO: a week belongs to the year of its Thursday
    return f"{thursday.year}-W{(thursday - date(thursday.year, 1, 1)).days // 7 + 1:02d}"


@pytest.mark.parametrize(
    ("grouping", "key"),
    [
        ("total", lambda d: "2026-05-01..2026-05-31"),
        ("day", lambda d: d.isoformat()),
        ("week", week_of),
        ("month", lambda d: d.strftime("%Y-%m")),
    ],
)
def test_a_generated_month_for_five_managers(grouping, key) -> None:  # type: ignore[no-untyped-def]
    plan, records = month_of_calls()
    assert len({p.desk for p in plan}) == 6 and len(plan) > 400
    report = to_json(compute(records, date(2026, 5, 1), date(2026, 5, 31), "Europe/Berlin", grouping))
    got = {
        (r["period"], r["manager"]): {
            k: r[k] for k in r if k not in ("period", "manager", "name", "extension", "crm")
        }
        for r in report["rows"]
    }
    assert got == expected_by(plan, key)
    assert sum(1 for r in report["rows"] if r["period"].startswith("2026-W")) in (0, 25)  # 5 weeks x 5


def test_the_month_as_csv_has_one_line_per_manager_with_the_same_figures() -> None:
    _, records = month_of_calls()
    report = compute(records, date(2026, 5, 1), date(2026, 5, 31), "Europe/Berlin", accountants="apart")
    lines = to_csv(report).splitlines()
    assert lines[0].startswith("period,manager,name,extension,crm,calls_in,calls_out,answered,missed")
    assert len(lines) == 1 + 6 and lines[-1].split(",")[1] == "desk 209"
    first = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    row = to_json(report)["rows"][0]
    assert first["calls_in"] == str(row["calls_in"]) and first["h09"] == str(row["by_hour"][9])


def test_a_call_the_phone_forwarded_is_an_inbound_call_but_not_a_missed_one() -> None:
    calls = [
        rec("fw", "2026-05-04 10:00", ring=20, disposition="forwarded"),
        rec("ms", "2026-05-04 10:05", ring=20, number="+4930999"),
    ]
    f = compute(calls, date(2026, 5, 4), date(2026, 5, 4), "Europe/Berlin").rows[0].figures
    assert (f.calls_in, f.answered, f.missed, f.missed_not_called_back) == (2, 0, 1, 1)
