"""A throw-away certificate authority for the lab's TLS servers (the ``openssl`` command line).

``TestCa(dir).issue_server("127.0.0.1")`` gives a server certificate and key signed by the CA, with the
address as an IP subjectAltName (and CN). Keys are written 0600. A second ``TestCa`` is a "wrong CA":
a client that trusts it refuses the first one's servers.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True)
class ServerCertificate:
    cert: Path
    key: Path


class TestCa:
    __test__ = False  # not a pytest class

    def __init__(self, workdir: Path, name: str = "deskphone lab CA", days: int = 2) -> None:
        self.workdir = workdir
        self.days = days
        workdir.mkdir(parents=True, exist_ok=True)
        self.cert = workdir / "ca.crt"
        self.key = workdir / "ca.key"
        extensions = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
        _openssl(
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days)),
            *("-keyout", str(self.key), "-out", str(self.cert), "-subj", f"/CN={name}"),
            *("-addext", extensions[0], "-addext", extensions[1]),
        )
        os.chmod(self.key, 0o600)

    def issue_server(self, host: str) -> ServerCertificate:
        """A server certificate for ``host`` (an address gets an IP subjectAltName, a name a DNS one)."""
        stem = self.workdir / f"server-{host}"
        key, csr, cert, ext = (stem.with_suffix(s) for s in (".key", ".csr", ".crt", ".ext"))
        try:
            ipaddress.ip_address(host)
            san = f"IP:{host}"
        except ValueError:
            san = f"DNS:{host}"
        ext.write_text(
            f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={host}",
        )
        os.chmod(key, 0o600)
        _openssl(
            *("x509", "-req", "-sha256", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key)),
            *("-CAcreateserial", "-days", str(self.days), "-extfile", str(ext), "-out", str(cert)),
        )
        return ServerCertificate(cert=cert, key=key)


def _openssl(*args: str) -> None:
    done = subprocess.run([OPENSSL, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")
