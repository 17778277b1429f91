"""Show a ``Config`` back as TOML, for ``deskphone check-config``; secrets are masked unless asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from configschema.schema import render

if TYPE_CHECKING:
    from firmware.config import Config


def render_config(config: Config, show_secrets: bool = False) -> str:
    """TOML text of every section and key, defaults included; it parses back to the same config."""
    return render(config, show_secrets=show_secrets)
