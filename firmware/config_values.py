"""Value checks of the phone's configuration: the generic ones of ``configschema.values`` and the
phone's own (digit maps, keypad keys)."""

from __future__ import annotations

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
from firmware.dialplan import DialPlan, DialPlanError

__all__ = [
    "HOST",
    "MASK",
    "Check",
    "Invalid",
    "Secret",
    "array",
    "boolean",
    "digit_map",
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
