"""``deskphone crm ...``: act as a CRM from the command line.

``crm dial --device ID NUMBER`` publishes ``cmd/dial``, prints the reply, then the events of that call
as they arrive until ``call.ended`` (or the click-to-call expires or is cancelled, Ctrl-C, or the
timeout). ``crm watch --device ID`` prints every event and status change. ``crm forward --device ID
MODE NUMBER|off`` and ``crm dnd --device ID on|off`` set forwarding and do-not-disturb and print the
reply. Mounted by
``firmware.cli`` through ``add_crm_subcommands`` and ``run_crm``; also runnable as
``python -m crm_bridge.cli``.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.commands import FORWARD_MODES

from .codec import encode_forward

_FINAL_TYPES = {"call.ended", "click_to_call.expired", "click_to_call.cancelled"}


def add_crm_subcommands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``crm`` (with ``dial`` and ``watch``) to an argparse sub-parser collection."""
    crm = subparsers.add_parser("crm", help="act as a CRM over MQTT (click-to-call, watch events)")
    crm_sub = crm.add_subparsers(dest="crm_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", required=True, help="device id of the phone")
        p.add_argument("--host", default="localhost")
        p.add_argument("--port", type=int, default=1883)
        p.add_argument("--username")
        p.add_argument("--password-file", type=Path, help="file holding the broker password")
        p.add_argument("--prefix", default="deskphone", help="topic prefix (default: deskphone)")
        p.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")

    dial = crm_sub.add_parser("dial", help="click-to-call: make the phone call NUMBER")
    common(dial)
    dial.add_argument("number")
    dial.add_argument("--display", help="text for the phone's display line")
    dial.add_argument("--ttl", type=int, default=60, help="seconds the request stays valid (default 60)")
    dial.add_argument("--crm-json", help="opaque JSON object echoed in every event of the call")
    watch = crm_sub.add_parser("watch", help="print the phone's events and status as they arrive")
    common(watch)
    forward = crm_sub.add_parser("forward", help="forward the phone's calls of MODE to NUMBER (or off)")
    common(forward)
    forward.add_argument("mode", choices=FORWARD_MODES)
    forward.add_argument("number", help="where to forward, or 'off'")
    forward.add_argument("--no-answer-s", type=int, help="with no_answer: seconds of ringing first")
    dnd = crm_sub.add_parser("dnd", help="do-not-disturb on or off")
    common(dnd)
    dnd.add_argument("state", choices=("on", "off"))
    crm.set_defaults(func=run_crm)
    return crm


def run_crm(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        if args.crm_command == "dial":
            return _dial(args, out)
        if args.crm_command in ("forward", "dnd"):
            return _setting(args, out)
        return _watch(args, out)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as err:
        print(f"crm {args.crm_command}: {err}", file=sys.stderr)
        return 1


def _connect(args: argparse.Namespace, topics: list[str]) -> tuple[mqtt.Client, queue.Queue[Any]]:
    inbox: queue.Queue[Any] = queue.Queue()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"crm-cli-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    if args.username:
        password = args.password_file.read_text().strip() if args.password_file else None
        client.username_pw_set(args.username, password)
    subscribed: queue.Queue[bool] = queue.Queue()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            inbox.put(RuntimeError(f"broker refused the connection: {reason}"))
            return
        for topic in topics:
            c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        subscribed.put(True)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = lambda c, u, msg: inbox.put(msg)
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + 10
    for _ in topics:
        try:
            subscribed.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            client.loop_stop()
            raise OSError(f"no connection to the broker at {args.host}:{args.port}") from None
    return client, inbox


def _print(out: TextIO, label: str, obj: Any) -> None:
    print(f"{label} {json.dumps(obj, ensure_ascii=False)}", file=out, flush=True)


def _dial(args: argparse.Namespace, out: TextIO) -> int:
    base = f"{args.prefix.strip('/')}/{args.device}"
    request_id = uuid.uuid4().hex
    crm = json.loads(args.crm_json) if args.crm_json else {"cli_request": request_id}
    if not isinstance(crm, dict):
        raise ValueError("--crm-json must be a JSON object")
    payload: dict[str, Any] = {"v": 1, "id": request_id, "number": args.number, "ttl_s": args.ttl, "crm": crm}
    if args.display:
        payload["display"] = args.display
    client, inbox = _connect(args, [f"{base}/reply/{request_id}", f"{base}/events"])
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = args.ttl
        client.publish(f"{base}/cmd/dial", json.dumps(payload), qos=1, properties=props)
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                msg = inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                print("crm dial: timed out", file=sys.stderr)
                return 2
            if isinstance(msg, Exception):
                raise OSError(str(msg))
            body = _json(msg.payload)
            if body is None:
                continue
            if msg.topic.endswith(f"/reply/{request_id}"):
                _print(out, "reply", body)
                if not body.get("ok"):
                    return 1
            elif _belongs(body, request_id, crm):
                _print(out, body.get("type", "event"), body)
                if body.get("type") in _FINAL_TYPES:
                    return 0
    finally:
        client.disconnect()
        client.loop_stop()


def _setting(args: argparse.Namespace, out: TextIO) -> int:
    """``cmd/forward`` or ``cmd/dnd``; prints the reply (every setting, or the error)."""
    base = f"{args.prefix.strip('/')}/{args.device}"
    request_id = uuid.uuid4().hex
    if args.crm_command == "forward":
        number = None if args.number == "off" else args.number
        payload = encode_forward(request_id, args.mode, number, args.no_answer_s)
    else:
        payload = json.dumps({"v": 1, "id": request_id, "enabled": args.state == "on"}).encode()
    client, inbox = _connect(args, [f"{base}/reply/{request_id}"])
    try:
        client.publish(f"{base}/cmd/{args.crm_command}", payload, qos=1)
        try:
            msg = inbox.get(timeout=min(args.timeout, 30.0))
        except queue.Empty:
            print(f"crm {args.crm_command}: no reply from the phone", file=sys.stderr)
            return 2
        if isinstance(msg, Exception):
            raise OSError(str(msg))
        body = _json(msg.payload) or {}
        _print(out, "reply", body)
        return 0 if body.get("ok") else 1
    finally:
        client.disconnect()
        client.loop_stop()


def _json(payload: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _belongs(event: dict[str, Any], request_id: str, crm: dict[str, Any]) -> bool:
    call = event.get("call") or {}
    data = event.get("data") or {}
    return call.get("crm") == crm or data.get("request_id") == request_id or data.get("crm") == crm


def _watch(args: argparse.Namespace, out: TextIO) -> int:
    base = f"{args.prefix.strip('/')}/{args.device}"
    client, inbox = _connect(args, [f"{base}/events", f"{base}/status"])
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            try:
                msg = inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return 0
            if isinstance(msg, Exception):
                raise OSError(str(msg))
            body = _json(msg.payload)
            if body is None:
                continue
            label = "status" if msg.topic.endswith("/status") else body.get("type", "event")
            _print(out, label, body)
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deskphone")
    add_crm_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_crm(args)


if __name__ == "__main__":
    sys.exit(main())
