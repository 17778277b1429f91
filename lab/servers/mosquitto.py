"""mosquitto 2 as a test broker: 127.0.0.1, a free port, its own scratch directory and config.

Optional password file (users hashed with ``mosquitto_passwd``), ACL and TLS listener (``BrokerTls``:
with ``require_certificate`` every client needs a certificate of the CA, and its CN is its user
name). Persistence is on, so
``stop()`` + ``start()`` (or ``restart()``) keeps sessions, queued messages and retained messages
like a real broker outage would. ``kill()`` stops it without a chance to save.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.servers.files import read_log

logger = logging.getLogger(__name__)

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
HOST = "127.0.0.1"


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class BrokerTls:
    """The listener's certificate and key; ``ca`` checks client certificates when they are required."""

    cert: Path
    key: Path
    ca: Path | None = None
    require_certificate: bool = False

    def lines(self) -> list[str]:
        lines = [f"certfile {self.cert}", f"keyfile {self.key}"]
        if self.ca is not None:
            lines.append(f"cafile {self.ca}")
        if self.require_certificate:
            lines += ["require_certificate true", "use_identity_as_username true"]
        return lines


class Mosquitto:
    """One broker instance. ``users`` maps user names to passwords; ``acl`` is an ACL file's text."""

    def __init__(
        self,
        scratch: Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        port: int | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.host = HOST
        self.port = port or _free_tcp_port()
        self.dir = scratch
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "mosquitto.log"
        self.config_path = self.dir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} {self.host}",
            *(tls.lines() if tls else []),
            "persistence true",
            "set_tcp_nodelay true",
            f"persistence_location {self.dir}/",
            "autosave_interval 0",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 10000",
            # Started as root, mosquitto would drop to user "mosquitto" and lose the scratch files.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
        ]
        if users:
            passwd = self.dir / "passwd"
            passwd.write_text("")
            for name, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), name, password], check=True)
            os.chmod(passwd, 0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_path = self.dir / "acl"
            acl_path.write_text(acl)
            os.chmod(acl_path, 0o600)
            lines.append(f"acl_file {acl_path}")
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "ab"),  # noqa: SIM115 - owned by the child
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Orderly stop (SIGTERM): mosquitto saves its persistence database first."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._end(signal.SIGKILL, 5.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log(self) -> str:
        return read_log(self.log_path)
