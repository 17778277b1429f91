"""``deskphone crm dial`` against a real broker and a bridge whose phone answers like the real one."""

from __future__ import annotations

import argparse
import io
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from crm_bridge import CrmBridge, MqttSettings
from crm_bridge.cli import add_crm_subcommands, run_crm
from firmware.commands import Command, Dial, Reply, SetDoNotDisturb, SetForward
from firmware.events import CallRecord, Event, Remote, utc_now
from lab.servers.mosquitto import Mosquitto
from lab.waiting import wait_until

pytestmark = pytest.mark.e2e


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deskphone")
    add_crm_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_crm_dial_prints_reply_and_the_calls_events(mosquitto: Mosquitto, tmp_path: Path) -> None:
    holder: list[CrmBridge] = []

    def phone(command: Command) -> None:
        # What the daemon does, in short: reply, alert, call, end; posted from another thread.
        def act() -> None:
            assert isinstance(command, Dial)
            b = holder[0]
            b.send_reply(Reply.success(command.request_id, status="accepted"))
            b.publish_event(Event(type="click_to_call.alerting", data={"request_id": command.request_id}))
            start = utc_now()
            call = CallRecord("c1", "outbound", "crm", Remote(command.number), start, crm=command.crm)
            b.publish_event(Event(type="call.outgoing", call=call))
            b.publish_event(Event(type="hook.onhook"))  # not part of the call: not printed
            ended = CallRecord(
                "c1", "outbound", "crm", Remote(command.number), start, crm=command.crm,
                answered_at=start + timedelta(seconds=1), ended_at=start + timedelta(seconds=3),
                disposition="answered", sip_code=200, hangup_by="local",
            )  # fmt: skip
            b.publish_event(Event(type="call.ended", call=ended))

        threading.Thread(target=act).start()

    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, outbox_path=str(tmp_path / "o.db"))
    bridge = CrmBridge(settings, "dev7", phone)
    holder.append(bridge)
    bridge.start()
    wait_until(lambda: bridge.connected)  # subscribed: a dial published now reaches it
    out = io.StringIO()
    try:
        args = parse(
            ["crm", "dial", "--device", "dev7", "--host", mosquitto.host, "--port", str(mosquitto.port),
             "--timeout", "15", "1002"]
        )  # fmt: skip
        assert args.func is run_crm
        assert run_crm(args, out) == 0
    finally:
        bridge.stop()
    labels = [line.split(" ", 1)[0] for line in out.getvalue().splitlines()]
    assert labels == ["reply", "click_to_call.alerting", "call.outgoing", "call.ended"]
    assert '"talk_s": 2.0' in out.getvalue()


def test_crm_dial_exits_1_on_an_error_reply(mosquitto: Mosquitto, tmp_path: Path) -> None:
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, outbox_path=str(tmp_path / "o.db"))
    bridge = CrmBridge(settings, "dev8", lambda c: None)
    bridge.start()
    wait_until(lambda: bridge.connected)  # subscribed: a dial published now reaches it
    out = io.StringIO()
    try:
        args = parse(
            ["crm", "dial", "--device", "dev8", "--host", mosquitto.host, "--port", str(mosquitto.port),
             "--timeout", "15", "sip:1002@evil"]
        )  # fmt: skip
        assert run_crm(args, out) == 1
    finally:
        bridge.stop()
    assert '"invalid_number"' in out.getvalue()


def test_crm_forward_and_dnd_print_the_reply(mosquitto: Mosquitto, tmp_path: Path) -> None:
    received: list[Command] = []
    holder: list[CrmBridge] = []

    def phone(command: Command) -> None:
        received.append(command)
        holder[0].send_reply(Reply.success(getattr(command, "request_id", ""), status="set"))

    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, outbox_path=str(tmp_path / "o.db"))
    bridge = CrmBridge(settings, "dev9", phone)
    holder.append(bridge)
    bridge.start()
    wait_until(lambda: bridge.connected)
    broker = ["--device", "dev9", "--host", mosquitto.host, "--port", str(mosquitto.port), "--timeout", "15"]
    out = io.StringIO()
    try:
        assert (
            run_crm(parse(["crm", "forward", *broker, "no_answer", "1003", "--no-answer-s", "12"]), out) == 0
        )
        assert run_crm(parse(["crm", "forward", *broker, "always", "off"]), out) == 0
        assert run_crm(parse(["crm", "dnd", *broker, "on"]), out) == 0
        assert (
            run_crm(parse(["crm", "forward", *broker, "busy", "sip:x@evil"]), out) == 1
        )  # refused by the codec
    finally:
        bridge.stop()
    assert received == [
        SetForward(received[0].request_id, "no_answer", "1003", 12),  # type: ignore[union-attr]
        SetForward(received[1].request_id, "always", None),  # type: ignore[union-attr]
        SetDoNotDisturb(True, received[2].request_id),  # type: ignore[union-attr]
    ]
    assert out.getvalue().count('"status": "set"') == 3 and '"invalid_number"' in out.getvalue()
