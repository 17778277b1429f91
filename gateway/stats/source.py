"""The report for a config's store and inventory: what ``report`` prints and ``/stats`` shows."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from ..config import StatsConfig
from ..desks import Desks
from ..store import GatewayStore
from .figures import Grouping, Report, compute, day_bounds


def report_from_store(
    store: GatewayStore, desks: Desks, stats: StatsConfig, start: date, end: date, grouping: Grouping
) -> Report:
    """Every record from ``start`` on is read: calls after ``end`` still tell whether a missed call
    was called back."""
    since, _ = day_bounds(start, end, ZoneInfo(stats.time_zone))
    names = {d.crm_user: d.name for d in desks.desks if d.crm_user}
    return compute(
        store.calls(since=since),
        start,
        end,
        stats.time_zone,
        grouping,
        stats.accountants,  # type: ignore[arg-type]
        names,
    )
