"""Pure parts of sip_stack: settings, SIP text parsing, tone plans, frame FIFO."""

from __future__ import annotations

import threading

import pytest

from sip_stack import SipSettings
from sip_stack.audio_bridge import MAX_FRAME_BACKLOG, AudioBridge
from sip_stack.frame_fifo import FrameFifo
from sip_stack.sipmsg import header_values, host_of, parse_name_addr, user_part
from sip_stack.tones import TONE_KINDS, TONE_PLANS, tone_for

INVITE = (
    "INVITE sip:phone@10.0.0.2 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
    'From: "Front Desk" <sip:100@pbx>;tag=1\r\n'
    "call-info: <sip:pbx>;answer-after=0\r\n"
    "Alert-Info: <http://x/ring>;\r\n"
    " info=alert-autoanswer\r\n"
    "Alert-Info: <urn:alert:service:normal>\r\n"
    "Answer-Mode: Auto\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
    "Call-Info: not-a-header-body-line\r\n"
)


def test_settings_defaults_and_derived_values() -> None:
    s = SipSettings(registrar="pbx.example:5070", user="201", password="s3cret")
    assert s.sip_domain == "pbx.example"
    assert s.auth_username == "201"
    assert s.codecs[0] == "G722/16000"
    assert s.frame_bytes == 640
    assert s.uri_params() == ""
    assert "s3cret" not in repr(s)
    assert SipSettings(registrar="h", user="u", transport="tcp").uri_params() == ";transport=tcp"


def test_settings_collect_every_error() -> None:
    with pytest.raises(ValueError) as err:
        SipSettings(registrar="", user="", transport="sctp", tone_plan="xx")
    text = str(err.value)
    for word in ("registrar", "user", "transport", "tone_plan"):
        assert word in text


def test_header_values_case_folding_repeats_and_body() -> None:
    headers = header_values(INVITE)
    assert headers["Call-Info"] == "<sip:pbx>;answer-after=0"
    assert headers["Alert-Info"] == "<http://x/ring>; info=alert-autoanswer, <urn:alert:service:normal>"
    assert headers["Answer-Mode"] == "Auto"
    assert header_values("INVITE sip:x SIP/2.0\nTo: <sip:x>\n\n") == {}
    assert header_values("") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"Front Desk" <sip:100@pbx>;tag=1', ("100", "Front Desk", "sip:100@pbx")),
        (
            "Bob <sip:bob@127.0.0.1:5060;transport=tcp>",
            ("bob", "Bob", "sip:bob@127.0.0.1:5060;transport=tcp"),
        ),
        ("<sip:200@pbx>", ("200", "", "sip:200@pbx")),
        ("sip:300@pbx;tag=9", ("300", "", "sip:300@pbx")),
        ('"A \\"q\\"" <tel:+4930123>', ("+4930123", 'A "q"', "tel:+4930123")),
    ],
)
def test_parse_name_addr(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_name_addr(text) == expected


def test_user_part_and_host_of() -> None:
    assert user_part("sip:pbx.example") == ""
    assert host_of("127.0.0.1:5060") == "127.0.0.1"
    assert host_of("[::1]:5060") == "::1"
    assert host_of("pbx") == "pbx"


def test_every_plan_has_every_tone() -> None:
    for plan, tones in TONE_PLANS.items():
        assert set(tones) == set(TONE_KINDS), plan
    assert tone_for("us", "dial")[0].freq1 == 350 and tone_for("us", "dial")[0].freq2 == 440
    assert tone_for("eu", "busy")[0].freq1 == 425
    assert tone_for("ru", "ringback")[0].on_ms == 800
    with pytest.raises(ValueError):
        tone_for("eu", "howler")


def frame(n: int) -> bytes:
    return bytes([n % 256]) * 4


def test_fifo_primes_then_passes_frames_in_order() -> None:
    fifo = FrameFifo(4, target=2, capacity=6, window=4)
    assert fifo.pop() == bytes(4)  # priming: silence, not an underrun
    fifo.push(frame(1))
    assert fifo.pop() == bytes(4)
    fifo.push(frame(2))
    assert fifo.pop() == frame(1)
    assert fifo.pop() == frame(2)
    assert fifo.underruns == 0


def test_fifo_counts_underrun_and_reprimes() -> None:
    fifo = FrameFifo(4, target=2, capacity=6, window=4)
    fifo.push(frame(1))
    fifo.push(frame(2))
    fifo.pop()
    fifo.pop()
    assert fifo.pop() == bytes(4)
    assert fifo.underruns == 1
    fifo.push(frame(3))
    assert fifo.pop() == bytes(4)  # priming again, not counted twice
    assert fifo.underruns == 1


def test_fifo_underruns_deepen_the_priming_up_to_max_target() -> None:
    fifo = FrameFifo(4, target=2, capacity=10, window=4, max_target=3)
    for round_ in range(3):  # the consumer outruns the producer by a whole fill, three times
        for n in range(fifo.target):
            fifo.push(frame(n))
        primed = [fifo.pop() for _ in range(fifo.target)]
        assert primed == [frame(n) for n in range(len(primed))]
        assert fifo.pop() == bytes(4)
        assert fifo.underruns == round_ + 1
    assert fifo.target == 3  # raised once, then held at max_target
    for n in range(2):
        fifo.push(frame(n))
    assert fifo.pop() == bytes(4)  # two frames no longer end the priming
    fifo.push(frame(2))
    assert fifo.pop() == frame(0)
    fifo.clear()
    assert fifo.target == 2
    fifo.retarget(1)
    assert (fifo.target, fifo.max_target) == (1, 3)
    with pytest.raises(ValueError):
        FrameFifo(4, target=3, max_target=2)


def test_fifo_drift_correction_drops_a_standing_excess() -> None:
    fifo = FrameFifo(4, target=2, capacity=20, window=4)
    for n in range(5):  # the producer got 3 frames ahead...
        fifo.push(frame(n))
    popped = []
    for n in range(5, 9):  # ...and stays ahead for a whole window
        popped.append(fifo.pop())
        fifo.push(frame(n))
    # the lowest fill in the window was 5, 3 above the target: frames 3, 4 and 5 go at once
    assert popped == [frame(0), frame(1), frame(2), frame(6)]
    assert fifo.drift_corrections == 1
    assert fifo.dropped_frames == 3
    assert len(fifo) == 2
    assert fifo.pop() == frame(7)


def test_fifo_plays_a_burst_that_drains_within_the_window() -> None:
    fifo = FrameFifo(4, target=2, capacity=20, window=8)
    for n in range(6):  # a late producer catches up with a burst
        fifo.push(frame(n))
    assert [fifo.pop() for _ in range(4)] == [frame(n) for n in range(4)]
    for n in range(6, 14):  # then runs at the consumer's pace again
        assert fifo.pop() == frame(n - 2)
        fifo.push(frame(n))
    assert fifo.drift_corrections == 0
    assert fifo.dropped_frames == 0


def test_fifo_overrun_drops_oldest_when_consumer_stopped() -> None:
    fifo = FrameFifo(4, target=1, capacity=3)
    for n in range(3):
        fifo.push(frame(n))
    assert fifo.pop() == frame(0)  # the consumer runs, but slower than the producer
    for n in range(3, 6):
        fifo.push(frame(n))
    assert len(fifo) == 3
    assert fifo.overruns == 2
    assert fifo.pop() == frame(3)
    before = fifo.overruns
    for n in range(20):  # nobody consumes at all (no call): stall drops, not overruns
        fifo.push(frame(n))
    assert fifo.overruns - before <= fifo.capacity
    assert fifo.stall_drops >= 20 - 2 * fifo.capacity


def test_fifo_pads_short_frames_and_is_thread_safe() -> None:
    fifo = FrameFifo(4, target=1, capacity=100)
    fifo.push(b"\x01")
    assert fifo.pop() == b"\x01\0\0\0"

    def produce() -> None:
        for n in range(1000):
            fifo.push(frame(n))

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(2000):
        fifo.pop()
    for t in threads:
        t.join()
    assert fifo.pushed == 4001
    assert len(fifo) <= fifo.capacity


def test_the_audio_bridge_clocks_a_lock_step_consumer_and_rests_it() -> None:
    bridge = AudioBridge(8000, 20)
    assert not bridge.wait_for_media(0)
    assert not bridge.wait_for_frame(0)
    assert bridge.earpiece.target == 1  # a lock-step consumer pops right after each push
    for _ in range(3):
        bridge.earpiece.push(b"\x01" * bridge.frame_bytes)
        bridge.media_tick(earpiece_frame=True)
    assert bridge.wait_for_media(0)
    assert [bridge.wait_for_frame(0) for _ in range(4)] == [True, True, True, False]
    assert bridge.read_earpiece_frame() == b"\x01" * bridge.frame_bytes


def test_a_lock_step_consumer_that_fell_far_behind_catches_up_a_little() -> None:
    bridge = AudioBridge(8000, 20)
    for _ in range(50):
        bridge.media_tick(earpiece_frame=True)
    taken = 0
    while bridge.wait_for_frame(0):
        taken += 1
    assert taken == MAX_FRAME_BACKLOG


def test_frames_copy_in_and_out_of_pjsua2_byte_vectors_exactly() -> None:
    import pjsua2 as pj

    from sip_stack import bytevector

    assert bytevector.FAST  # the layout check recognises this pjsua2 build (else: slow copies)
    data = bytes(range(256)) * 2 + bytes(128)
    assert bytevector.to_bytes(pj.ByteVector(data)) == data
    assert bytevector.to_bytes(pj.ByteVector()) == b""
    frames = bytevector.FrameVector(len(data))
    frame = pj.MediaFrame()
    frame.buf = frames.load(data)
    frames.load(bytes(len(data)))  # the reusable vector changes; the frame kept its own copy
    assert bytevector.to_bytes(frame.buf) == data
    assert list(frames.load(b"\x01\x02")) == [1, 2]  # another size: a vector of its own
