"""National call-progress tone plans as data: which frequencies, on and off for how long.

A tone is a sequence of segments played in a loop. A segment with ``off_ms == 0`` and a single
segment means a continuous tone.
"""

from __future__ import annotations

from dataclasses import dataclass

TONE_KINDS = ("dial", "ringback", "busy", "error", "call_waiting")


@dataclass(frozen=True)
class ToneSegment:
    freq1: int
    freq2: int  # 0 = single frequency
    on_ms: int
    off_ms: int


Tone = tuple[ToneSegment, ...]


def _single(freq1: int, freq2: int, on_ms: int, off_ms: int) -> Tone:
    return (ToneSegment(freq1, freq2, on_ms, off_ms),)


_CONTINUOUS_MS = 1000  # looped without a gap

# Special information tone (ITU-T E.180): 950, 1400, 1800 Hz, 330 ms each, then 1 s silence.
_SIT: Tone = (ToneSegment(950, 0, 330, 30), ToneSegment(1400, 0, 330, 30), ToneSegment(1800, 0, 330, 1000))

TONE_PLANS: dict[str, dict[str, Tone]] = {
    # ITU-T E.180 / CEPT: 425 Hz.
    "eu": {
        "dial": _single(425, 0, _CONTINUOUS_MS, 0),
        "ringback": _single(425, 0, 1000, 4000),
        "busy": _single(425, 0, 500, 500),
        "error": _SIT,
        "call_waiting": (ToneSegment(425, 0, 200, 200), ToneSegment(425, 0, 200, 3000)),
    },
    # North America (precise tone plan).
    "us": {
        "dial": _single(350, 440, _CONTINUOUS_MS, 0),
        "ringback": _single(440, 480, 2000, 4000),
        "busy": _single(480, 620, 500, 500),
        "error": _single(480, 620, 250, 250),  # reorder
        "call_waiting": (ToneSegment(440, 0, 300, 200), ToneSegment(440, 0, 300, 3000)),
    },
    # Russia (GOST): 425 Hz with its own cadences.
    "ru": {
        "dial": _single(425, 0, _CONTINUOUS_MS, 0),
        "ringback": _single(425, 0, 800, 3200),
        "busy": _single(425, 0, 400, 400),
        "error": _single(425, 0, 175, 175),  # congestion
        "call_waiting": (ToneSegment(425, 0, 200, 200), ToneSegment(425, 0, 200, 3000)),
    },
}


# What a party we hold hears: a soft beep that says the line is still there.
HOLD_TONES: dict[str, Tone] = {
    "eu": _single(425, 0, 400, 1600),
    "us": _single(440, 0, 400, 1600),
    "ru": _single(425, 0, 400, 1600),
}


def tone_for(plan: str, kind: str) -> Tone:
    """The tone of ``kind`` in the national ``plan``; ValueError for an unknown plan or kind."""
    try:
        return TONE_PLANS[plan][kind]
    except KeyError:
        raise ValueError(f"no {kind!r} tone in plan {plan!r}") from None
