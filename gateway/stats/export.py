"""A ``Report`` as CSV or JSON: the one encoding shared by ``deskphone-gateway report`` and ``/stats``."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from .figures import Report

COLUMNS = (
    "period",
    "manager",
    "name",
    "extension",
    "crm",
    "calls_in",
    "calls_out",
    "answered",
    "missed",
    "busy",
    "no_answer",
    "answer_rate",
    "missed_not_called_back",
    "ring_avg_s",
    "ring_p90_s",
    "talk_total_s",
    "talk_avg_s",
)
HOUR_COLUMNS = tuple(f"h{hour:02d}" for hour in range(24))


def to_json(report: Report) -> dict[str, Any]:
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "time_zone": report.time_zone,
        "group": report.grouping,
        "columns": list(COLUMNS[5:]),
        "rows": [
            {
                "period": row.period,
                "manager": row.manager,
                "name": row.name,
                "extension": row.extension,
                "crm": row.crm,
                **{k: list(v) if k == "by_hour" else v for k, v in asdict(row.figures).items()},
            }
            for row in report.rows
        ],
    }


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS + HOUR_COLUMNS)
    for row in to_json(report)["rows"]:
        writer.writerow([_cell(row[c]) for c in COLUMNS] + row["by_hour"])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
