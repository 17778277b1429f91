"""``flash.py sidecar``: the mpremote commands, the compiled files and config that reach the board, and
no credential on the terminal. A stand-in ``mpremote`` records its commands and copies into a directory."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from tests.tools.conftest import flash

FAKE_MPREMOTE = """#!{python}
import json, shutil, sys
from pathlib import Path
board = Path({board!r})
args = sys.argv[1:]
with open(board.parent / "mpremote.log", "a") as log:
    log.write(json.dumps(args) + "\\n")
assert args[:2] == ["connect", "auto"], args
args = args[2:]
if args[0] == "cp" and args[1] == "-r":
    shutil.copytree(args[2], board / Path(args[2]).name, dirs_exist_ok=True)
elif args[0] == "cp":
    shutil.copyfile(args[1], board / args[2].lstrip(":"))
"""


@pytest.fixture
def fake_mpremote(tmp_path: Path) -> tuple[Path, Path]:
    board = tmp_path / "board"
    board.mkdir()
    tool = tmp_path / "mpremote"
    tool.write_text(FAKE_MPREMOTE.format(python=sys.executable, board=str(board)))
    tool.chmod(0o755)
    return tool, board


ARGS = ["--sidecar-id", "busylight-sales", "--phones", "desk-1,desk-2", "--wifi-ssid", "office",
        "--broker-host", "broker.office.test"]  # fmt: skip


def test_installs_compiled_files_and_config_without_printing_secrets(fake_mpremote, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tool, board = fake_mpremote
    (tmp_path / "wifi.txt").write_text("wifi-secret-123\n")
    secrets = tmp_path / "secrets.csv"
    common = [*ARGS, "--wifi-password-file", str(tmp_path / "wifi.txt"), "--secrets", str(secrets)]
    proc = flash("sidecar", *common, "--mpremote", str(tool))
    assert proc.returncode == 0, proc.stderr
    log = [json.loads(line) for line in (tmp_path / "mpremote.log").read_text().splitlines()]
    assert log[0] == ["connect", "auto", "mip", "install", "umqtt.robust"]
    assert log[-1] == ["connect", "auto", "reset"]
    assert sorted(p.name for p in (board / "busylight").iterdir()) == [
        "__init__.mpy",
        "leds.mpy",
        "logic.mpy",
    ]
    assert (board / "main.py").exists()
    config = json.loads((board / "config.json").read_text())
    password = next(
        line.split(",")[2] for line in secrets.read_text().splitlines() if line.startswith("busylight")
    )
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert config["mqtt"]["password"] == password and config["wifi"]["password"] == "wifi-secret-123"
    assert config["mqtt"]["username"] == "busylight-sales" and config["phones"] == ["desk-1", "desk-2"]
    assert config["leds"]["type"] == "neopixel"
    for secret in (password, "wifi-secret-123"):
        assert secret not in proc.stdout + proc.stderr

    dry = flash("sidecar", *common, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "mpremote connect auto mip install umqtt.robust" in dry.stdout
    assert "(hidden)" in dry.stdout
    for secret in (password, "wifi-secret-123"):
        assert secret not in dry.stdout + dry.stderr


def test_refuses_without_broker_or_password(tmp_path: Path) -> None:
    proc = flash("sidecar", "--sidecar-id", "Bad!", "--phones", "", "--wifi-ssid", "x", "--dry-run")
    assert proc.returncode == 1
    for problem in ("sidecar_id", "at least one device id", "broker host", "--secrets"):
        assert problem in proc.stderr
