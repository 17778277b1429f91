"""Our codec preference in an SDP answer.

pjmedia's negotiator answers in the *offerer's* codec order (its ``PREFER_REMOTE_CODEC_ORDER``
default, which pjsua2 does not expose), so an offer of PCMU before G722 was answered with PCMU even
though both ends have wideband. Before our answer is negotiated, its audio line keeps only our most
preferred codec that the offer also has (and telephone-event for DTMF): the answer is then that codec,
whatever the offer's order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# RFC 3551 static payload types an offer may list without an rtpmap line.
_STATIC = {"0": "pcmu", "3": "gsm", "8": "pcma", "9": "g722", "18": "g729"}
_NOT_A_VOICE_CODEC = {"telephone-event", "cn"}
_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+([^/\s]+)", re.IGNORECASE)
_PT_ATTRIBUTE = re.compile(r"^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)\s", re.IGNORECASE)


def _lines(text: str) -> list[str]:
    return [line for line in re.split(r"\r?\n", text) if line]


def _audio_section(lines: list[str]) -> tuple[int, int] | None:
    """(index of the first ``m=audio`` line, index after its section), or None."""
    start = next((i for i, line in enumerate(lines) if line.startswith("m=audio")), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    return start, end


def audio_codecs(text: str) -> list[tuple[str, str]]:
    """(payload type, lower-case encoding name) of the first audio line, in its order."""
    lines = _lines(text)
    section = _audio_section(lines)
    if section is None:
        return []
    start, end = section
    names = dict(_STATIC)
    for line in lines[start + 1 : end]:
        match = _RTPMAP.match(line)
        if match:
            names[match.group(1)] = match.group(2).lower()
    return [(pt, names.get(pt, "")) for pt in lines[start].split()[3:]]


def keep_preferred_codec(local: str, remote: str, preference: Iterable[str]) -> str:
    """``local`` (our answer) with its audio line reduced to our first codec that ``remote`` offers.

    ``preference`` names codecs as in the config (``"G722/16000"``); only the encoding name counts.
    The SDP is returned unchanged when nothing would change or it cannot be understood.
    """
    offered = {name for _, name in audio_codecs(remote)}
    ours = audio_codecs(local)
    ours_names = {name for _, name in ours}
    wanted = next(
        (
            name
            for name in (codec.split("/", 1)[0].lower() for codec in preference)
            if name in offered and name in ours_names
        ),
        None,
    )
    if wanted is None:
        return local
    keep = [pt for pt, name in ours if name == wanted or name in _NOT_A_VOICE_CODEC]
    if len(keep) == len(ours):
        return local
    lines = _lines(local)
    section = _audio_section(lines)
    assert section is not None
    start, end = section
    head = lines[start].split()[:3]
    result = [*lines[:start], " ".join(head + keep)]
    for line in lines[start + 1 : end]:
        match = _PT_ATTRIBUTE.match(line)
        if match is None or match.group(1) in keep:
            result.append(line)
    result += lines[end:]
    return "\r\n".join(result) + "\r\n"
