"""Value types and checks of a configuration schema (the phone's ``firmware.config``, the gateway's
``gateway.config``).

A check takes the raw TOML value and returns the value the config holds, or raises ``Invalid`` with a
message that completes ``"<section>.<key>: "``. Checks of secrets never put the value in a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

MASK = "********"


class Secret:
    """A string that never shows itself: ``repr``, ``str`` and ``format`` print a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return format(MASK, format_spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        import hmac  # here: hmac loads OpenSSL's hashlib (~4 MiB, ~5 ms), which the phone's start skips

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


class Invalid(ValueError):
    """A value does not fit its key; the message says why, without the key's name."""


Check = Callable[[Any], Any]

_TOML_TYPE_NAMES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "float",
    list: "array",
    dict: "table",
}


def type_name(value: object) -> str:
    return _TOML_TYPE_NAMES.get(type(value), type(value).__name__)


def shown(value: object) -> str:
    """How a (non-secret) value appears in an error message."""
    return repr(value) if isinstance(value, str) else f"{type_name(value)} {value!r}"


def string(pattern: str | None = None, rule: str = "") -> Check:
    """A string; with ``pattern``, one that fully matches it (``rule`` says what it must be)."""
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be a string, got {shown(value)}")
        if compiled and not compiled.fullmatch(value):
            if not value:
                raise Invalid(f"required: {rule}")
            raise Invalid(f"must be {rule}, got {value!r}")
        return value

    return check


def secret(value: Any) -> Secret:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {type_name(value)}")
    return Secret(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {shown(value)}")
    return value


def integer(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be an integer, got {shown(value)}")
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise Invalid(f"must be {bounds}, got {value}")
        return value

    return check


def number(low: float, high: float) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"must be a number, got {shown(value)}")
        if not low <= value <= high:
            raise Invalid(f"must be between {low:g} and {high:g}, got {value:g}")
        return float(value)

    return check


def one_of(*options: str | int, ignore_case: bool = False) -> Check:
    listed = ", ".join(str(option) for option in options)

    def check(value: Any) -> str | int:
        wanted = value.upper() if ignore_case and isinstance(value, str) else value
        if isinstance(value, bool) or wanted not in options:
            raise Invalid(f"must be one of {listed}, got {shown(value)}")
        return wanted

    return check


def array(item: Check, min_items: int = 0) -> Check:
    """A list whose every item passes ``item``; the config holds it as a tuple."""

    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise Invalid(f"must be an array, got {shown(value)}")
        if len(value) < min_items:
            raise Invalid(f"must have at least {min_items} item(s)")
        items = []
        for index, element in enumerate(value):
            try:
                items.append(item(element))
            except Invalid as error:
                raise Invalid(f"item {index} {error}") from None
        return tuple(items)

    return check


def path(value: Any) -> Path | None:
    """A file system path; an empty string means none. Relative paths are resolved later."""
    text = string()(value)
    return Path(text) if text else None


HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]"
host = string(HOST, "a host name or IP address")


def split_host_port(text: str) -> tuple[str, int | None]:
    """``"host:5060"`` -> ``("host", 5060)``, ``"[::1]"`` -> ``("[::1]", None)``."""
    match = re.fullmatch(r"(.*?)(?::(\d+))?", text)
    assert match is not None
    host, port = match.group(1), match.group(2)
    if port is None or (host.count(":") > 0 and not host.endswith("]")):
        return text, None
    return host, int(port)


def host_and_port(value: Any) -> str:
    text = string(rf"(?:{HOST})(?::\d{{1,5}})?", "a host or host:port")(value)
    port = split_host_port(text)[1]
    if port is not None and not 1 <= port <= 65535:
        raise Invalid(f"port must be between 1 and 65535, got {port}")
    return text


def topic_prefix(value: Any) -> str:
    text = string()(value)
    problems = [
        (not text, "must not be empty"),
        (text.startswith("/"), "must not start with '/'"),
        (text.endswith("/") or "//" in text, "must not have empty topic levels"),
        ("+" in text or "#" in text, "must not contain the wildcards '+' or '#'"),
        ("\0" in text, "must not contain NUL"),
    ]
    for failed, message in problems:
        if failed:
            raise Invalid(f"{message}, got {text!r}")
    return text


def secret_table(value: Any) -> dict[str, Secret]:
    """A table of names to secrets (for example one bearer token per integration)."""
    if not isinstance(value, dict):
        raise Invalid(f"must be a table of names to strings, got {type_name(value)}")
    out: dict[str, Secret] = {}
    for name, item in value.items():
        if not isinstance(item, str) or not item:
            raise Invalid(f"{name!r} must be a non-empty string")
        out[str(name)] = Secret(item)
    return out


def url(schemes: tuple[str, ...] = ("http", "https")) -> Check:
    """An absolute URL with one of ``schemes`` and a host; an empty string means none."""
    from urllib.parse import urlsplit

    def check(value: Any) -> str:
        text = string()(value)
        if not text:
            return text
        parts = urlsplit(text)
        if parts.scheme not in schemes or not parts.netloc:
            wanted = " or ".join(f"{s}://" for s in schemes)
            raise Invalid(f"must be a URL starting with {wanted}, got {text!r}")
        return text

    return check
