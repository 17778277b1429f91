"""The goals table of ``make bench``: each goal judged from the run's rows, or "not measured"."""

from __future__ import annotations

from typing import Any

from bench import goals


def stat(median: float, p99: float | None = None, n: int = 100) -> dict[str, Any]:
    return {"median": median, "p99": median if p99 is None else p99, "spread": 0, "n": n}


def verdicts(rows: list[tuple[str, Any, Any]]) -> dict[str, tuple[str, str]]:
    lines = goals.render(rows).splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {c[0]: (c[2], c[3]) for c in cells}


def test_a_run_that_measured_nothing_meets_nothing_and_says_so() -> None:
    table = verdicts([])
    assert len(table) == len(goals.GOALS)
    assert all(v == ("not measured", "—") for v in table.values())


def test_latencies_are_judged_against_baresips_median_and_p99_of_the_same_run() -> None:
    table = verdicts(
        [
            ("screen pop (ms)", stat(2.0, 4.0), stat(2.5, 3.9)),
            ("call end (ms)", stat(2.0, 3.0), stat(2.0, 3.0)),
        ]
    )
    assert table["screen pop"][1] == "no" and "p99 4 vs 3.9 ms (x1.03)" in table["screen pop"][0]
    assert table["call end"][1] == "yes"


def test_limits_counters_and_the_soaks_last_row() -> None:
    table = verdicts(
        [
            ("CPU idle registered (s/min)", stat(0.3, n=1), stat(0.02, n=1)),
            ("start to registered (ms)", stat(151.0), stat(20.0)),
            ("audio call 600 s: audio.underruns", stat(0, n=1), None),
            ("audio call 600 s: bridge.underruns", stat(3, n=1), None),
            ("soak RSS (MiB) at call 1", stat(40.0, n=1), stat(12.0, n=1)),
            ("soak RSS (MiB) at call 500", stat(46.0, n=1), stat(13.0, n=1)),
        ]
    )
    assert table["CPU idle, registered"][1] == "yes"
    assert table["start -> registered"][1] == "no"
    assert table["audio call without underruns"] == ("audio.underruns 0, bridge.underruns 3", "no")
    assert table["RSS after the soak"] == ("46 MiB at call 500", "no")


def test_rss_after_the_soak_is_the_settled_figure_where_the_run_has_one() -> None:
    rows = [
        ("soak RSS (MiB) at call 500", stat(50.0, n=1), stat(13.0, n=1)),
        ("soak RSS (MiB) 45 s after the last call", stat(44.5, n=1), stat(13.0, n=1)),
    ]
    assert verdicts(rows)["RSS after the soak"] == ("44.5 MiB, idle after the soak", "yes")


def test_the_capped_phone_is_judged_against_the_uncapped_one() -> None:
    rows = [
        ("screen pop (ms)", stat(5.0, 10.0), None),
        ("call end (ms)", stat(4.0, 8.0), None),
        ("CPU-capped 25%: screen pop (ms)", stat(9.0, 19.0), None),
        ("CPU-capped 25%: call end (ms)", stat(9.0, 8.0), None),
    ]
    measured, met = verdicts(rows)["CPU-capped 25%: event latencies"]
    assert met == "no" and "call end median x2.25" in measured
