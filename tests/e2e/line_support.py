"""Helpers for the line tests: what the phone sends on the wire (a loopback sniffer) and hears."""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from lab.servers.baresip import Baresip
from lab.servers.phone import PhoneProcess
from lab.sniff import Packet, rtp_payload, ulaw_decode

LOUD_DBFS = -40.0  # the microphone file plays a 1 kHz sine at about -13 dBFS; silence is -inf
PCMU_ONLY = 'codecs = ["PCMU/8000"]'  # the sniffer decodes G.711 mu-law
MIC_HZ = 1000.0
# What pjsua2 logs when it reuses the transferred call's Call object for the new call (issue 13's crash)
REUSE_WARNINGS = ("reuses Call instance", "has not created new Call instance")


def dial_from_handset(phone: PhoneProcess, far: Baresip, number: str = "1002") -> str:
    """Lift, dial ``number`` and ``#``, wait until the far end has answered: the new call's id."""
    phone.client.hook(True)
    phone.wait_mode("dialing")
    phone.client.keys(f"{number}#")
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    return str(phone.wait_mode("in_call")["call"]["call_id"])


def assert_no_call_reuse(phone: PhoneProcess) -> None:
    """The phone is alive and its log has no pjsua2 warning about a reused Call object."""
    assert phone.alive()
    log = phone.log_text()
    assert not any(warning in log for warning in REUSE_WARNINGS), "pjsua2 reused a Call object"


class PhoneRtpWatch:
    """Records, from the loopback sniffer, the level of each PCMU RTP packet the phone sends."""

    def __init__(self, phone: PhoneProcess) -> None:
        first = phone.media_port
        self._ports = range(first, first + 100)
        self._lock = threading.Lock()
        # (monotonic time, dBFS of the microphone: -inf for a packet of silence or of another sound,
        # such as the hold tone)
        self.packets: list[tuple[float, float]] = []
        self.sound: list[tuple[float, list[int]]] = []  # (monotonic time, decoded samples)

    def __call__(self, packet: Packet) -> None:
        if packet.proto != 17 or packet.sport not in self._ports:
            return
        rtp = rtp_payload(packet.payload)
        if rtp is None or rtp[0] != 0 or not rtp[1]:
            return
        samples = ulaw_decode(rtp[1])
        power = sum(s * s for s in samples) / len(samples)
        level = 10 * math.log10(power / 32768**2) if power else -math.inf
        if abs(_dominant_hz(samples) - MIC_HZ) > 100:
            level = -math.inf
        with self._lock:
            self.packets.append((packet.t, level))
            self.sound.append((packet.t, samples))

    def samples_since(self, since: float) -> list[int]:
        """What the phone sent since ``since``, decoded (8 kHz), packets in arrival order."""
        with self._lock:
            return [x for t, samples in self.sound if t >= since for x in samples]

    def loud_since(self, since: float) -> int:
        """How many packets with microphone sound the phone sent since ``since``."""
        with self._lock:
            return sum(1 for t, level in self.packets if t >= since and level > LOUD_DBFS)

    def wait_loud(self, timeout: float = 10.0) -> None:
        """Wait until the phone sends microphone sound (the call is connected both ways)."""
        start = time.monotonic()
        while self.loud_since(start) < 10:
            assert time.monotonic() - start < timeout, "the phone sent no microphone audio"
            time.sleep(0.05)


def _dominant_hz(samples: list[int], rate: int = 8000) -> float:
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])
