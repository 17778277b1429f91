"""check-config: every error at once, secrets masked, the inventory checked too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config

INVENTORY = "device_id,extension,name,crm_user\ndesk-anna,1001,Anna,7\ndesk-acct,1003,Accounts,\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "office.csv").write_text(INVENTORY)
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_every_error_at_once_with_suggestions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[mqtt]
hots = "broker"
port = 99999
[inventory]
file = "office.csv"
[bitrix24]
enabled = true
client_secret = "s3cret-value"
[webhook]
enabled = true
url = "ftp://crm"
[api]
tokens = { amo = "" }
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    errors = caught.value.errors
    assert "mqtt.hots: unknown key, did you mean 'host'?" in errors
    assert "mqtt.host: required key is missing" in errors
    assert any(e.startswith("mqtt.port: must be between 1 and 65535") for e in errors)
    assert any(e.startswith("webhook.url: must be a URL") for e in errors)
    assert "bitrix24.client_id: required when bitrix24.enabled is true" in errors
    assert any(e.startswith("http.public_url: required") for e in errors)
    assert any(e.startswith("api.tokens:") for e in errors)
    assert "s3cret-value" not in str(caught.value)


def test_check_config_cli_masks_secrets_and_reads_the_secrets_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[mqtt]\nhost = "127.0.0.1"\n[inventory]\nfile = "office.csv"\n[api]\ntokens = { amo = "tok-1" }\n',
    )
    (tmp_path / "secrets.toml").write_text('[mqtt]\npassword = "broker-pw-9"\n')
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(path), "--show"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "broker-pw-9" not in out.stdout and "tok-1" not in out.stdout
    assert 'password = "********"' in out.stdout
    assert load_config(path).mqtt.password.reveal() == "broker-pw-9"


def test_check_config_cli_reports_inventory_problems(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "127.0.0.1"\n[inventory]\nfile = "office.csv"\n')
    (tmp_path / "office.csv").write_text("device_id,extension,crm_user\ndesk-a,1001,7\ndesk-b,1002,7\n")
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "crm_user '7' sits at two desks" in out.stderr
