"""SIP account and media settings for the user agent (plain data, validated on creation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sip_stack.admission import MAX_CALLS_LIMIT

TRANSPORTS = ("udp", "tcp", "tls")
SRTP_MODES = ("off", "optional", "mandatory")  # SDES (RFC 4568) keys in the SDP
TONE_PLANS = ("eu", "us", "ru")
DEFAULT_CODECS = ("G722/16000", "PCMA/8000", "PCMU/8000")


@dataclass(frozen=True)
class SipSettings:
    """Everything the user agent needs to register and place calls.

    ``password`` is a plain string handed over by the firmware's config; it is excluded from
    ``repr`` and never logged. ``bind_address`` ("" = all interfaces) is used for the SIP transport
    (bound and public address) and for the account's media transport, so SDP advertises it.
    """

    registrar: str  # host or host:port
    user: str
    password: str = field(default="", repr=False)
    domain: str = ""  # defaults to the registrar's host
    auth_user: str = ""  # defaults to user
    display_name: str = ""
    transport: str = "udp"
    local_port: int = 0  # 0 = any free port
    bind_address: str = ""
    media_port_start: int = 4000
    register_expiry_s: int = 300
    retry_interval_s: int = 5
    rtp_timeout_s: float = 30.0  # end an answered call after this long without RTP received; 0 = never
    codecs: tuple[str, ...] = DEFAULT_CODECS
    clock_rate: int = 16000
    frame_ms: int = 20
    tone_plan: str = "eu"
    hold_music: str = ""  # a mono 16-bit PCM WAV played, looped, to a call we hold; "": the hold tone
    tls_ca_file: str = ""
    tls_verify_server: bool = True
    srtp: str = "off"  # "optional": offer RTP/AVP with crypto; "mandatory": RTP/SAVP, plain offers get 488
    user_agent: str = "deskphone"
    max_calls: int = 4  # calls up at once (active, held, waiting, a transfer's consultation); more get 486
    only_from_pbx: bool = True  # INVITEs only from the registrar and ``trusted_pbx`` (403 otherwise)
    trusted_pbx: tuple[str, ...] = ()  # host names, addresses or CIDR networks
    accept_transfer: bool = True  # follow a far end's REFER / INVITE with Replaces; False: 603 Decline
    log_level: int = 3  # pjsip log level 0..6, forwarded to the Python logger

    def __post_init__(self) -> None:
        errors = []
        if not self.registrar:
            errors.append("registrar is required")
        if not self.user:
            errors.append("user is required")
        if self.transport not in TRANSPORTS:
            errors.append(f"transport must be one of {TRANSPORTS}, not {self.transport!r}")
        if self.srtp not in SRTP_MODES:
            errors.append(f"srtp must be one of {SRTP_MODES}, not {self.srtp!r}")
        if self.tone_plan not in TONE_PLANS:
            errors.append(f"tone_plan must be one of {TONE_PLANS}, not {self.tone_plan!r}")
        if self.clock_rate not in (8000, 16000, 32000, 48000):
            errors.append(f"clock_rate {self.clock_rate} is not supported")
        if self.frame_ms not in (10, 20, 30, 40):
            errors.append(f"frame_ms {self.frame_ms} is not supported")
        if not 0 <= self.local_port <= 65535:
            errors.append("local_port out of range")
        if not 1 <= self.max_calls <= MAX_CALLS_LIMIT:
            errors.append(f"max_calls must be 1..{MAX_CALLS_LIMIT}, not {self.max_calls}")
        if errors:
            raise ValueError("; ".join(errors))
        object.__setattr__(self, "codecs", tuple(self.codecs))
        object.__setattr__(self, "trusted_pbx", tuple(self.trusted_pbx))

    @property
    def registrar_host(self) -> str:
        host = self.registrar
        if host.startswith("["):  # [v6]:port
            return host[: host.index("]") + 1]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    @property
    def registrar_port(self) -> int:
        """The registrar's port as given, else the transport's default (5061 for TLS, 5060)."""
        rest = self.registrar[len(self.registrar_host) :]
        if rest.startswith(":") and rest[1:].isdigit():
            return int(rest[1:])
        return 5061 if self.transport == "tls" else 5060

    @property
    def sip_domain(self) -> str:
        return self.domain or self.registrar_host

    @property
    def auth_username(self) -> str:
        return self.auth_user or self.user

    @property
    def frame_bytes(self) -> int:
        """Bytes in one S16_LE mono frame."""
        return self.clock_rate * self.frame_ms // 1000 * 2

    def uri_params(self) -> str:
        """The ``;transport=`` URI parameter for this transport ("" for UDP)."""
        return "" if self.transport == "udp" else f";transport={self.transport}"
