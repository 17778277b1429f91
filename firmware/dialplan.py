"""Digit maps in the style of MGCP (RFC 3435) as SIP desk phones use them.

A digit map is alternatives separated by ``|``, optionally wrapped in one pair of parentheses. In an
alternative, ``0-9``, ``*`` and ``#`` match themselves, ``x`` matches any digit, ``[1-5]`` or ``[135]``
matches one of a set, and ``.`` repeats the element before it zero or more times. Example::

    DialPlan("112|0[1-9]xxxxxxx.|[2-8]xxx", max_digits=16).classify("1")   # "partial"

``classify`` tells the dialing phone whether the digits so far are a number to send at once
(``complete``), might still become one (``partial``, the inter-digit timeout sends it) or never can
(``invalid``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Classification = Literal["complete", "partial", "invalid"]

DIGITS = frozenset("0123456789")
DIALABLE = DIGITS | frozenset("*#")


class DialPlanError(ValueError):
    """The digit map cannot be parsed; ``position`` is the 0-based index of the offending character."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


@dataclass(frozen=True)
class _Element:
    chars: frozenset[str]
    repeats: bool = False


_Pattern = tuple[_Element, ...]


def _parse_set(text: str, start: int) -> tuple[frozenset[str], int]:
    """Parse ``[...]`` beginning at ``text[start] == "["``; return the set and the index after ``]``."""
    chars: set[str] = set()
    i = start + 1
    while i < len(text) and text[i] != "]":
        char = text[i]
        if char not in DIALABLE:
            raise DialPlanError(f"unexpected {char!r} in a set", i)
        if i + 2 < len(text) and text[i + 1] == "-" and text[i + 2] != "]":
            low, high = char, text[i + 2]
            if low not in DIGITS or high not in DIGITS or low > high:
                raise DialPlanError(f"bad range {low}-{high}", i)
            chars.update(str(d) for d in range(int(low), int(high) + 1))
            i += 3
        else:
            chars.add(char)
            i += 1
    if i >= len(text):
        raise DialPlanError("unclosed '['", start)
    if not chars:
        raise DialPlanError("empty set", start)
    return frozenset(chars), i + 1


def _outer_parentheses(text: str) -> tuple[int, int]:
    """The index range inside one optional pair of parentheses wrapping the whole map."""
    first = len(text) - len(text.lstrip())
    last = len(text.rstrip())
    if first < last and text[first] == "(":
        if text[last - 1] != ")":
            raise DialPlanError("unclosed '('", first)
        return first + 1, last - 1
    return first, last


def parse_digit_map(digit_map: str) -> tuple[_Pattern, ...]:
    """Parse a digit map into its alternatives; a blank map has none. Whitespace is ignored."""
    if not digit_map.strip():
        return ()
    start, end = _outer_parentheses(digit_map)
    patterns: list[_Pattern] = []
    elements: list[_Element] = []
    i = start
    while i <= end:
        char = digit_map[i] if i < end else "|"
        if char == "|":
            if not elements:
                raise DialPlanError("empty alternative", i)
            patterns.append(tuple(elements))
            elements = []
            i += 1
        elif char.isspace():
            i += 1
        elif char in DIALABLE:
            elements.append(_Element(frozenset(char)))
            i += 1
        elif char in "xX":
            elements.append(_Element(DIGITS))
            i += 1
        elif char == "[":
            chars, i = _parse_set(digit_map[:end], i)
            elements.append(_Element(chars))
        elif char == ".":
            if not elements or elements[-1].repeats:
                raise DialPlanError("'.' must follow a digit, 'x' or a set", i)
            elements[-1] = _Element(elements[-1].chars, repeats=True)
            i += 1
        else:
            raise DialPlanError(f"unexpected {char!r}", i)
    return tuple(patterns)


def _closure(pattern: _Pattern, positions: set[int]) -> set[int]:
    """Add the positions reachable by skipping repeated elements (which may match nothing)."""
    result = set(positions)
    for position in sorted(positions):
        while position < len(pattern) and pattern[position].repeats:
            position += 1
            result.add(position)
    return result


def _positions_after(pattern: _Pattern, digits: str) -> set[int]:
    """Positions in ``pattern`` that ``digits`` can reach; empty when ``digits`` can never match."""
    positions = _closure(pattern, {0})
    for digit in digits:
        following: set[int] = set()
        for position in positions:
            if position < len(pattern) and digit in pattern[position].chars:
                following.add(position if pattern[position].repeats else position + 1)
        positions = _closure(pattern, following)
        if not positions:
            break
    return positions


@dataclass(frozen=True)
class DialPlan:
    """A parsed digit map and the longest number the phone collects.

    With an empty digit map every number is ``partial`` until it reaches ``max_digits`` (it is sent on
    ``#`` or the inter-digit timeout) and ``complete`` at ``max_digits``. With a map, a number of
    ``max_digits`` is ``complete`` only if it matches. A number longer than ``max_digits`` is ``invalid``.
    """

    digit_map: str = ""
    max_digits: int = 32
    _patterns: tuple[_Pattern, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_digits < 1:
            raise ValueError(f"max_digits must be at least 1, got {self.max_digits}")
        object.__setattr__(self, "_patterns", parse_digit_map(self.digit_map))

    def classify(self, digits: str) -> Classification:
        if len(digits) > self.max_digits:
            return "invalid"
        at_limit = len(digits) == self.max_digits
        if not self._patterns:
            return "complete" if at_limit else "partial"
        matches = extendable = False
        for pattern in self._patterns:
            positions = _positions_after(pattern, digits)
            matches = matches or len(pattern) in positions
            extendable = extendable or any(position < len(pattern) for position in positions)
        if extendable and not at_limit:
            return "partial"
        return "complete" if matches else "invalid"
