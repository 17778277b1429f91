"""A test certificate authority: a CA, server certificates (SAN IP or DNS) and client certificates.

Made with ``cryptography`` in the test's scratch directory; keys are EC P-256 and written 0600.
``issue_server`` can make a certificate that is expired or names another host, so that tests can show
how a client refuses it.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.servers.files import write_private

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its private key, both PEM; ``ca`` is the file of the CA that signed it."""

    cert: Path
    key: Path
    ca: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem.decode())


class TestCa:
    """One CA in ``dir``: ``ca.pem`` is what a client or broker is told to trust."""

    __test__ = False  # not a pytest test class

    def __init__(self, dir: Path, name: str = "deskphone test CA") -> None:
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(name)
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = dir / "ca.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue_server(self, stem: str, *, host: str = "127.0.0.1", expired: bool = False) -> CertFiles:
        """A server certificate for ``host`` (an IP address goes in the SAN as IP, a name as DNS)."""
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        now = _now()
        valid = (now - 10 * _DAY, now - _DAY) if expired else (now - _DAY, now + 30 * _DAY)
        return self._issue(stem, host, valid, [san], ExtendedKeyUsageOID.SERVER_AUTH)

    def issue_client(self, stem: str, common_name: str) -> CertFiles:
        """A client certificate whose CN is ``common_name`` (the broker's user with identity-as-username)."""
        now = _now()
        return self._issue(
            stem, common_name, (now - _DAY, now + 30 * _DAY), [], ExtendedKeyUsageOID.CLIENT_AUTH
        )

    def _issue(
        self,
        stem: str,
        common_name: str,
        valid: tuple[datetime.datetime, datetime.datetime],
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        files = CertFiles(self.dir / f"{stem}.pem", self.dir / f"{stem}.key", self.cert_path)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(files.key, key)
        return files
