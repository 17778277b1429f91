"""Value checks of the phone's configuration: the generic ones of ``configschema.values`` and the
phone's own (digit maps, keypad keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configschema.values import (
    HOST,
    MASK,
    Check,
    Invalid,
    Secret,
    array,
    boolean,
    host,
    host_and_port,
    integer,
    number,
    one_of,
    path,
    secret,
    shown,
    split_host_port,
    string,
    topic_prefix,
    type_name,
)

__all__ = [
    "HOST",
    "MASK",
    "Check",
    "Invalid",
    "Secret",
    "array",
    "boolean",
    "digit_map",
    "hold_music_problem",
    "host",
    "host_and_port",
    "integer",
    "keypad_key_or_empty",
    "number",
    "one_of",
    "path",
    "secret",
    "shown",
    "split_host_port",
    "string",
    "topic_prefix",
    "type_name",
]


def digit_map(value: Any) -> str:
    # Only a config with a digit map pays for the parser's import before the phone's REGISTER.
    from firmware.dialplan import DialPlan, DialPlanError

    text = string()(value)
    try:
        DialPlan(text)
    except DialPlanError as error:
        raise Invalid(f"invalid digit map: {error}") from None
    return text


def keypad_key_or_empty(value: Any) -> str:
    return string(r"[0-9*#]?", "one keypad key (0-9, *, #) or empty")(value)


def number_or_empty(low: float, high: float) -> Check:
    """A number between ``low`` and ``high``; an empty string means none (a default found elsewhere)."""
    of_number = number(low, high)

    def check(value: Any) -> float | None:
        return None if value == "" else of_number(value)

    return check


HOLD_MUSIC_RATES = (8000, 16000, 32000, 44100, 48000)


def hold_music_problem(file: Path) -> str | None:
    """Why ``file`` cannot be played to a held party (pjmedia's WAV player into a mono bridge), or None.

    The player reads 16-bit PCM WAV; the conference bridge takes any of these rates but only mono.
    """
    import wave  # only with hold music configured: not on every start of the phone

    try:
        with wave.open(str(file), "rb") as wav:
            channels, width, rate, frames = (wav.getnchannels(), wav.getsampwidth(),
                                             wav.getframerate(), wav.getnframes())  # fmt: skip
    except FileNotFoundError:
        return f"no such file: {file}"
    except OSError as error:
        return f"cannot read {file}: {error.strerror or error}"
    except (wave.Error, EOFError) as error:
        return f"{file} is not a PCM WAV file ({error or 'truncated'})"
    wrong = []
    if channels != 1:
        wrong.append(f"{channels} channels (mono needed)")
    if width != 2:
        wrong.append(f"{width * 8}-bit samples (16-bit needed)")
    if rate not in HOLD_MUSIC_RATES:
        wrong.append(f"{rate} Hz (one of {', '.join(map(str, HOLD_MUSIC_RATES))} needed)")
    if frames == 0:
        wrong.append("no audio in it")
    return f"{file}: {', '.join(wrong)}" if wrong else None
