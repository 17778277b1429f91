"""Issue 12's goals, judged against one bench run's rows: the table ``make bench`` prints last.

Each goal names the rows it reads by their labels in ``bench.run.tabulate``. A goal whose rows this
run did not measure (a quick run, no sniffer, no CPU cap) is reported as "not measured".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Stat = dict[str, Any] | None
Rows = dict[str, tuple[Stat, Stat]]


@dataclass(frozen=True)
class Goal:
    figure: str
    wanted: str
    judge: Callable[[Rows], tuple[str, bool] | None]  # (what was measured, met) or None: not measured


def _value(stat: Stat, q: str = "median") -> float | None:
    return None if not stat or not stat.get("n") else float(stat[q])


def _row(rows: Rows, label: str) -> tuple[Stat, Stat]:
    return rows.get(label, (None, None))


def _row_like(rows: Rows, prefix: str, suffix: str) -> tuple[Stat, Stat]:
    """The row whose label has ``prefix`` and ``suffix`` (a long call's rows name its length)."""
    for name, pair in rows.items():
        if name.startswith(prefix) and name.endswith(suffix):
            return pair
    return None, None


def at_most(label: str, limit: float, unit: str) -> Callable[[Rows], tuple[str, bool] | None]:
    def judge(rows: Rows) -> tuple[str, bool] | None:
        ours = _value(_row(rows, label)[0])
        return None if ours is None else (f"{ours:g} {unit}", ours <= limit)

    return judge


def like_baresip(label: str) -> Callable[[Rows], tuple[str, bool] | None]:
    """Ours <= baresip's, median and p99, from the same run."""

    def judge(rows: Rows) -> tuple[str, bool] | None:
        ours, bs = _row(rows, label)
        cells = [(q, _value(ours, q), _value(bs, q)) for q in ("median", "p99")]
        if any(o is None or b is None for _, o, b in cells):
            return None
        text = ", ".join(f"{q} {o:g} vs {b:g} ms (x{o / b:.2f})" for q, o, b in cells if o and b)
        return text, all(o <= b for _, o, b in cells if o is not None and b is not None)

    return judge


def zero(prefix: str, counters: tuple[str, ...]) -> Callable[[Rows], tuple[str, bool] | None]:
    def judge(rows: Rows) -> tuple[str, bool] | None:
        found = {c: _value(_row_like(rows, prefix, f": {c}")[0]) for c in counters}
        if any(v is None for v in found.values()):
            return None
        return ", ".join(f"{c} {v:g}" for c, v in found.items()), all(v == 0 for v in found.values())

    return judge


def after_soak(rows: Rows, limit: float) -> tuple[str, bool] | None:
    """The phone's RSS after the soak, idle again (full mode), else at the soak's last call."""
    settled = _value(_row_like(rows, "soak RSS (MiB) ", " after the last call")[0])
    if settled is not None:
        return f"{settled:g} MiB, idle after the soak", settled <= limit
    soak = [
        (int(name.rsplit(" ", 1)[1]), pair[0])
        for name, pair in rows.items()
        if name.startswith("soak RSS (MiB) at")
    ]
    if not soak:
        return None
    last, stat = max(soak, key=lambda item: item[0])
    ours = _value(stat)
    return None if ours is None else (f"{ours:g} MiB at call {last}", ours <= limit)


def capped_within_2x(rows: Rows) -> tuple[str, bool] | None:
    pairs = [
        ("screen pop (ms)", "CPU-capped 25%: screen pop (ms)"),
        ("call end (ms)", "CPU-capped 25%: call end (ms)"),
    ]
    ratios = []
    for plain, capped in pairs:
        for q in ("median", "p99"):
            base, cap = _value(_row(rows, plain)[0], q), _value(_row(rows, capped)[0], q)
            if base is None or cap is None:
                return None
            ratios.append((f"{plain.removesuffix(' (ms)')} {q}", cap / base if base else float("inf")))
    return ", ".join(f"{name} x{r:.2f}" for name, r in ratios), all(r <= 2.0 for _, r in ratios)


GOALS = (
    Goal(
        "CPU idle, registered", "<= 0.3 CPU-s/min", at_most("CPU idle registered (s/min)", 0.3, "CPU-s/min")
    ),
    Goal("screen pop", "<= 1.0x baresip, median and p99", like_baresip("screen pop (ms)")),
    Goal("call end", "<= 1.0x baresip, median and p99", like_baresip("call end (ms)")),
    Goal(
        "RTP received -> earpiece",
        "<= 30 ms median",
        at_most("audio: RTP received -> earpiece (ms)", 30, "ms"),
    ),
    Goal(
        "audio call without underruns",
        "0 underruns in the long call",
        zero("audio call ", ("audio.underruns", "bridge.underruns")),
    ),
    Goal("start -> registered", "<= 150 ms", at_most("start to registered (ms)", 150, "ms")),
    Goal("RSS idle", "<= 45 MiB", at_most("RSS idle (MiB)", 45, "MiB")),
    Goal("RSS in a call", "<= 45 MiB", at_most("RSS in call (MiB)", 45, "MiB")),
    Goal("RSS after the soak", "<= 45 MiB", lambda rows: after_soak(rows, 45)),
    Goal(
        "CPU-capped 25%: long call",
        "0 underruns, 0 overruns (ALSA and bridge)",
        zero("CPU-capped 25%: call ", ("audio.underruns", "audio.overruns", "bridge.underruns")),
    ),
    Goal("CPU-capped 25%: event latencies", "within 2x of uncapped", capped_within_2x),
)


def render(rows: list[tuple[str, Stat, Stat]]) -> str:
    by_label: Rows = {name: (a, b) for name, a, b in rows}
    lines = ["| goal (issue 12) | wanted | this run | met |", "|---|---|---|---|"]
    for goal in GOALS:
        verdict = goal.judge(by_label)
        measured, met = (
            ("not measured", "—") if verdict is None else (verdict[0], "yes" if verdict[1] else "no")
        )
        lines.append(f"| {goal.figure} | {goal.wanted} | {measured} | {met} |")
    return "\n".join(lines) + "\n"
