"""``/stats`` in Debian's headless chromium against a gateway filled with a generated month: the
table shows the report's figures and the charts have bars; the data routes want the token."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from PIL import Image

from gateway.sqlite_store import SqliteStore
from lab.servers.chromium import chromium_path, dump_dom, screenshot
from lab.servers.gateway import GatewayProcess, start_gateway
from lab.servers.mosquitto import Mosquitto
from lab.stats_month import fill_store, inventory_csv, month_of_calls

TOKEN = "stats-token-5d1"
STATS = f"""[stats]
time_zone = "Europe/Berlin"
accountants = "apart"
token = "{TOKEN}"
"""
MONTH = "from=2026-05-01&to=2026-05-31"
REPORT = (sys.executable, "-m", "gateway", "report")
# Dataset colours of stats.js: answered, missed, calls per hour, the first managers' talk time.
BAR_COLOURS = {
    "chart-answered": [(0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28)],
    "chart-hours": [(0x15, 0x65, 0xC0)],
    "chart-talk": [(0x6A, 0x1B, 0x9A), (0xEF, 0x6C, 0x00), (0x00, 0x83, 0x8F)],
}

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")


@pytest.fixture
def stats_gateway(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[GatewayProcess]:
    inventory = tmp_path / "office.csv"
    inventory.write_text(inventory_csv())
    workdir = tmp_path / "gateway"
    store = SqliteStore(workdir / "state")
    fill_store(store, month_of_calls()[1])
    store.close()
    gateway = start_gateway(workdir, mqtt_port=mosquitto.port, inventory=inventory, extra=STATS)
    try:
        yield gateway
    finally:
        gateway.stop()


class Tables(HTMLParser):
    """Cells of ``table#managers`` and ``table#desks`` (``data-key`` -> ``data-value``) and canvases."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[dict[str, str]]] = {"managers": [], "desks": []}
        self.rects: dict[str, tuple[int, ...]] = {}
        self.ready = False
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.ready = a.get("data-ready") == "1"
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "tr" and self._table and "data-manager" in a:
            self.rows[self._table].append({})
        elif tag == "td" and self._table and "data-key" in a:
            self.rows[self._table][-1][a["data-key"]] = a.get("data-value", "")
        elif tag == "canvas":
            self.rects[a["id"]] = tuple(int(v) for v in a["data-rect"].split(","))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None


def report_cli(gateway: GatewayProcess, fmt: str) -> subprocess.CompletedProcess[str]:
    """``deskphone-gateway report`` for May on the gateway's own config."""
    return subprocess.run(
        [
            *REPORT,
            "--config",
            str(gateway.config_path),
            "--format",
            fmt,
            "--from",
            "2026-05-01",
            "--to",
            "2026-05-31",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def same(shown: str, value: object) -> bool:
    """A cell's ``data-value`` (JavaScript's rendering of the JSON value) against the report's value."""
    if value is None:
        return shown == ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(shown) == value
    return shown == str(value)


def test_the_page_shows_the_reports_figures_and_draws_the_charts(
    stats_gateway: GatewayProcess, tmp_path: Path
) -> None:
    report = report_cli(stats_gateway, "json")
    expected = json.loads(report.stdout)["rows"]
    url = f"{stats_gateway.url}/stats?{MONTH}#token={TOKEN}"

    page = Tables()
    page.feed(dump_dom(tmp_path / "chromium", url))
    assert page.ready, "the page never finished loading its figures"
    shown = page.rows["managers"] + page.rows["desks"]
    assert (
        [row["manager"] for row in shown]
        == [r["manager"] for r in expected]
        == [
            *["11", "12", "13", "14", "15"],
            "desk 209",
        ]
    )
    for cells, row in zip(shown, expected, strict=True):
        assert len(cells) == 14 and all(same(cells[key], row[key]) for key in cells), (cells, row)

    picture = screenshot(tmp_path / "chromium", url, tmp_path / "stats.png")
    image = Image.open(picture).convert("RGB")
    for canvas, colours in BAR_COLOURS.items():
        left, top, width, height = page.rects[canvas]
        assert width > 300 and height > 200
        area = image.crop((left, top, left + width, top + height))
        bars = sum(
            count
            for count, pixel in area.getcolors(width * height)
            if any(sum(abs(p - c) for p, c in zip(pixel, colour, strict=True)) < 24 for colour in colours)
        )
        assert bars > 0.03 * width * height, f"{canvas}: only {bars} bar pixels"


def test_the_data_wants_the_token_and_checks_the_period(stats_gateway: GatewayProcess) -> None:
    base = f"{stats_gateway.url}/stats"
    assert httpx.get(f"{base}/data?{MONTH}").status_code == 401
    wrong = httpx.get(f"{base}/data?{MONTH}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = httpx.get(f"{base}/data?from=yesterday", headers=auth)
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]
    backwards = httpx.get(f"{base}/data?from=2026-05-31&to=2026-05-01", headers=auth)
    assert backwards.status_code == 400
    assert httpx.get(f"{base}/data?{MONTH}&group=year", headers=auth).status_code == 400

    csv_text = httpx.get(f"{base}/export.csv?{MONTH}", headers=auth)
    assert csv_text.status_code == 200 and "attachment" in csv_text.headers["content-disposition"]
    printed = report_cli(stats_gateway, "csv")
    assert csv_text.text == printed.stdout
    chart = httpx.get(f"{base}/chart.js")
    assert chart.status_code == 200 and "Chart.js v3" in chart.text[:200]
    assert httpx.get(f"{base}/static/../../config.py").status_code == 404


def test_without_a_token_the_page_is_off(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from gateway.config import parse_config
    from gateway.http_api import build_app
    from gateway.service import Gateway

    (tmp_path / "office.csv").write_text(inventory_csv())
    config = parse_config(
        {"mqtt": {"host": "127.0.0.1"}, "inventory": {"file": "office.csv"}, "storage": {"dir": "state"}},
        base_dir=tmp_path,
    )
    gateway = Gateway(config)
    try:
        client = TestClient(build_app(gateway))
        for route in ("/stats", "/stats/chart.js", "/stats/static/stats.js", f"/stats/data?{MONTH}"):
            answer = client.get(route, headers={"Authorization": "Bearer "})
            assert answer.status_code == 404 and "set [stats] token" in answer.text
    finally:
        gateway.store.close()
