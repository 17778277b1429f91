"""pytest fixtures for the real test servers; ``tests/conftest.py`` loads them as a plugin.

- ``kamailio``: a fresh registrar+proxy per test (users added with ``add_user``).
- ``baresip_factory``: ``baresip_factory(user, password="pw", auto_answer=True, source_wav=None,
  media_encryption="", codecs=None)``
  registers the user at ``kamailio`` and starts a baresip for it; all are stopped at teardown.
- ``phone_factory``: starts ``deskphone run`` on the sim board, registered at ``kamailio``
  (``sip_extra``: more lines of its ``[sip]`` table; ``registrar``: another address of kamailio's).
- ``mosquitto``: an anonymous broker on 127.0.0.1 (start/stop/restart/kill for outage tests).
- ``test_ca``: a fresh test CA; ``tls_broker_factory(server_cert, acl=None)`` starts a mosquitto whose
  only listener is TLS and requires client certificates of ``test_ca`` (CN = user name);
  ``tls_refusal(case, ca, dir)`` makes the certificates of one refused TLS setup of ``TLS_REFUSALS``.
- ``tone_wav``: a 16 kHz mono WAV of a 440 Hz sine (baresip's default audio source).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.servers.audio import write_sine_wav
from lab.servers.baresip import Baresip
from lab.servers.certs import CertFiles, TestCa
from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import BrokerTls, Mosquitto
from lab.servers.phone import PHONE_PASSWORD, PHONE_USER, PhoneProcess, phone_config_text
from lab.servers.ports import free_port

BaresipFactory = Callable[..., Baresip]
PhoneFactory = Callable[..., PhoneProcess]
BrokerFactory = Callable[..., Mosquitto]

# Each TLS setup the phone must refuse, and what its one log line says.
TLS_REFUSALS = {
    "wrong CA": "not signed by a CA the phone trusts",
    "expired": "certificate has expired",
    "wrong host": "not valid for '127.0.0.1'",
    "no client certificate": "requires a client certificate and the phone has none",
}


def require_binary(binary: str) -> None:
    if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
        pytest.skip(f"{binary} is not installed")


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    require_binary("kamailio")
    server = Kamailio(tmp_path / "kamailio")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "tone440.wav", freq=440.0, seconds=30.0, rate=16000, amplitude=0.3)


@pytest.fixture
def baresip_factory(kamailio: Kamailio, tmp_path: Path, tone_wav: Path) -> Iterator[BaresipFactory]:
    require_binary("baresip")
    started: list[Baresip] = []
    counter = itertools.count(1)

    def start(
        user: str,
        password: str = "pw",
        auto_answer: bool = True,
        source_wav: Path | None = None,
        via_registrar: bool = False,
        media_encryption: str = "",
        codecs: str | None = None,
    ) -> Baresip:
        kamailio.add_user(user, password)
        agent = Baresip(
            tmp_path / f"baresip-{user}-{next(counter)}",
            user=user,
            password=password,
            registrar=f"{kamailio.host}:{kamailio.port}",
            auto_answer=auto_answer,
            source_wav=source_wav or tone_wav,
            via_registrar=via_registrar,
            media_encryption=media_encryption,
        )
        if codecs is not None:
            agent.codecs = codecs
        started.append(agent)
        agent.start()
        return agent

    try:
        yield start
    finally:
        for agent in reversed(started):
            agent.stop()


@pytest.fixture
def phone_factory(kamailio: Kamailio, tmp_path: Path) -> Iterator[PhoneFactory]:
    """Start phone daemons on the sim board registered at the ``kamailio`` fixture (user 1001)."""
    started: list[PhoneProcess] = []
    counter = itertools.count(1)

    def start(
        user: str = PHONE_USER,
        password: str = PHONE_PASSWORD,
        register_password: str | None = None,
        mqtt_port: int | None = None,
        mqtt_options: str = "",
        mic_file: Path | None = None,
        device_id: str = "desk-test",
        extra: str = "",
        sip_extra: str = "",
        workdir: Path | None = None,
        registrar: str | None = None,
    ) -> PhoneProcess:
        kamailio.add_user(user, register_password if register_password is not None else password)
        workdir = workdir or tmp_path / f"phone-{user}-{next(counter)}"
        sip_port = free_port()
        text = phone_config_text(
            workdir,
            registrar or f"{kamailio.host}:{kamailio.port}",
            sip_port,
            device_id=device_id,
            user=user,
            password=password,
            mqtt_port=mqtt_port,
            mqtt_options=mqtt_options,
            mic_file=mic_file,
            sip_extra=sip_extra,
            extra=extra,
        )
        phone = PhoneProcess(workdir, text, sip_port)
        started.append(phone)
        phone.start()
        return phone

    try:
        yield start
    finally:
        for phone in reversed(started):
            phone.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running anonymous broker; tests that want users/ACL build their own ``Mosquitto``."""
    require_binary("mosquitto")
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def tls_broker_factory(tmp_path: Path, test_ca: TestCa) -> Iterator[BrokerFactory]:
    require_binary("mosquitto")
    started: list[Mosquitto] = []

    def start(server: CertFiles, acl: str | None = None) -> Mosquitto:
        tls = BrokerTls(server.cert, server.key, test_ca.cert_path, require_certificate=True)
        broker = Mosquitto(tmp_path / f"mosquitto-tls-{len(started)}", tls=tls, acl=acl)
        started.append(broker)
        broker.start()
        return broker

    try:
        yield start
    finally:
        for broker in started:
            broker.stop()


def tls_refusal(case: str, ca: TestCa, dir: Path, user: str) -> tuple[CertFiles, Path, CertFiles | None]:
    """The broker's certificate, the CA file the client trusts, and the client's certificate (CN
    ``user``) of one case of ``TLS_REFUSALS``."""
    if case == "expired":
        server = ca.issue_server("expired", expired=True)
    elif case == "wrong host":
        server = ca.issue_server("elsewhere", host="broker.elsewhere.test")
    else:
        server = ca.issue_server("broker")
    trust = TestCa(dir / "other-ca", "another CA").cert_path if case == "wrong CA" else ca.cert_path
    client = None if case == "no client certificate" else ca.issue_client("client", user)
    return server, trust, client
