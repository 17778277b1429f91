"""A minimal TOML writer for the flat, sectioned files we generate (strings, ints, bools, lists)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Value = str | int | bool | list[str]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # JSON string escaping is a subset of TOML basic-string escaping.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(data: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """Render ``{section: {key: value}}`` as TOML; keys keep their order."""
    lines: list[str] = []
    if header:
        lines.extend(f"# {line}" if line else "#" for line in header.splitlines())
        lines.append("")
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                continue
            lines.append(f"{key} = {_scalar(value)}")
        lines.append("")
    return "\n".join(lines)
