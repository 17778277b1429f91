"""A SIP scanner's flood (``lab.flood.FloodMix``: every malformed kind from a stranger, INVITE+CANCEL
bursts from the PBX's own address and from sipp) never takes the phone down: at 50, 200, 500 and
1,000 messages per second for 30 s each it stays up and registered, gives back its memory and file
descriptors, and then connects a normal call with audio both ways; a call placed during a flood
connects too."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from lab.flood import FloodMix
from lab.servers.audio import dominant_frequency, read_wav, write_sine_wav
from lab.servers.phone import events_of
from tests.e2e.test_plain_extension import RATE, listen, tone_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (apt: sip-tester)"),
]

RATES = (50, 200, 500, 1000)
FLOOD_S = 30.0


def fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]


def normal_call(phone, far, kamailio) -> None:  # type: ignore[no-untyped-def]
    """The far end calls, the phone answers: its 440 Hz in the earpiece, the phone's 1 kHz at the far end."""
    answered = len(events_of(phone.state(), "call.answered"))
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    phone.wait_mode("ringing_in", timeout=30)  # a flood may delay it (kamailio retransmits), never lose it
    phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=20)
    phone.wait_for(lambda s: len(events_of(s, "call.answered")) > answered, what="call.answered")
    assert tone_in(listen(phone, 2.0), 440.0), "the far end's 440 Hz did not reach the earpiece"
    far.hangup()
    far.wait_for_event("CALL_CLOSED", timeout=10)
    phone.wait_mode("ended")
    phone.client.hook(False)
    phone.wait_mode("idle")
    samples, rate = read_wav(far.recorded_wav_path("dec"))  # type: ignore[arg-type]
    assert abs(dominant_frequency(samples[-rate:], rate) - 1000.0) < 15, "the phone's 1 kHz did not arrive"


def hang_up_ghost_calls(phone) -> int:  # type: ignore[no-untyped-def]
    """Pick up and put down a ringing phone until it is idle, as at a real desk; the number of calls.

    A flood at 1,000/s overflows the phone's socket buffer: an INVITE from the PBX's host (admitted,
    up to 4/s) whose CANCEL the kernel dropped rings until someone answers, as any call would.
    """
    ghosts = 0
    deadline = time.monotonic() + 60
    while (state := phone.state())["phone_state"] != "idle":
        assert time.monotonic() < deadline, f"phone stuck in {state['phone_state']}"
        if state["phone_state"] == "ringing_in":
            ghosts += 1
            phone.client.hook(True)
            phone.wait_for(lambda s: s["phone_state"] != "ringing_in", what="answer")
            phone.client.hook(False)
        time.sleep(0.2)
    return ghosts


@pytest.fixture
def mic_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "mic1k.wav", freq=1000.0, seconds=600.0, rate=RATE, amplitude=0.3)


def test_floods_at_four_rates_leave_the_phone_registered_as_small_as_before_and_able_to_call(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, kamailio, mic_wav, tmp_path
):
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory(mic_file=mic_wav)
    phone.wait_for(lambda s: s["registered"], what="registration")
    assert phone.proc is not None
    pid = phone.proc.pid
    normal_call(phone, far, kamailio)  # the baseline includes what a call leaves allocated
    fds_before, rss_before = fds(pid), rss_kib(pid)

    for rate in RATES:
        mix = FloodMix(phone.sip_port, rate, FLOOD_S, tmp_path / f"flood-{rate}")
        mix.start()
        try:
            scanner, spoofed = mix.wait()
        finally:
            mix.stop()
        assert phone.alive(), f"the phone died at {rate}/s:\n{phone.log_text()[-3000:]}"
        assert phone.state()["registered"] is True
        assert scanner["sent"] >= rate * 0.5 * FLOOD_S * 0.9, "the flood fell short: the test proved little"
        assert scanner["replies"].get("403", 0) > 0, "the stranger's INVITEs were not refused"
        assert spoofed["replies"].get("486", 0) > 0, "INVITEs past the admission rate were not refused"

    ghosts = hang_up_ghost_calls(phone)
    # Every refused INVITE was answered statelessly; the few admitted ones end within Timer H (32 s),
    # after which the phone trims its heap once.
    phone.wait_for(lambda s: "heap trimmed" in phone.log_text(), timeout=90, what="the heap trim")
    fds_after, rss_after = fds(pid), rss_kib(pid)
    print(f"\nflood: fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB, {ghosts} rang on")
    assert fds_after == fds_before
    # Seen: +4.5% to +5.6%. pjsip's pools grow to their working size over the first ~50 admitted calls
    # and then stay (bench.memory: ~2.5 MiB, live, flat after); a leak grows with the flood's 10,000s of
    # INVITEs instead.
    assert rss_after <= rss_before * 1.08, f"RSS {rss_before} -> {rss_after} KiB"

    normal_call(phone, far, kamailio)
    callers = {e["call"]["remote"]["number"] for e in events_of(phone.state(), "call.incoming")}
    assert not callers & {"scan-127-0-0-2", "200"}, "a stranger's INVITE rang the phone"
    assert "Assertion" not in phone.log_text()


def test_a_call_placed_during_a_scanners_flood_connects(phone_factory, baresip_factory, kamailio, tmp_path):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    mix = FloodMix(phone.sip_port, 1000, 20.0, tmp_path / "flood", spoof_pbx=False)
    mix.start()
    try:
        far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
        phone.wait_for(
            lambda s: any(e["call"]["remote"]["number"] == "1002" for e in events_of(s, "call.incoming")),
            timeout=30,
            what="the call from 1002 ringing",
        )
        phone.wait_mode("ringing_in", timeout=10)
        phone.client.hook(True)
        far.wait_for_event("CALL_ESTABLISHED", timeout=20)
        assert mix.running(), "the flood ended before the call connected: the test proved nothing"
        far.hangup()
        far.wait_for_event("CALL_CLOSED", timeout=10)
        phone.client.hook(False)
    finally:
        mix.wait()
        mix.stop()
    state = phone.wait_mode("idle", timeout=15)
    assert phone.alive() and state["registered"] is True
    ours = [e for e in events_of(state, "call.ended") if e["call"]["remote"]["number"] == "1002"]
    assert [e["call"]["disposition"] for e in ours] == ["answered"]
