"""The sidecar's broker account, from ``flash.py broker --sidecars``, on a real mosquitto: it reads only
the ``status`` and ``events`` of the phones it watches, and may publish nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.test_broker import Client

from .broker_setup import office_broker
from .conftest import REPO

pytestmark = pytest.mark.e2e


@pytest.fixture
def office(tmp_path: Path) -> Iterator[tuple[int, dict[str, str], str]]:
    broker, passwords, acl = office_broker(
        tmp_path, "device_id,extension\na,101\nb,102\nc,103\n", "sidecar_id,phones\nlight-1,a c\n"
    )
    try:
        yield broker.port, passwords, acl
    finally:
        broker.stop()


def test_acl_text(office: tuple[int, dict[str, str], str]) -> None:
    _, passwords, acl = office
    assert set(passwords) == {"a", "b", "c", "crm", "light-1"}
    block = acl.split("user light-1\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block == [
        "topic read deskphone/a/status",
        "topic read deskphone/a/events",
        "topic read deskphone/c/status",
        "topic read deskphone/c/events",
    ]


def test_sidecar_reads_only_its_phones_status_and_events(office: tuple[int, dict[str, str], str]) -> None:
    port, passwords, _ = office
    light = Client(port, "light-1", passwords["light-1"])
    a, b, crm = (Client(port, n, passwords[n]) for n in ("a", "b", "crm"))
    try:
        for c in (light, a, b, crm):
            assert c.connected.wait(5) and not c.reason.is_failure  # type: ignore[attr-defined]
        light.subscribe("deskphone/a/status", "deskphone/a/events", "deskphone/b/status", "deskphone/a/cmd/#")
        crm.subscribe("deskphone/+/status")
        # Denied first, allowed last: messages of one publisher arrive in order.
        crm.publish("deskphone/a/cmd/dial", b'{"v":1,"id":"r1"}')  # not for the light
        b.publish("deskphone/b/status", b'{"v":1,"online":true}')  # b is not watched
        light.publish("deskphone/a/status", b'{"v":1,"online":false}')  # the light may not publish
        a.publish("deskphone/a/events", b'{"v":1,"type":"hook.offhook"}')
        a.publish("deskphone/a/status", b'{"v":1,"online":true}')
        assert light.wait_for("deskphone/a/status") == ["deskphone/a/events", "deskphone/a/status"]
        seen = crm.wait_for("deskphone/a/status")
        assert seen == ["deskphone/b/status", "deskphone/a/status"]  # not the light's forged one
        assert [p for t, p in crm.received if t == "deskphone/a/status"] == [b'{"v":1,"online":true}']
    finally:
        for c in (light, a, b, crm):
            c.close()


def test_flash_broker_refuses_bad_sidecars(tmp_path: Path) -> None:
    from tests.tools.conftest import SITE_ARGS, flash

    (tmp_path / "inv.csv").write_text("device_id,extension\na,101\n")
    (tmp_path / "sc.csv").write_text("sidecar_id,phones\na,a\nlight-2,zz\nBad!,a\nlight-3,\n")
    proc = flash(
        "broker", "--inventory", str(tmp_path / "inv.csv"), "--sidecars", str(tmp_path / "sc.csv"),
        "--secrets", str(tmp_path / "s.csv"), "--out-dir", str(tmp_path / "out"), *SITE_ARGS,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "sidecar_id" in proc.stderr and "at least one device id" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert (REPO / "tools" / "provisioning" / "sidecar.py").exists()
