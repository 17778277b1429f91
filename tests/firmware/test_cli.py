"""`deskphone check-config`: every error at once, each naming its key, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = """
[device]
id = "desk-7"

[sip]
registrar = "pbx.office.lan:5060"
user = "201"
password = "s3cret-sip-pass"

[mqtt]
enabled = true
host = "broker.office.lan"
password = "s3cret-mqtt-pass"
"""

BAD = """
[device]
id = "Desk 7"

[sip]
registrar = "pbx.office.lan:99999"
user = "201"
password = "s3cret-sip-pass"
transprt = "udp"

[audio]
tone_plan = "mars"
"""


def check_config(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware.cli", "check-config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_good_config_is_ok_and_shown_with_secrets_masked(tmp_path: Path) -> None:
    path = tmp_path / "deskphone.toml"
    path.write_text(GOOD)
    result = check_config(path, "--show")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "pbx.office.lan" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr


def test_a_bad_config_names_every_error_and_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "deskphone.toml"
    path.write_text(BAD)
    result = check_config(path)
    assert result.returncode == 1
    err = result.stderr
    assert "4 error(s)" in err
    assert "device.id" in err
    assert "sip.registrar" in err
    assert "sip.transprt" in err and "transport" in err  # unknown key with a suggestion
    assert "audio.tone_plan" in err
    assert "s3cret" not in err + result.stdout


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    result = check_config(tmp_path / "nope.toml")
    assert result.returncode == 1
    assert "nope.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_a_bad_config_exits_1_with_the_errors(tmp_path: Path) -> None:
    path = tmp_path / "deskphone.toml"
    path.write_text(BAD)
    result = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "sip.registrar" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_reports_a_bad_config_alike_however_the_command_line_is_written(tmp_path: Path) -> None:
    # `run --config FILE` goes to the daemon without argparse; `--config=FILE` through it.
    path = tmp_path / "deskphone.toml"
    path.write_text(BAD)
    results = [
        subprocess.run(
            [sys.executable, "-m", "firmware.cli", *args], capture_output=True, text=True, timeout=30
        )
        for args in (["run", "--config", str(path)], ["run", f"--config={path}"])
    ]
    assert [r.returncode for r in results] == [1, 1]
    assert "sip.registrar" in results[0].stderr
    assert results[0].stderr == results[1].stderr


def test_the_crm_commands_are_offered_though_run_parses_without_them() -> None:
    # `run` builds its parser without the crm commands (their imports would delay the REGISTER).
    def deskphone(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "firmware.cli", *args], capture_output=True, text=True, timeout=30
        )

    listed = deskphone("--help")
    assert listed.returncode == 0 and "crm" in listed.stdout
    forward = deskphone("crm", "forward", "--help")
    assert forward.returncode == 0 and "no_answer" in forward.stdout
    run = deskphone("run")
    assert run.returncode == 2 and "--config" in run.stderr
