"""check-config on the SIP security keys: TLS that cannot verify is refused, SRTP keys in clear warned."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.config import ConfigError, config_warnings, parse_config
from tests.firmware.test_cli import check_config

BASE = {
    "device": {"id": "desk-1"},
    "sip": {"registrar": "pbx.example.com:5061", "user": "201", "password": "pw-1"},
}


def sip(**keys: object) -> dict[str, dict[str, object]]:
    return {"device": BASE["device"], "sip": BASE["sip"] | keys}


def test_defaults_accept_sip_only_from_the_pbx_with_room_for_four_calls_and_no_srtp() -> None:
    config = parse_config(BASE)
    assert config.sip.only_from_pbx is True
    assert config.sip.max_calls == 4
    assert config.sip.srtp == "off"
    assert config_warnings(config) == []


def test_tls_with_verification_but_no_ca_file_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(sip(transport="tls"))
    assert caught.value.errors == [
        "sip.tls_ca_file: required when sip.transport is tls and tls_verify_server is true "
        "(the registrar's certificate cannot be verified without the CA that signed it)"
    ]


@pytest.mark.parametrize(("keys", "error"), [
    ({"srtp": "always"}, "sip.srtp: must be one of off, optional, mandatory, got 'always'"),
    ({"max_calls": 0}, "sip.max_calls"),
    ({"max_calls": 13}, "sip.max_calls"),
    ({"only_from_pbx": "yes"}, "sip.only_from_pbx"),
])  # fmt: skip
def test_bad_values_name_their_key(keys: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(sip(**keys))
    assert caught.value.errors[0].startswith(error), caught.value.errors


@pytest.mark.parametrize("mode", ["optional", "mandatory"])
def test_srtp_over_udp_warns_that_the_keys_cross_in_clear_text(mode: str) -> None:
    (warning,) = config_warnings(parse_config(sip(srtp=mode)))
    assert warning.startswith(f"sip.srtp: {mode} over udp without TLS")
    assert "clear text" in warning
    assert config_warnings(parse_config(sip(srtp=mode, transport="tls", tls_ca_file="/etc/ca.pem"))) == []


def test_check_config_prints_the_warning_and_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "deskphone.toml"
    sip_table = 'registrar = "pbx:5060"\nuser = "201"\npassword = "pw-1"\nsrtp = "mandatory"\n'
    path.write_text(f'[device]\nid = "desk-1"\n[sip]\n{sip_table}')
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert "warning: sip.srtp: mandatory over udp without TLS" in result.stdout
