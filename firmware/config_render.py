"""Show a ``Config`` back as TOML, for ``deskphone check-config``; secrets are masked unless asked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.config_values import MASK, Secret

if TYPE_CHECKING:
    from firmware.config import Config


def render_config(config: Config, show_secrets: bool = False) -> str:
    """TOML text of every section and key, defaults included; it parses back to the same config."""
    blocks = []
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        lines = [f"[{section.name}]"]
        for key in dataclasses.fields(values):
            lines.append(f"{key.name} = {_toml_value(getattr(values, key.name), show_secrets)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _toml_value(value: Any, show_secrets: bool) -> str:
    if isinstance(value, Secret):
        if show_secrets:
            return json.dumps(value.reveal(), ensure_ascii=False)
        return json.dumps(MASK if value else "")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(item, show_secrets) for item in value) + "]"
    if value is None:
        return '""'
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value, ensure_ascii=False)
