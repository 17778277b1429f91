"""``deskphone-gateway report``: the month's figures from a real store, as CSV and JSON, the same
numbers as ``gateway.stats`` (whose own figures ``test_stats`` checks against the plan)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from gateway.sqlite_store import SqliteStore
from gateway.stats import compute, to_json
from lab.stats_month import fill_store, inventory_csv, month_of_calls

CONFIG = """[mqtt]
host = "127.0.0.1"
[inventory]
file = "office.csv"
[storage]
dir = "state"
[stats]
time_zone = "Europe/Berlin"
accountants = "{accountants}"
"""


def gateway_dir(tmp_path: Path, accountants: str = "omit") -> Path:
    (tmp_path / "office.csv").write_text(inventory_csv())
    (tmp_path / "gateway.toml").write_text(CONFIG.format(accountants=accountants))
    store = SqliteStore(tmp_path / "state")
    fill_store(store, month_of_calls()[1])
    store.close()
    return tmp_path / "gateway.toml"


def report(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "report", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_report_prints_the_months_figures_as_json_and_csv(tmp_path: Path) -> None:
    config = gateway_dir(tmp_path, accountants="apart")
    out = report(config, "--from", "2026-05-01", "--to", "2026-05-31", "--format", "json")
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    expected = to_json(
        compute(
            month_of_calls()[1], date(2026, 5, 1), date(2026, 5, 31), "Europe/Berlin", accountants="apart"
        )
    )
    names = {r["manager"]: r["name"] for r in printed["rows"]}
    assert names["11"] == "Anna Berg" and names["desk 209"] == ""
    for row in expected["rows"]:
        row["name"] = names[row["manager"]]
    assert printed == expected and len(printed["rows"]) == 6

    out = report(config, "--from", "2026-05-01", "--to", "2026-05-31", "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["manager"] for r in rows] == ["11", "12", "13", "14", "15", "desk 209"]
    for line, row in zip(rows, printed["rows"], strict=True):
        assert int(line["calls_in"]) == row["calls_in"] and float(line["talk_total_s"]) == row["talk_total_s"]
        assert [int(line[f"h{h:02d}"]) for h in range(24)] == row["by_hour"]


def test_report_by_week_and_bad_days(tmp_path: Path) -> None:
    config = gateway_dir(tmp_path)
    out = report(config, "--from", "2026-05-04", "--to", "2026-05-10", "--format", "json", "--group", "day")
    assert out.returncode == 0, out.stderr
    periods = sorted({r["period"] for r in json.loads(out.stdout)["rows"]})
    assert periods == [f"2026-05-{d:02d}" for d in range(4, 9)]  # Monday to Friday: no calls at weekends

    bad = report(config, "--from", "May 1st", "--format", "json")
    assert bad.returncode == 2 and "'May 1st' is not a day (YYYY-MM-DD)" in bad.stderr and bad.stdout == ""
    backwards = report(config, "--from", "2026-05-10", "--to", "2026-05-01")
    assert backwards.returncode == 2 and "is after --to" in backwards.stderr


def test_report_refuses_an_unknown_time_zone(tmp_path: Path) -> None:
    config = gateway_dir(tmp_path)
    config.write_text(config.read_text().replace("Europe/Berlin", "Europe/Atlantis"))
    out = report(config, "--from", "2026-05-01", "--to", "2026-05-31")
    assert out.returncode == 1 and "stats.time_zone: unknown time zone 'Europe/Atlantis'" in out.stderr
