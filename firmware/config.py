"""The phone's configuration: a TOML file checked against a schema, held as frozen dataclasses.

``load_config(path)`` reads and checks a file, ``parse_config(data)`` checks an already parsed table.
Both raise one ``ConfigError`` listing every problem at once, each naming its key. The schema is the
section dataclasses below: each field's metadata holds its check, its default is the key's default and
a field without a default is a required key. ``render_config`` (``firmware.config_render``) shows a
config back as TOML with its secrets masked.

No ``from __future__ import annotations`` here: the checks in the ``Annotated`` types are built once,
as the module is imported from its .pyc, instead of compiled from strings at every load
(``typing.get_type_hints``): the config's import and load before the REGISTER 38.8 -> 36.5 ms. Every
section has a docstring: ``dataclass`` would build a missing one from ``inspect.signature`` (0.1-0.3 ms
a class).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from configschema.schema import ConfigError, check_sections, merge_secrets, read_toml
from configschema.sections import LogConfig
from firmware import config_values as check
from firmware.config_values import Secret

__all__ = [
    "KNOWN_BOARDS",
    "AudioConfig",
    "BoardConfig",
    "Config",
    "ConfigError",
    "DeviceConfig",
    "DialplanConfig",
    "ForwardConfig",
    "LogConfig",
    "MqttConfig",
    "Secret",
    "SimConfig",
    "SipConfig",
    "StorageConfig",
    "load_config",
    "parse_config",
    "render_config",
]

KNOWN_BOARDS = ("sim", "rpi-v1")
PIN_FACTORIES = ("mock", "lgpio", "rpigpio", "native")
DEFAULT_STORAGE_DIR = Path("/var/lib/deskphone")
NO_SECRET = Secret("")
SECRETS_FILE_NAME = "secrets.toml"
DEFAULT_CODECS = ("G722/16000", "PCMA/8000", "PCMU/8000")
# The codecs our pjsua2 build has (tools/pjsua2/config_site.h): a name it lacks would enable nothing.
CODEC = check.one_of(*DEFAULT_CODECS, ignore_case=True)
SIM_FILES_IN_STORAGE = {"control_socket": "sim.sock", "earpiece_file": "earpiece.raw", "asoundrc": "asoundrc"}


@dataclass(frozen=True)
class DeviceConfig:
    """The phone's identity: its topic level and broker user name, and a name for people."""

    # a topic level and the broker user name; tools/provisioning/device.py checks the same rule
    id: Annotated[
        str,
        check.string(
            r"[a-z0-9][a-z0-9_-]{0,63}",
            "lower-case letters, digits, '-' and '_', 1-64 long, starting with a letter or digit",
        ),
    ]
    name: Annotated[str, check.string()] = ""


@dataclass(frozen=True)
class BoardConfig:
    """Which hardware revision (``board``) and which gpiozero pin factory drives it."""

    name: Annotated[str, check.one_of(*KNOWN_BOARDS)] = "sim"
    pin_factory: Annotated[str, check.one_of(*PIN_FACTORIES)] = "mock"  # "lgpio" unless the board is sim


@dataclass(frozen=True)
class SimConfig:
    """The simulated board; default paths lie in ``storage.dir``."""

    control_socket: Annotated[Path, check.path] = DEFAULT_STORAGE_DIR / "sim.sock"
    mic_file: Annotated[Path | None, check.path] = None
    earpiece_file: Annotated[Path, check.path] = DEFAULT_STORAGE_DIR / "earpiece.raw"
    asoundrc: Annotated[Path, check.path] = DEFAULT_STORAGE_DIR / "asoundrc"


@dataclass(frozen=True)
class SipConfig:
    """The line: registrar, account, transport, media and call admission."""

    registrar: Annotated[str, check.host_and_port]
    user: Annotated[str, check.string(r"[^\s@:]+", "a user name without spaces, '@' or ':'")]
    password: Annotated[Secret, check.secret]
    domain: Annotated[str, check.host] = ""  # empty in the file: the registrar's host
    auth_user: Annotated[str, check.string()] = ""  # empty in the file: ``user``
    display_name: Annotated[str, check.string()] = ""
    transport: Annotated[str, check.one_of("udp", "tcp", "tls")] = "udp"
    local_port: Annotated[int, check.integer(0, 65535)] = 5060
    bind_address: Annotated[str, check.string()] = ""
    media_port: Annotated[int, check.integer(0, 65535)] = 4000
    register_expiry_s: Annotated[int, check.integer(60, 86400)] = 300
    retry_interval_s: Annotated[int, check.integer(1, 300)] = 5
    rtp_timeout_s: Annotated[int, check.integer(0, 3600)] = 30  # 0: never end a call for missing RTP
    codecs: Annotated[tuple[str, ...], check.array(CODEC, min_items=1)] = (
        "G722/16000",
        "PCMA/8000",
        "PCMU/8000",
    )
    tls_ca_file: Annotated[Path | None, check.path] = None
    tls_verify_server: Annotated[bool, check.boolean] = True
    srtp: Annotated[str, check.one_of("off", "optional", "mandatory")] = "off"  # SDES-keyed SRTP
    trusted_pbx: Annotated[tuple[str, ...], check.array(check.host)] = ()
    only_from_pbx: Annotated[bool, check.boolean] = True  # INVITEs only from the registrar and trusted_pbx
    max_calls: Annotated[int, check.integer(1, 12)] = 4  # calls up at once; more INVITEs get 486
    do_not_disturb: Annotated[bool, check.boolean] = False
    accept_transfer: Annotated[bool, check.boolean] = True  # false: a far end's REFER gets 603 Decline

    @property
    def registrar_host(self) -> str:
        return check.split_host_port(self.registrar)[0]

    @property
    def registrar_port(self) -> int | None:
        return check.split_host_port(self.registrar)[1]


@dataclass(frozen=True)
class AudioConfig:
    """The handset's ALSA devices, volume, sample rate, frame length and tone plan."""

    capture_device: Annotated[str, check.string()] = ""  # empty: the board's default
    playback_device: Annotated[str, check.string()] = ""
    mixer_control: Annotated[str, check.string()] = ""
    volume_percent: Annotated[int, check.integer(0, 100)] = 70
    sample_rate: Annotated[int, check.one_of(8000, 16000, 48000)] = 16000
    frame_ms: Annotated[int, check.one_of(10, 20, 40)] = 20
    tone_plan: Annotated[str, check.one_of("eu", "us", "ru")] = "eu"


@dataclass(frozen=True)
class DialplanConfig:
    """When a dialled number goes out: the interdigit timeout, the digit map, redial."""

    interdigit_timeout_s: Annotated[float, check.number(1, 30)] = 4.0
    digit_map: Annotated[str, check.digit_map] = ""  # empty: numbers go on '#' or the timeout
    redial_key: Annotated[str, check.keypad_key_or_empty] = "#"  # as the first key: redial the last number
    max_digits: Annotated[int, check.integer(1, 64)] = 32


@dataclass(frozen=True)
class LineConfig:
    """Hook flash, call waiting and hold."""

    hook_flash: Annotated[bool, check.boolean] = True  # false: every on-hook hangs up at once
    hook_flash_min_s: Annotated[float | None, check.number_or_empty(0, 2)] = None  # empty: the board's
    hook_flash_max_s: Annotated[float | None, check.number_or_empty(0.05, 5)] = None
    call_waiting: Annotated[bool, check.boolean] = True  # false: a call during a call gets 486
    # after a flash with a call waiting, how long a key (0 reject, 1 end and take, 2 hold and take)
    # is awaited before the flash holds the call and takes the waiting one; 0: at once, no keys
    call_waiting_choice_s: Annotated[float, check.number(0, 10)] = 2.0
    hold_music: Annotated[Path | None, check.path] = None  # a WAV a party we hold hears; none: hold tone


FORWARD_TARGET = check.string(r"[0-9+*#]{0,32}", "a number of up to 32 digits, '+', '*', '#', or empty (off)")


@dataclass(frozen=True)
class ForwardConfig:
    """Call forwarding (a 302 the PBX follows); an empty number is off. cmd/forward changes it at run
    time; the change is kept in ``storage.dir`` and wins until this table itself changes."""

    always: Annotated[str, FORWARD_TARGET] = ""  # every call
    busy: Annotated[str, FORWARD_TARGET] = ""  # calls the line cannot take (instead of 486)
    no_answer: Annotated[str, FORWARD_TARGET] = ""  # calls not answered within no_answer_s
    no_answer_s: Annotated[int, check.integer(1, 120)] = 20


@dataclass(frozen=True)
class MqttConfig:
    """The broker the CRM bridge reports to (off unless ``enabled``)."""

    enabled: Annotated[bool, check.boolean] = False
    host: Annotated[str, check.string()] = ""
    port: Annotated[int, check.integer(1, 65535)] = 1883
    username: Annotated[str, check.string()] = ""
    password: Annotated[Secret, check.secret] = NO_SECRET
    tls: Annotated[bool, check.boolean] = False
    ca_file: Annotated[Path | None, check.path] = None
    client_cert: Annotated[Path | None, check.path] = None
    client_key: Annotated[Path | None, check.path] = None
    topic_prefix: Annotated[str, check.topic_prefix] = "deskphone"
    keepalive_s: Annotated[int, check.integer(5, 3600)] = 30
    session_expiry_s: Annotated[int, check.integer(0, 4294967295)] = 3600
    outbox_max_events: Annotated[int, check.integer(1)] = 10000


@dataclass(frozen=True)
class StorageConfig:
    """Where the phone keeps its outbox, settings and the sim board's files."""

    dir: Annotated[Path, check.path] = DEFAULT_STORAGE_DIR


@dataclass(frozen=True)
class Config:
    """The whole configuration, one attribute per section."""

    device: DeviceConfig
    sip: SipConfig
    board: BoardConfig = field(default_factory=BoardConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    dialplan: DialplanConfig = field(default_factory=DialplanConfig)
    line: LineConfig = field(default_factory=LineConfig)
    forward: ForwardConfig = field(default_factory=ForwardConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    log: LogConfig = field(default_factory=LogConfig)


SECTIONS: dict[str, type] = {
    "device": DeviceConfig,
    "board": BoardConfig,
    "sim": SimConfig,
    "sip": SipConfig,
    "audio": AudioConfig,
    "dialplan": DialplanConfig,
    "line": LineConfig,
    "forward": ForwardConfig,
    "mqtt": MqttConfig,
    "storage": StorageConfig,
    "log": LogConfig,
}

_PATH_KEYS = {
    "storage": ("dir",),
    "sim": ("control_socket", "mic_file", "earpiece_file", "asoundrc"),
    "sip": ("tls_ca_file",),
    "mqtt": ("ca_file", "client_cert", "client_key"),
    "line": ("hold_music",),
}


def load_config(path: str | Path, secrets_path: str | Path | None = None) -> Config:
    """Read and check the TOML file at ``path``; relative paths in it are taken from its directory.

    The secrets file (``secrets_path``, by default ``secrets.toml`` beside the config when it exists,
    as ``tools/flash.py`` installs it) is merged over the config key by key.
    """
    path = Path(path)
    data = read_toml(path)
    default_secrets = path.parent / SECRETS_FILE_NAME
    if secrets_path is None and default_secrets.exists():
        secrets_path = default_secrets
    if secrets_path is not None:
        data = merge_secrets(data, Path(secrets_path))
    return parse_config(data, base_dir=path.resolve().parent)


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> Config:
    """Check a parsed TOML table; relative paths are resolved against ``base_dir`` when given."""
    errors: list[str] = []
    absent = tuple(name for name in SECTIONS if name not in data)
    values, given = check_sections(data, SECTIONS, errors, required=absent)
    _derive_defaults(values, given)
    _resolve_paths(values, base_dir)
    _check_across_sections(values, errors)
    if errors:
        raise ConfigError(errors)
    return Config(**{name: SECTIONS[name](**section) for name, section in values.items()})


def render_config(config: Config, show_secrets: bool = False) -> str:
    from firmware.config_render import render_config as render

    return render(config, show_secrets=show_secrets)


def _derive_defaults(values: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]]) -> None:
    """Fill the defaults that depend on other keys, where the file leaves them out or empty."""
    board, sip, sim = values["board"], values["sip"], values["sim"]
    if "pin_factory" not in given.get("board", {}):
        board["pin_factory"] = "mock" if board["name"] == "sim" else "lgpio"
    if not sip["domain"] and sip["registrar"]:
        sip["domain"] = check.split_host_port(sip["registrar"])[0]
    if not sip["auth_user"] and sip["user"]:
        sip["auth_user"] = sip["user"]
    storage_dir = values["storage"]["dir"] or DEFAULT_STORAGE_DIR
    values["storage"]["dir"] = storage_dir
    for key, file_name in SIM_FILES_IN_STORAGE.items():
        if sim[key] is None or key not in given.get("sim", {}):
            sim[key] = storage_dir / file_name


def _resolve_paths(values: dict[str, dict[str, Any]], base_dir: Path | None) -> None:
    if base_dir is None:
        return
    for section_name, keys in _PATH_KEYS.items():
        for key in keys:
            value = values[section_name][key]
            if isinstance(value, Path) and not value.is_absolute():
                values[section_name][key] = base_dir / value


def _check_across_sections(values: dict[str, dict[str, Any]], errors: list[str]) -> None:
    board, mqtt = values["board"], values["mqtt"]
    if board["name"] == "sim" and board["pin_factory"] != "mock":
        errors.append(f"board.pin_factory: the sim board runs on mock pins, got {board['pin_factory']!r}")
    if mqtt["enabled"] and not mqtt["host"]:
        errors.append("mqtt.host: required when mqtt.enabled is true")
    sip = values["sip"]
    if sip["transport"] == "tls" and sip["tls_verify_server"] and not sip["tls_ca_file"]:
        errors.append(
            "sip.tls_ca_file: required when sip.transport is tls and tls_verify_server is true "
            "(the registrar's certificate cannot be verified without the CA that signed it)"
        )
    for mode in ("always", "busy", "no_answer"):
        if sip["user"] and values["forward"][mode] == sip["user"]:
            own = sip["user"]
            errors.append(f"forward.{mode}: {own!r} is the phone's own extension (sip.user): it would loop")
    if mqtt["client_cert"] and not mqtt["client_key"]:
        errors.append("mqtt.client_key: required when mqtt.client_cert is set")
    if mqtt["client_key"] and not mqtt["client_cert"]:
        errors.append("mqtt.client_cert: required when mqtt.client_key is set")
    hold_music = values["line"]["hold_music"]
    if hold_music is not None:
        problem = check.hold_music_problem(hold_music)
        if problem:
            errors.append(f"line.hold_music: {problem}")


def config_warnings(config: Config) -> list[str]:
    """Combinations that work but expose something; check-config prints them, the daemon logs them."""
    warnings = []
    sip = config.sip
    if sip.srtp != "off" and sip.transport != "tls":
        warnings.append(
            f"sip.srtp: {sip.srtp} over {sip.transport} without TLS: the SRTP keys (SDES) cross the network "
            "in the SDP in clear text, so anyone who sees the signalling can decrypt the calls; use "
            'transport = "tls"'
        )
    if sip.transport == "tls" and not sip.tls_verify_server:
        warnings.append("sip.tls_verify_server: false: any server can pose as the registrar")
    return warnings


def load_config_or_report(path: str | Path, stream: Any = None) -> Config | None:
    """``load_config``, or None after printing every problem (one per line, naming the file) to
    ``stream`` (stderr by default): what the command-line entry points show a person."""
    import sys

    out = stream if stream is not None else sys.stderr
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: {len(exc.errors)} error(s)", file=out)
        for error in exc.errors:
            print(f"  {error}", file=out)
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=out)
    return None
