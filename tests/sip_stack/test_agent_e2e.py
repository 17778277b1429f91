"""The user agent against real servers: kamailio (registrar + proxy) and baresip (far end)."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time

import numpy as np
import pytest

from bench.measure import jitter_buffer_stats
from lab.servers.audio import dominant_frequency, loudest_stretch, read_wav, rms_dbfs, sine_frames
from lab.servers.ports import free_port
from lab.waiting import wait_until
from sip_stack import admission
from sip_stack.admission import MAX_CALLS_LIMIT
from sip_stack.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    IncomingCall,
    OutgoingCallStarted,
    RegistrationChanged,
)
from tests.sip_stack.conftest import phone_settings

pytestmark = pytest.mark.e2e
pytest.importorskip("pjsua2")

RATE = 16000
FRAME = 320  # samples in 20 ms


class FakeAlsa(threading.Thread):
    """Plays the HAL audio thread: a 1 kHz sine into the mic, the earpiece into a buffer, in real time."""

    def __init__(self, ua, freq: float = 1000.0) -> None:
        super().__init__(name="audio", daemon=True)
        self.ua = ua
        self.signal = np.tile(sine_frames(freq, RATE, amplitude=0.3), 2)
        self.received: list[bytes] = []
        self.stop_flag = threading.Event()
        self.late_frames = 0

    def run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self.stop_flag.is_set():
            offset = (n * FRAME) % RATE
            self.ua.audio.write_mic_frame(self.signal[offset : offset + FRAME].tobytes())
            self.received.append(self.ua.audio.read_earpiece_frame())
            n += 1
            delay = start + n * 0.02 - time.monotonic()
            if delay < -0.02:
                self.late_frames += 1
            time.sleep(max(0.0, delay))

    def finish(self) -> np.ndarray:
        self.stop_flag.set()
        self.join(2)
        return np.frombuffer(b"".join(self.received), dtype=np.int16)


def test_registration_succeeds(kamailio, ua_factory) -> None:
    ua, rec = ua_factory(phone_settings(kamailio))
    event = rec.wait_for(RegistrationChanged, lambda e: e.registered)
    assert event.code == 200
    assert ua.status()["registered"] is True


def test_wrong_password_is_reported_and_never_logged(kamailio, ua_factory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    kamailio.add_user("phone", "right-password")
    settings = phone_settings(kamailio, password="Wr0ngPassw0rd!", log_level=5)
    kamailio.add_user("phone", "right-password")  # phone_settings set the wrong one; put it back
    ua, rec = ua_factory(settings)
    event = rec.wait_for(RegistrationChanged)
    assert event.registered is False
    assert event.code in (401, 403)
    assert ua.status()["registered"] is False
    ua.stop()
    assert "registration of <sip:phone@127.0.0.1> failed" in caplog.text
    assert "Wr0ngPassw0rd!" not in caplog.text
    assert "right-password" not in caplog.text


def test_tcp_registration_and_call(kamailio, baresip_factory, ua_factory) -> None:
    bob = baresip_factory("bob", auto_answer=True)
    ua, rec = ua_factory(phone_settings(kamailio, transport="tcp"))
    assert rec.wait_for(RegistrationChanged, lambda e: e.registered).code == 200
    assert "REQ REGISTER" in kamailio.log_text() and "(tcp)" in kamailio.log_text()
    ua.make_call("t1", "bob")  # phone -> kamailio over TCP, kamailio -> baresip over UDP
    rec.wait_for(CallAnswered)
    bob.wait_for_event("CALL_ESTABLISHED")
    ua.hangup("t1")
    assert rec.wait_for(CallEnded).by_remote is False
    bob.wait_for_event("CALL_CLOSED")


def test_outgoing_call_audio_dtmf_and_local_hangup(kamailio, baresip_factory, ua_factory, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sip_stack.agent")
    bob = baresip_factory("bob", auto_answer=True)
    ua, rec = ua_factory(phone_settings(kamailio))
    rec.wait_for(RegistrationChanged, lambda e: e.registered)
    alsa = FakeAlsa(ua)
    alsa.start()

    ua.make_call("c1", "bob")
    ua.route_audio("c1", microphone=True)
    started = rec.wait_for(OutgoingCallStarted)
    assert started.call_id == "c1" and started.sip_call_id
    rec.wait_for(CallAnswered, lambda e: e.call_id == "c1")
    bob.wait_for_event("CALL_ESTABLISHED")
    assert rec.of(CallRinging) == [] or rec.of(CallRinging)[0].code in (180, 183)

    time.sleep(1.5)
    ua.send_dtmf("c1", "12#")
    time.sleep(1.5)
    ua.hangup("c1")
    ended = rec.wait_for(CallEnded)
    assert ended.call_id == "c1" and ended.by_remote is False
    bob.wait_for_event("CALL_CLOSED")
    earpiece = alsa.finish()
    # The call's jitter-buffer statistics, taken before the hangup took the stream away (frames went
    # through it; a stream already gone reads as zeros), in the shape the bench reads.
    jitter = [r.getMessage() for r in caplog.records if r.getMessage().startswith("call c1: jitter buffer: ")]
    assert len(jitter) == 1
    stats = jitter_buffer_stats(jitter[0])
    assert stats is not None and stats["delay_ms"] > 0 and stats["max_delay_ms"] >= stats["min_delay_ms"], (
        jitter[0]
    )

    assert bob.received_dtmf() == "12#"

    # What baresip decoded from us: our 1 kHz at about the level we sent (-13.5 dBFS).
    time.sleep(0.3)
    wav = bob.recorded_wav_path("dec")
    assert wav is not None
    samples, rate = read_wav(wav)
    stretch = loudest_stretch(samples, rate)
    assert dominant_frequency(stretch, rate) == pytest.approx(1000, abs=15)
    assert -20 < rms_dbfs(stretch) < -8

    # What we got from baresip's aufile: 440 Hz, received on the sip thread (media has no ioqueue of
    # its own): silent if nothing polled the RTP socket.
    stretch = loudest_stretch(earpiece, RATE)
    assert dominant_frequency(stretch, RATE) == pytest.approx(440, abs=10)
    assert rms_dbfs(stretch) > -25

    counters = ua.status()["audio"]
    assert counters["mic_frames"] > 100 and counters["earpiece_frames"] > 100
    if not os.environ.get("DESKPHONE_EMULATED"):
        # Under QEMU (make test-aarch64) the media clock falls behind a loaded host: the tones above
        # still prove the path, the underrun count is a figure for the bench there.
        assert counters["underruns"] < 10


def test_incoming_call_answer_and_remote_hangup(kamailio, baresip_factory, ua_factory) -> None:
    bob = baresip_factory("bob", auto_answer=False)
    ua, rec = ua_factory(phone_settings(kamailio))
    rec.wait_for(RegistrationChanged, lambda e: e.registered)

    bob.dial(f"sip:phone@{kamailio.host}:{kamailio.port}")
    incoming = rec.wait_for(IncomingCall)
    assert incoming.remote_number == "bob"
    assert incoming.remote_uri.startswith("sip:bob@")
    assert incoming.source_host == "127.0.0.1"
    assert incoming.sip_call_id
    assert ua.status()["calls"] == {incoming.call_id: "incoming"}
    bob.wait_for_event("CALL_RINGING")

    ua.answer(incoming.call_id)
    rec.wait_for(CallAnswered, lambda e: e.call_id == incoming.call_id)
    bob.wait_for_event("CALL_ESTABLISHED")
    time.sleep(0.5)
    bob.hangup()
    ended = rec.wait_for(CallEnded)
    assert ended.call_id == incoming.call_id and ended.by_remote is True
    deadline = time.monotonic() + 2
    while ua.status()["calls"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ua.status()["calls"] == {}


def test_incoming_call_rejected_with_486(kamailio, baresip_factory, ua_factory) -> None:
    bob = baresip_factory("bob", auto_answer=False)
    ua, rec = ua_factory(phone_settings(kamailio))
    rec.wait_for(RegistrationChanged, lambda e: e.registered)
    bob.dial(f"sip:phone@{kamailio.host}:{kamailio.port}")
    incoming = rec.wait_for(IncomingCall)
    ua.hangup(incoming.call_id, 486)
    ended = rec.wait_for(CallEnded)
    assert ended.code == 486 and ended.by_remote is False
    closed = bob.wait_for_event("CALL_CLOSED")
    assert "486" in closed.get("param", "")


def test_incoming_invite_headers_and_source(ua_factory) -> None:
    """A click-to-call INVITE straight from a 'PBX' socket: headers and source address are reported."""
    port = free_port()
    settings = phone_settings_direct(port)
    ua, rec = ua_factory(settings)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pbx:
        pbx.bind(("127.0.0.1", 0))
        pbx.settimeout(5)
        pbx.sendto(raw_invite(port, pbx.getsockname()[1]).encode(), ("127.0.0.1", port))
        incoming = rec.wait_for(IncomingCall)
        assert incoming.source_host == "127.0.0.1"
        assert incoming.remote_number == "100"
        assert incoming.remote_name == "Front Desk"
        assert incoming.headers == {
            "Call-Info": "<sip:127.0.0.1>;answer-after=0",
            "Alert-Info": "<http://127.0.0.1/ring>;info=alert-autoanswer",
            "Answer-Mode": "Auto",
        }
        ua.hangup(incoming.call_id, 486)
        codes = []
        while 486 not in codes:
            reply = pbx.recv(4096).decode()
            codes.append(int(reply.split(" ", 2)[1]))
        assert codes[-1] == 486 and (100 in codes or 180 in codes)


def phone_settings_direct(port: int):
    from sip_stack import SipSettings

    return SipSettings(
        registrar=f"127.0.0.1:{free_port()}", user="phone", local_port=port, bind_address="127.0.0.1"
    )


def raw_invite(
    phone_port: int, pbx_port: int, media: str = "0\r\na=rtpmap:0 PCMU/8000", call: int = 1
) -> str:
    sdp = (
        "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {free_port()} RTP/AVP {media}\r\n"
    )
    return (
        f"INVITE sip:phone@127.0.0.1:{phone_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{pbx_port};branch=z9hG4bK-test-{call};rport\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "Front Desk" <sip:100@127.0.0.1:{pbx_port}>;tag=pbx{call}\r\n'
        f"To: <sip:phone@127.0.0.1:{phone_port}>\r\n"
        f"Call-ID: c2c-test-{call}@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:100@127.0.0.1:{pbx_port}>\r\n"
        "Call-Info: <sip:127.0.0.1>;answer-after=0\r\n"
        "Alert-Info: <http://127.0.0.1/ring>;info=alert-autoanswer\r\n"
        "Answer-Mode: Auto\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n"
        "\r\n" + sdp
    )


def test_wideband_is_answered_whatever_the_order_of_the_offer(ua_factory) -> None:
    """An offer of opus, PCMU, PCMA, G722 (in that order) is answered with G722 alone (+ DTMF)."""
    port = free_port()
    ua, rec = ua_factory(phone_settings_direct(port))
    offer = (
        "96 0 8 9 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pbx:
        pbx.bind(("127.0.0.1", 0))
        pbx.settimeout(5)
        pbx.sendto(raw_invite(port, pbx.getsockname()[1], offer).encode(), ("127.0.0.1", port))
        incoming = rec.wait_for(IncomingCall)
        ua.answer(incoming.call_id)
        reply = ""
        while not reply.startswith("SIP/2.0 200"):
            reply = pbx.recv(8192).decode()
        (m_line,) = [line for line in reply.splitlines() if line.startswith("m=audio")]
        assert m_line.split()[3:] == ["9", "101"], reply
        ua.hangup(incoming.call_id)


def test_heap_is_trimmed_once_the_last_calls_transactions_are_over(
    kamailio, baresip_factory, ua_factory, caplog, monkeypatch
) -> None:
    """Freed pjsip pools go back to the system once the quiet time after the last call has passed
    (sip_stack/memory.py: glibc keeps them otherwise): once per quiet spell, never before a call ended."""
    from sip_stack import agent

    monkeypatch.setattr(agent, "QUIET_BEFORE_TRIM_S", 1.0)
    caplog.set_level(logging.DEBUG, logger="sip_stack.agent")
    trims = lambda: caplog.text.count("malloc_trim after the last call (pages given back: ")  # noqa: E731
    bob = baresip_factory("bob", auto_answer=False)
    ua, rec = ua_factory(phone_settings(kamailio))
    rec.wait_for(RegistrationChanged, lambda e: e.registered)
    time.sleep(2.0)  # registered and idle, no call yet: nothing to give back
    assert trims() == 0
    for n in (1, 2):
        bob.dial(f"sip:phone@{kamailio.host}:{kamailio.port}")
        rec.wait_for(IncomingCall, lambda e, n=n: len(rec.of(IncomingCall)) == n)
        incoming = rec.of(IncomingCall)[n - 1]
        ua.hangup(incoming.call_id, 486)
        bob.wait_for_event("CALL_CLOSED")
        wait_until(lambda n=n: trims() >= n, 20, f"heap trim after call {n}", 0.1)
        assert trims() == n, caplog.text[-2000:]
    time.sleep(2.0)
    assert trims() == 2, "one trim per quiet spell"


def test_max_calls_calls_ring_at_once_and_one_more_gets_486(ua_factory, monkeypatch) -> None:
    """max_calls = 12 (the limit): twelve INVITEs all ring, the thirteenth gets 486 Busy Here.

    pjsua caps its call slots at PJSUA_MAX_CALLS without a word (pjproject 2.15.1's default is 4, as
    in the PyPI wheel); tools/pjsua2/config_site.h sizes it for max_calls plus the refusal slots."""
    monkeypatch.setattr(admission, "ADMISSIONS_BURST", 2 * MAX_CALLS_LIMIT)  # all at once, not paced
    port = free_port()
    settings = dataclasses.replace(phone_settings_direct(port), max_calls=MAX_CALLS_LIMIT)
    ua, rec = ua_factory(settings)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pbx:
        pbx.bind(("127.0.0.1", 0))
        pbx.settimeout(10)
        for call in range(1, MAX_CALLS_LIMIT + 2):
            pbx.sendto(raw_invite(port, pbx.getsockname()[1], call=call).encode(), ("127.0.0.1", port))
        final: dict[str, int] = {}
        while len(final) < MAX_CALLS_LIMIT + 1:
            reply = pbx.recv(4096).decode()
            code = int(reply.split(" ", 2)[1])
            (call_id,) = [
                line.split(":", 1)[1].strip() for line in reply.splitlines() if line.startswith("Call-ID:")
            ]
            if code == 180 or code >= 300:
                final.setdefault(call_id, code)
        assert sorted(final.values()) == [180] * MAX_CALLS_LIMIT + [486], final
        incoming = [e for e in rec.events if isinstance(e, IncomingCall)]
        assert len(incoming) == MAX_CALLS_LIMIT
        for event in incoming:
            ua.hangup(event.call_id, 486)
        for event in incoming:
            rec.wait_for(CallEnded, lambda e, call_id=event.call_id: e.call_id == call_id)
