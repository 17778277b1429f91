import os
import tomllib
from pathlib import Path

import pytest

from firmware.config import ConfigError, Secret, load_config, parse_config, render_config

MINIMAL = {
    "device": {"id": "desk-1"},
    "sip": {"registrar": "pbx.example.com:5070", "user": "201", "password": "hunter2-secret"},
}


def with_(section, **keys):
    data = {name: dict(table) for name, table in MINIMAL.items()}
    data.setdefault(section, {}).update(keys)
    return data


def errors_of(data, **kwargs):
    with pytest.raises(ConfigError) as caught:
        parse_config(data, **kwargs)
    return caught.value.errors


def test_defaults_of_a_minimal_config():
    config = parse_config(MINIMAL)
    assert config.device.id == "desk-1"
    assert config.board.name == "sim"
    assert config.board.pin_factory == "mock"
    assert config.sip.domain == "pbx.example.com"
    assert config.sip.registrar_host == "pbx.example.com"
    assert config.sip.registrar_port == 5070
    assert config.sip.auth_user == "201"
    assert config.sip.transport == "udp"
    assert config.sip.codecs == ("G722/16000", "PCMA/8000", "PCMU/8000")
    assert config.sip.trusted_pbx == ()
    assert config.audio.volume_percent == 70
    assert config.dialplan.interdigit_timeout_s == 4.0
    assert config.dialplan.redial_key == "#"
    assert config.mqtt.enabled is False
    assert config.mqtt.topic_prefix == "deskphone"
    assert config.storage.dir == Path("/var/lib/deskphone")
    assert config.sim.control_socket == Path("/var/lib/deskphone/sim.sock")
    assert config.sim.mic_file is None
    assert config.log.level == "INFO"


def test_real_board_defaults_to_lgpio_pins():
    assert parse_config(with_("board", name="rpi-v1")).board.pin_factory == "lgpio"


def test_sim_paths_follow_the_storage_dir():
    config = parse_config(with_("storage", dir="/srv/phone"))
    assert config.sim.earpiece_file == Path("/srv/phone/earpiece.raw")
    assert config.sim.asoundrc == Path("/srv/phone/asoundrc")


def test_every_error_is_reported_at_once_naming_its_key():
    data = {
        "device": {"id": "Desk 1"},
        "sip": {"registrar": "pbx", "user": "201", "password": "x", "transport": "xyz", "local_port": 70000},
        "audio": {"sample_rate": 44100, "volume_percent": "loud"},
        "mqtt": {"enabled": True, "topic_prefix": "/phones/#"},
        "dialplan": {"digit_map": "12|x.y"},
    }
    errors = errors_of(data)
    assert errors == [
        "device.id: must be lower-case letters, digits, '-' and '_', 1-64 long, starting with a letter or "
        "digit, got 'Desk 1'",
        "sip.transport: must be one of udp, tcp, tls, got 'xyz'",
        "sip.local_port: must be between 0 and 65535, got 70000",
        "audio.sample_rate: must be one of 8000, 16000, 48000, got integer 44100",
        "audio.volume_percent: must be an integer, got 'loud'",
        "mqtt.topic_prefix: must not start with '/', got '/phones/#'",
        "dialplan.digit_map: invalid digit map: unexpected 'y' at position 5",
        "mqtt.host: required when mqtt.enabled is true",
    ]
    with pytest.raises(ValueError, match="8 errors"):
        parse_config(data)


def test_required_keys_and_sections():
    assert errors_of({}) == [
        "device.id: required key is missing",
        "sip.registrar: required key is missing",
        "sip.user: required key is missing",
        "sip.password: required key is missing",
    ]


def test_unknown_sections_and_keys_get_a_suggestion():
    data = with_("sip", registar="pbx")
    data["mqqt"] = {}
    data["zzz"] = {}
    assert errors_of(data) == [
        "sip.registar: unknown key, did you mean 'registrar'?",
        "mqqt: unknown section, did you mean 'mqtt'?",
        "zzz: unknown section",
    ]


def test_wrong_types_are_named():
    data = with_("sip", do_not_disturb="yes", codecs="PCMA/8000", trusted_pbx=["10.0.0.1", 5])
    data["log"] = "DEBUG"
    assert errors_of(data) == [
        "sip.do_not_disturb: must be true or false, got 'yes'",
        "sip.codecs: must be an array, got 'PCMA/8000'",
        "sip.trusted_pbx: item 1 must be a string, got integer 5",
        "log: must be a table, got string",
    ]


def test_a_codec_our_pjsua2_lacks_is_an_error_and_case_does_not_matter():
    assert errors_of(with_("sip", codecs=["PCMU/8000", "speex/16000"])) == [
        "sip.codecs: item 1 must be one of G722/16000, PCMA/8000, PCMU/8000, got 'speex/16000'"
    ]
    assert parse_config(with_("sip", codecs=["pcmu/8000"])).sip.codecs == ("PCMU/8000",)


def test_errors_never_show_a_secret_value():
    data = with_("sip", password=12345678)
    data["mqtt"] = {"password": ["hunter2-secret"]}
    errors = errors_of(data)
    assert errors == [
        "sip.password: must be a string, got integer",
        "mqtt.password: must be a string, got array",
    ]
    assert "12345678" not in str(errors) and "hunter2" not in str(errors)


def test_secret_masks_itself():
    secret = parse_config(MINIMAL).sip.password
    assert isinstance(secret, Secret)
    assert secret.reveal() == "hunter2-secret"
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret:>20}", repr(parse_config(MINIMAL))):
        assert "hunter2" not in shown
    assert str(secret) == "********"
    assert secret == Secret("hunter2-secret") and secret != Secret("other")


def test_render_masks_secrets_and_round_trips():
    config = parse_config(with_("mqtt", password="broker-pass", username="desk-1"))
    text = render_config(config)
    assert "hunter2" not in text and "broker-pass" not in text
    assert 'password = "********"' in text
    assert "[dialplan]" in text and 'transport = "udp"' in text
    assert parse_config(tomllib.loads(render_config(config, show_secrets=True))) == config


def test_cross_field_checks():
    assert errors_of(with_("mqtt", client_cert="c.pem")) == [
        "mqtt.client_key: required when mqtt.client_cert is set"
    ]
    assert errors_of(with_("board", pin_factory="lgpio")) == [
        "board.pin_factory: the sim board runs on mock pins, got 'lgpio'"
    ]
    config = parse_config(with_("mqtt", enabled=True, host="broker", client_cert="c.pem", client_key="k.pem"))
    assert config.mqtt.host == "broker"


def test_log_level_is_case_insensitive():
    assert parse_config(with_("log", level="debug")).log.level == "DEBUG"


@pytest.mark.parametrize("registrar", ["pbx", "10.0.0.1:5060", "[::1]:5060", "[fe80::1]", "pbx.example.com"])
def test_registrar_forms(registrar):
    assert parse_config(with_("sip", registrar=registrar)).sip.registrar == registrar


def test_registrar_port_out_of_range():
    assert errors_of(with_("sip", registrar="pbx:99999")) == [
        "sip.registrar: port must be between 1 and 65535, got 99999"
    ]


def test_load_config_resolves_relative_paths_against_the_file(tmp_path):
    config_file = tmp_path / "etc" / "deskphone.toml"
    config_file.parent.mkdir()
    config_file.write_text(
        '[device]\nid = "desk-1"\n'
        '[sip]\nregistrar = "pbx"\nuser = "201"\npassword = "pw"\ntls_ca_file = "ca.pem"\n'
        '[storage]\ndir = "state"\n'
        '[sim]\nmic_file = "mic.raw"\n'
    )
    config = load_config(config_file)
    assert config.storage.dir == tmp_path / "etc" / "state"
    assert config.sip.tls_ca_file == tmp_path / "etc" / "ca.pem"
    assert config.sim.mic_file == tmp_path / "etc" / "mic.raw"
    assert config.sim.control_socket == tmp_path / "etc" / "state" / "sim.sock"


def test_load_config_reports_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[sip\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_load_config_merges_the_secrets_file_beside_it(tmp_path):
    (tmp_path / "deskphone.toml").write_text(
        '[device]\nid = "desk-1"\n[sip]\nregistrar = "pbx"\nuser = "201"\n'
    )
    (tmp_path / "secrets.toml").write_text('[sip]\npassword = "from-secrets"\n[mqtt]\npassword = "mq"\n')
    config = load_config(tmp_path / "deskphone.toml")
    assert config.sip.password.reveal() == "from-secrets" and config.sip.user == "201"
    assert config.mqtt.password.reveal() == "mq"


def test_load_config_with_an_explicit_secrets_file(tmp_path):
    (tmp_path / "deskphone.toml").write_text(
        '[device]\nid = "desk-1"\n[sip]\nregistrar = "pbx"\nuser = "201"\n'
    )
    (tmp_path / "other.toml").write_text('[sip]\npassword = "pw"\n')
    assert load_config(tmp_path / "deskphone.toml", tmp_path / "other.toml").sip.password.reveal() == "pw"
    with pytest.raises(ConfigError, match=r"sip\.password: required key is missing"):
        load_config(tmp_path / "deskphone.toml")


def test_forward_table_defaults_and_bad_values_are_named():
    config = parse_config(MINIMAL)
    assert (config.forward.always, config.forward.busy, config.forward.no_answer) == ("", "", "")
    assert config.forward.no_answer_s == 20
    good = parse_config(with_("forward", always="1003", no_answer="+49170123", no_answer_s=15))
    assert (good.forward.always, good.forward.no_answer, good.forward.no_answer_s) == (
        "1003",
        "+49170123",
        15,
    )
    errors = errors_of(with_("forward", always="sip:1003@x", busy=1003, no_answer="201", no_answer_s=0,
                             noanswer="1"))  # fmt: skip
    text = "\n".join(errors)
    assert "forward.always:" in text and "forward.busy:" in text and "forward.no_answer_s:" in text
    assert "forward.no_answer: '201' is the phone's own extension (sip.user): it would loop" in text
    assert "forward.noanswer" in text and "no_answer" in text  # an unknown key, with a suggestion


def _wav(path, channels=1, width=2, rate=16000, frames=800):
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames * channels * width))
    return path


def test_hold_music_is_a_mono_16_bit_wav_relative_to_the_config(tmp_path):
    _wav(tmp_path / "music.wav")
    config_file = tmp_path / "deskphone.toml"
    config_file.write_text(
        '[device]\nid = "desk-1"\n[sip]\nregistrar = "pbx"\nuser = "201"\npassword = "pw"\n'
        '[line]\nhold_music = "music.wav"\n'
    )
    assert load_config(config_file).line.hold_music == tmp_path / "music.wav"
    assert parse_config(MINIMAL).line.hold_music is None  # the hold tone


def test_hold_music_that_cannot_be_played_is_a_clear_error(tmp_path):
    (tmp_path / "text.wav").write_text("not a wav")
    unreadable = _wav(tmp_path / "locked.wav")
    unreadable.chmod(0)
    cases = {
        tmp_path / "missing.wav": "no such file",
        tmp_path / "text.wav": "is not a PCM WAV file",
        _wav(tmp_path / "stereo.wav", channels=2): "2 channels (mono needed)",
        _wav(tmp_path / "8bit.wav", width=1): "8-bit samples (16-bit needed)",
        _wav(tmp_path / "odd.wav", rate=11025): "11025 Hz",
        _wav(tmp_path / "empty.wav", frames=0): "no audio in it",
        tmp_path: "cannot read",  # a directory
    }
    if os.geteuid() != 0:  # root reads a file of mode 000 anyway
        cases[unreadable] = "cannot read"
    for path, message in cases.items():
        (error,) = errors_of(with_("line", hold_music=str(path)))
        assert error.startswith("line.hold_music: ") and message in error, (path, error)
