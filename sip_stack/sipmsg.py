"""Small, forgiving parsers for the parts of SIP text the user agent reports."""

from __future__ import annotations

import functools
import re

# Headers of an incoming INVITE that the firmware needs (click-to-call from a PBX).
REPORTED_HEADERS = ("Call-Info", "Alert-Info", "Answer-Mode")

_NAME_ADDR = re.compile(r'^\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^<"]*?))\s*<(?P<uri>[^>]*)>')


def header_values(message: str, names: tuple[str, ...] = REPORTED_HEADERS) -> dict[str, str]:
    """Values of the named headers in a SIP message, matched case-insensitively.

    Folded lines are joined; a header that occurs several times gives its values joined by ", ".
    Only the header section (up to the first empty line) is read. Missing headers are left out.
    The scanning is one regular expression (every INVITE goes through this several times on the
    ``sip`` thread, before its screen pop).
    """
    blank = _BLANK_LINE.search(message)
    head = message if blank is None else message[: blank.start()]
    first_line_end = head.find("\n")
    if first_line_end < 0:
        return {}
    wanted = {name.lower(): name for name in names}
    found: dict[str, list[str]] = {}
    for match in _header_pattern(names).finditer(head, first_line_end + 1):  # after the request line
        first, *folded = _LINE_BREAK.split(match.group(2))
        value = " ".join([first, *(line.strip() for line in folded)]).strip()
        found.setdefault(wanted[match.group(1).lower()], []).append(value)
    return {name: ", ".join(values) for name, values in found.items()}


_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")


@functools.lru_cache(maxsize=32)
def _header_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """``Name:`` at a line's start (blanks allowed before the colon), its value and folded lines."""
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"^({alternatives})[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def parse_name_addr(text: str) -> tuple[str, str, str]:
    """``'"Bob" <sip:1001@pbx>;tag=x'`` -> (number "1001", name "Bob", uri "sip:1001@pbx")."""
    match = _NAME_ADDR.match(text)
    if match:
        name = (match.group("quoted") or match.group("token") or "").strip()
        name = re.sub(r"\\(.)", r"\1", name)
        uri = match.group("uri").strip()
    else:
        name = ""
        uri = text.split(";", 1)[0].strip()
    return user_part(uri), name, uri


def user_part(uri: str) -> str:
    """The user part of a SIP/SIPS/TEL URI ("" when there is none)."""
    rest = re.sub(r"^(sips?|tel):", "", uri.strip(), flags=re.IGNORECASE)
    if "@" in rest:
        return rest.split("@", 1)[0].split(";", 1)[0]
    if uri.lower().startswith("tel:"):
        return rest.split(";", 1)[0]
    return ""


def host_of(address: str) -> str:
    """Host of ``host:port``, ``[v6]:port`` or a bare host."""
    address = address.strip()
    if address.startswith("["):
        return address[1 : address.find("]")]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


def request_user(message: str) -> str | None:
    """The user part of a request's Request-URI (``INVITE sip:1001@host SIP/2.0``), or None."""
    parts = message.split("\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith("SIP/"):
        return None
    return user_part(parts[1]) or None


def call_id(message: str) -> str | None:
    """The Call-ID of a SIP message (also in its compact form ``i:``), or None."""
    values = header_values(message, ("Call-ID", "i"))
    return values.get("Call-ID") or values.get("i")


def has_to_tag(message: str) -> bool:
    """Whether the To header (or ``t:``) carries a tag, i.e. the request belongs to a dialog."""
    values = header_values(message, ("To", "t"))
    to = values.get("To") or values.get("t") or ""
    return bool(re.search(r";\s*tag\s*=", to, re.IGNORECASE))
