"""What the CRM end-to-end tests share: a CRM view of one phone's topics and a phone wired to a broker.

``CrmView`` wraps ``tests.crm_bridge.crm.CrmClient`` (a real paho MQTT 5 client) subscribed to
``deskphone/<device>/#``: it decodes events (deduplicated by ``event_id``, as the contract asks),
replies and the retained status, publishes commands, and waits with timeouts.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lab.servers.certs import CertFiles
from lab.servers.mosquitto import Mosquitto
from lab.servers.ports import LOOPBACK, free_port
from tests.crm_bridge.crm import CrmClient, Received

DEVICE = "desk-test"
BASE = f"deskphone/{DEVICE}"
CALL_TYPES = ("call.incoming", "call.outgoing", "call.ringing", "call.answered", "call.ended")

_ids = itertools.count(1)


def new_id(prefix: str = "c2c") -> str:
    return f"{prefix}-{next(_ids)}-{int(time.time() * 1000) % 100000}"


class CrmView:
    """The CRM side of one phone: every message under ``deskphone/<device>/``."""

    def __init__(
        self,
        broker: Mosquitto,
        *,
        client_id: str | None = None,
        persistent: bool = False,
        tls: CertFiles | None = None,
    ) -> None:
        self.client = CrmClient(broker.host, broker.port, client_id=client_id, persistent=persistent, tls=tls)
        self.client.subscribe(f"{BASE}/#")

    def close(self) -> None:
        self.client.close()

    # --- reading ----------------------------------------------------------------------------------

    def messages(self) -> list[Received]:
        return self.client.wait_for(lambda msgs: True, timeout=0.1)

    def events(self) -> list[dict[str, Any]]:
        """Events in arrival order, duplicates (same ``event_id``) removed."""
        return events_in(self.messages())

    def wait_events(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0, what: str = ""
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                got = [(e["seq"], e["type"]) for e in events]
                raise AssertionError(f"CRM: no {what or 'expected events'} within {timeout}s; got {got}")
            time.sleep(0.02)

    def wait_event(
        self,
        event_type: str,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        def found(events: list[dict[str, Any]]) -> bool:
            return any(e["type"] == event_type and where(e) for e in events)

        events = self.wait_events(found, timeout, event_type)
        return next(e for e in events if e["type"] == event_type and where(e))

    def replies(self, request_id: str) -> list[dict[str, Any]]:
        return [m.json for m in self.client.on(f"{BASE}/reply/{request_id}")]

    def wait_reply(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.client.wait_on(f"{BASE}/reply/{request_id}", timeout=timeout)[0].json

    def statuses(self) -> list[Received]:
        return self.client.on(f"{BASE}/status")

    def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        def ok(msgs: list[Received]) -> bool:
            return any(m.topic == f"{BASE}/status" and predicate(m.json) for m in msgs)

        self.client.wait_for(ok, timeout)
        return [m.json for m in self.statuses() if predicate(m.json)][-1]

    # --- writing ----------------------------------------------------------------------------------

    def command(self, kind: str, payload: Any, **publish: Any) -> None:
        self.client.publish(f"{BASE}/cmd/{kind}", payload, **publish)

    def dial(
        self,
        number: str,
        *,
        request_id: str | None = None,
        ttl_s: float | None = 60,
        crm: dict[str, Any] | None = None,
        expiry_s: int | None = None,
        **fields: Any,
    ) -> str:
        """Publish ``cmd/dial``; ``expiry_s`` is the MQTT 5 message expiry, ``fields`` go in the JSON."""
        request_id = request_id or new_id()
        payload: dict[str, Any] = {"v": 1, "id": request_id, "number": number, **fields}
        if ttl_s is not None:
            payload["ttl_s"] = ttl_s
        if crm is not None:
            payload["crm"] = crm
        self.command("dial", payload, expiry_s=expiry_s)
        return request_id


def events_in(messages: list[Received]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for m in messages:
        if m.topic == f"{BASE}/events":
            event = json.loads(m.payload)
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                out.append(event)
    return out


def call_events(events: list[dict[str, Any]], call_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in events if e["type"] in CALL_TYPES and (call_id is None or e["call"]["call_id"] == call_id)
    ]


def assert_seq_contiguous(events: list[dict[str, Any]]) -> None:
    """In ``seq`` order as they arrived, and no gaps."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seq not contiguous/in order: {seqs}"


def start_phone(phone_factory: Any, broker: Mosquitto, **kwargs: Any) -> Any:
    """A phone daemon with MQTT on ``broker``, registered and connected to the broker."""
    phone = phone_factory(mqtt_port=broker.port, device_id=DEVICE, **kwargs)
    wait_ready(phone, registered=kwargs.get("password") is None)
    return phone


def wait_ready(phone: Any, registered: bool = True, timeout: float = 15.0) -> dict[str, Any]:
    def ready(s: dict[str, Any]) -> bool:
        return bool(s["mqtt"] and s["mqtt"]["connected"]) and (s["registered"] or not registered)

    return phone.wait_for(ready, timeout, "registration and broker connection")


def kamailio_invites(kamailio: Any) -> list[str]:
    """Request URIs of the new calls kamailio saw (its request route logs every request).

    A new call is addressed to an address of record (``sip:1002@127.0.0.1``, or whatever URI a bad
    dial might have produced); in-dialog re-INVITEs (pjsua and baresip send them after answering) go to
    a contact URI, which always carries a port, and are left out.
    """
    found = []
    for match in re.finditer(r"REQ INVITE (\S+) from ", kamailio.log_text()):
        uri = match.group(1)
        if not re.search(r"@[^;:@]+:\d+", uri):
            found.append(uri)
    return found


# --- sipp: a real SIP peer that sends INVITEs with the headers we choose ------------------------

SIPP_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="pbx click-to-call">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "{caller_name}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{caller}@[local_ip]:[local_port]>
Max-Forwards: 70
{headers}
Content-Type: application/sdp
Content-Length: [len]

v=0
o=pbx 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true" timeout="{answer_timeout_ms}"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "{caller_name}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:{caller}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "{caller_name}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:{caller}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


class Sipp:
    """One sipp UAC call from ``local_ip`` straight to the phone's SIP port (no registrar)."""

    def __init__(
        self,
        workdir: Path,
        *,
        local_ip: str,
        target: str,
        service: str,
        headers: str,
        caller: str = "5000",
        caller_name: str = "PBX",
        talk_ms: int = 1000,
        answer_timeout_ms: int = 20000,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.scenario = workdir / "uac.xml"
        self.scenario.write_text(
            SIPP_UAC.format(
                headers=headers,
                caller=caller,
                caller_name=caller_name,
                talk_ms=talk_ms,
                answer_timeout_ms=answer_timeout_ms,
            )
        )
        self.log = workdir / "sipp.log"
        self.cmd = [
            "sipp",
            target,
            "-sf", str(self.scenario),
            "-i", local_ip,
            "-mi", local_ip,
            "-p", "0",
            "-s", service,
            "-m", "1",
            "-l", "1",
            "-nostdin",
            "-timeout", "40s",
            "-timeout_error",
            "-trace_err",
            "-error_file", str(workdir / "errors.log"),
            "-trace_msg",
            "-message_file", str(workdir / "messages.log"),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def messages(self) -> str:
        try:
            return (self.workdir / "messages.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def sipp_factory(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    started: list[Sipp] = []
    counter = itertools.count(1)

    def make(**kwargs: Any) -> Sipp:
        sipp = Sipp(tmp_path / f"sipp-{next(counter)}", **kwargs)
        started.append(sipp)
        sipp.start()
        return sipp

    try:
        yield make
    finally:
        for sipp in started:
            sipp.stop()


SIPP_REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="register a contact elsewhere">
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]reg[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{user}@{contact}>
Expires: 300
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]reg[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{user}@{contact}>
[authentication username={user} password={password}]
Expires: 300
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""

SIPP_UAS_REFUSE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="ring, then refuse">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="{ring_ms}"/>
  <send>
    <![CDATA[
SIP/2.0 {code} {reason}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


def sipp_run(cmd: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "sipp.log").open("ab") as log:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )


class RefusingCallee:
    """Extension ``user`` at the registrar, played by sipp: rings for ``ring_ms``, then answers
    ``code reason`` (480 Temporarily Unavailable: what a PBX or phone sends after its no-answer time)."""

    def __init__(
        self, workdir: Path, kamailio: Any, user: str, password: str, code: int, reason: str, ring_ms: int
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        kamailio.add_user(user, password)
        port = free_port()
        uas = workdir / "uas.xml"
        uas.write_text(SIPP_UAS_REFUSE.format(code=code, reason=reason, ring_ms=ring_ms))
        self.uas = sipp_run(
            ["sipp", "-sf", str(uas), "-i", LOOPBACK, "-p", str(port), "-m", "1", "-nostdin",
             "-timeout", "60s", "-trace_msg", "-message_file", str(workdir / "uas-messages.log")],
            workdir,
        )  # fmt: skip
        reg = workdir / "register.xml"
        reg.write_text(SIPP_REGISTER.format(user=user, password=password, contact=f"{LOOPBACK}:{port}"))
        target = f"{kamailio.host}:{kamailio.port}"
        # kamailio re-reads its user table when the file changes: retry until the new user is known.
        deadline = time.monotonic() + 10
        while True:
            registering = sipp_run(
                ["sipp", target, "-sf", str(reg), "-i", LOOPBACK, "-p", "0", "-m", "1", "-nostdin",
                 "-timeout", "5s", "-timeout_error"],
                workdir,
            )  # fmt: skip
            if registering.wait(10) == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sipp could not register {user}")
            time.sleep(0.3)

    def wait(self, timeout: float = 20.0) -> int:
        return self.uas.wait(timeout)

    def stop(self) -> None:
        if self.uas.poll() is None:
            self.uas.kill()
            self.uas.wait(5)
