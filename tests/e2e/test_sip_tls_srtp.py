"""SIP over TLS to kamailio's tls module (a CA made here, a server certificate for 127.0.0.1) and SDES
SRTP (RFC 4568) with baresip as the far end. A loopback sniffer decodes the phone's RTP as G.711: plain
it carries the tones, under SRTP it is noise, while the tones still arrive at both ends."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lab import sniff
from lab.servers.audio import read_wav, write_sine_wav
from lab.servers.certs import TestCa
from lab.servers.kamailio import MODULES_DIR, Kamailio
from lab.servers.phone import events_of
from tests.e2e.test_plain_extension import RATE, listen, tone_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("kamailio") is None and not Path("/usr/sbin/kamailio").exists(),
                       reason="kamailio is not installed"),
    pytest.mark.skipif(not (Path(MODULES_DIR) / "tls.so").exists(),
                       reason="kamailio's tls module is not installed (apt: kamailio-tls-modules)"),
    pytest.mark.skipif(not sniff.available(), reason="the loopback sniffer needs root or CAP_NET_RAW"),
]  # fmt: skip

PHONE_TONE, FAR_TONE = 1000.0, 440.0


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def kamailio(tmp_path: Path, test_ca: TestCa) -> Iterator[Kamailio]:
    """This module's registrar also speaks TLS (the phone and baresip fixtures use it)."""
    server = Kamailio(tmp_path / "kamailio", tls=test_ca.issue_server("kamailio", host="127.0.0.1"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mic_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "mic1k.wav", freq=PHONE_TONE, seconds=120.0, rate=RATE, amplitude=0.3)


def tls_phone(phone_factory, kamailio, ca_file: Path, mic_wav: Path, srtp: str = "off"):  # type: ignore[no-untyped-def]
    return phone_factory(
        registrar=f"{kamailio.host}:{kamailio.tls_port}",
        mic_file=mic_wav,
        sip_extra=f'transport = "tls"\ntls_ca_file = "{ca_file}"\nsrtp = "{srtp}"\ncodecs = ["PCMU/8000"]',
    )


class RtpTap:
    """The phone's RTP on loopback (its media ports), split by direction, with first-packet times."""

    def __init__(self, media_port: int) -> None:
        self.ports = range(media_port, media_port + 100)
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.first_sent_at: float | None = None
        self.first_received_at: float | None = None

    def __call__(self, packet: sniff.Packet) -> None:
        if packet.proto != 17 or (rtp := sniff.rtp_payload(packet.payload)) is None or rtp[0] != 0:
            return
        if packet.sport in self.ports:
            self.sent.append(rtp[1])
            self.first_sent_at = self.first_sent_at or packet.t
        elif packet.dport in self.ports:
            self.received.append(rtp[1])
            self.first_received_at = self.first_received_at or packet.t


def media_port(phone) -> int:  # type: ignore[no-untyped-def]
    return int(re.search(r"^media_port = (\d+)$", phone.config_text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def tone_share(payloads: list[bytes], freq: float) -> float:
    """The share of the energy within 20 Hz of ``freq`` when the payloads are decoded as G.711 u-law."""
    samples = np.array(sniff.ulaw_decode(b"".join(payloads[-150:])), dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    return float(spectrum[np.abs(freqs - freq) < 20].sum() / spectrum.sum())


def far_heard(far, freq: float) -> bool:  # type: ignore[no-untyped-def]
    samples, rate = read_wav(far.recorded_wav_path("dec"))
    spectrum = np.abs(np.fft.rfft(samples[-rate:].astype(np.float64)))
    return abs(float(np.fft.rfftfreq(rate, 1 / rate)[int(spectrum.argmax())]) - freq) < 15


def talk(phone, far, tap: RtpTap, outgoing: bool, kamailio) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One call (the phone dials, or answers the far end's call); the first-audio times."""
    start = time.monotonic()
    if outgoing:
        phone.client.hook(True)
        phone.wait_mode("dialing")
        start = time.monotonic()
        phone.client.keys("1002#")
    else:
        far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
        phone.wait_mode("ringing_in", timeout=15)
        phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=15)
    phone.wait_mode("in_call")
    assert tone_in(listen(phone, 2.0), FAR_TONE), "the far end's tone did not reach the earpiece"
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    phone.wait_mode("idle")
    assert far_heard(far, PHONE_TONE), "the phone's tone did not reach the far end"
    assert tap.first_sent_at and tap.first_received_at
    return {
        "first_rtp_out_ms": (tap.first_sent_at - start) * 1000,
        "first_rtp_in_ms": (tap.first_received_at - start) * 1000,
    }


def test_tls_registration_and_mandatory_srtp_calls_both_ways(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, kamailio, test_ca, mic_wav
):
    far = baresip_factory("1002", auto_answer=True, media_encryption="srtp-mand", codecs="PCMU")
    with sniff.Sniffer() as sniffer:
        handshake = TlsHandshakeTap(kamailio.tls_port)
        sniffer.add(handshake)
        phone = tls_phone(phone_factory, kamailio, test_ca.cert_path, mic_wav, srtp="mandatory")
        phone.wait_for(lambda s: s["registered"], timeout=15, what="registration over TLS")
        assert re.search(r"TLS to 127\.0\.0\.1:\d+ established: \S+, certificate CN 127\.0\.0\.1 verified",
                         phone.log_text()), phone.log_text()[-2000:]  # fmt: skip
        figures = {"tls_handshake_ms": handshake.duration_ms()}
        for outgoing in (True, False):
            tap = RtpTap(media_port(phone))
            sniffer.add(tap)
            if not outgoing:
                far.stop()  # the far end now calls the phone: one that answers by hand is not needed
                far = baresip_factory("1002", auto_answer=False, media_encryption="srtp-mand", codecs="PCMU")
            figures |= {
                f"{'out' if outgoing else 'in'}_{k}": v
                for k, v in talk(phone, far, tap, outgoing, kamailio).items()
            }
            sniffer.remove(tap)
            assert len(tap.sent) > 50 and len(tap.received) > 50
            assert tone_share(tap.sent, PHONE_TONE) < 0.05, "the phone's RTP carried its tone in the clear"
            assert tone_share(tap.received, FAR_TONE) < 0.05, (
                "the far end's RTP carried its tone in the clear"
            )
    assert "RTP/SAVP" in far.log_text() or "srtp" in far.log_text().lower()
    print(f"\nTLS + SRTP figures (ms): { {k: round(v, 1) for k, v in figures.items()} }")


def test_optional_srtp_encrypts_with_a_far_end_that_offers_it(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, kamailio, test_ca, mic_wav
):
    far = baresip_factory("1002", auto_answer=False, media_encryption="srtp", codecs="PCMU")
    phone = tls_phone(phone_factory, kamailio, test_ca.cert_path, mic_wav, srtp="optional")
    phone.wait_for(lambda s: s["registered"], timeout=15, what="registration over TLS")
    tap = RtpTap(media_port(phone))
    with sniff.Sniffer() as sniffer:
        sniffer.add(tap)
        talk(phone, far, tap, outgoing=False, kamailio=kamailio)
    assert tone_share(tap.sent, PHONE_TONE) < 0.05 and tone_share(tap.received, FAR_TONE) < 0.05


def test_without_srtp_the_sniffer_hears_both_tones(
    phone_factory, baresip_factory, kamailio, test_ca, mic_wav
):  # type: ignore[no-untyped-def]
    """The control: the same tap and decoder find the tones in plain RTP, so the checks above can fail."""
    far = baresip_factory("1002", auto_answer=True, codecs="PCMU")
    phone = tls_phone(phone_factory, kamailio, test_ca.cert_path, mic_wav, srtp="off")
    phone.wait_for(lambda s: s["registered"], timeout=15, what="registration over TLS")
    tap = RtpTap(media_port(phone))
    with sniff.Sniffer() as sniffer:
        sniffer.add(tap)
        talk(phone, far, tap, outgoing=True, kamailio=kamailio)
    assert tone_share(tap.sent, PHONE_TONE) > 0.5
    assert tone_share(tap.received, FAR_TONE) > 0.5


def test_a_plain_offer_to_a_phone_with_mandatory_srtp_is_refused_with_488(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, kamailio, test_ca, mic_wav
):
    far = baresip_factory("1002", auto_answer=False, codecs="PCMU")
    phone = tls_phone(phone_factory, kamailio, test_ca.cert_path, mic_wav, srtp="mandatory")
    phone.wait_for(lambda s: s["registered"], timeout=15, what="registration over TLS")
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    closed = far.wait_for_event("CALL_CLOSED", timeout=15)
    assert "488" in str(closed.get("param", "")), closed
    state = phone.state()
    assert state["phone_state"] == "idle" and state["ringer"] is None
    assert not events_of(state, "call.incoming")


def test_a_registrar_certificate_from_another_ca_is_refused_with_the_reason(  # type: ignore[no-untyped-def]
    phone_factory, kamailio, tmp_path, mic_wav
):
    wrong = TestCa(tmp_path / "wrong-ca", name="some other CA")
    phone = tls_phone(phone_factory, kamailio, wrong.cert_path, mic_wav)
    phone.wait_for(lambda s: "TLS to" in phone.log_text(), timeout=15, what="the TLS attempt")
    state = phone.wait_for(lambda s: events_of(s, "registration.changed"), what="registration result")
    assert state["registered"] is False
    log = phone.log_text()
    reason = (r"TLS to 127\.0\.0\.1:\d+ refused: the server's certificate \(CN 127\.0\.0\.1\) failed "
              r"verification: The certificate is untrusted \(tls_ca_file .*wrong-ca/ca\.pem\)")  # fmt: skip
    assert re.search(reason, log), log[-2000:]
    assert "REGISTER" not in kamailio.log_text(), "a REGISTER crossed the refused connection"


class TlsHandshakeTap:
    """ClientHello from the phone to the first application-data record it sends, on ``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hello_at: float | None = None
        self.data_at: float | None = None

    def __call__(self, packet: sniff.Packet) -> None:
        if packet.proto != 6 or packet.dport != self.port or not packet.payload:
            return
        if packet.payload[0] == 0x16 and self.hello_at is None:
            self.hello_at = packet.t
        elif packet.payload[0] == 0x17 and self.data_at is None and self.hello_at is not None:
            self.data_at = packet.t

    def duration_ms(self) -> float:
        assert self.hello_at is not None and self.data_at is not None, "no TLS handshake seen"
        return (self.data_at - self.hello_at) * 1000
