"""Linphone's CLI (``linphonec`` 5.1, Debian's ``linphone-cli``) as a second, independent SIP stack.

It must run in a network namespace that has only ``lo`` (see ``lab.servers.netns``): before each call
liblinphone ``connect()``s a UDP socket to a public address to find its route. Driven through its
stdin (one command a line); its stdout is kept and searched. Notes on 5.1:
- ``-c`` is the config file; ``use_ipv6=0`` counts only with ``ipv6_migration_done=1``; GRUU is off
  (``supported=replaces, outbound``).
- With only ``lo`` it opens no SIP listening point from the config (and so fails a configured
  account's first REGISTER): ``ports sip N`` after start opens it (N must differ from the config's),
  then ``register`` adds the account. Without its database directory the core never turns on (503).
- Audio from and to files (``soundcard use files``): ``play`` gives its source WAV, ``record`` a WAV
  of what it hears.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.servers.files import read_log, write_private
from lab.servers.ports import LOOPBACK, free_port

logger = logging.getLogger(__name__)

LINPHONEC = shutil.which("linphonec") or "/usr/bin/linphonec"

_CONFIG = """\
[sip]
sip_port=-1
sip_tcp_port=0
sip_tls_port=0
bind_address={host}
ipv6_migration_done=1
use_ipv6=0
supported=replaces, outbound
guess_hostname=0
auto_net_state_mon=0
register_only_when_network_is_up=0
default_proxy=0
[rtp]
audio_rtp_port={rtp_port}
bind_address={host}
[net]
firewall_policy=0
[sound]
echocancellation=0
"""


def available() -> bool:
    return Path(LINPHONEC).exists()


@dataclass
class Linphone:
    workdir: Path
    user: str
    password: str
    registrar: str  # host:port
    source_wav: Path
    auto_answer: bool = True
    host: str = LOOPBACK
    sip_port: int = 0
    _proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _out: list[str] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.workdir / "linphone.log"

    @property
    def record_path(self) -> Path:
        return self.workdir / "heard.wav"

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.sip_port = self.sip_port or free_port()
        text = _CONFIG.format(
            rtp_port=free_port(),
            host=self.host,
        )
        write_private(self.workdir / "linphonerc", text)
        args = [LINPHONEC, "-c", str(self.workdir / "linphonerc"), "-d", "4", "-l", str(self.log_path)]
        if self.auto_answer:
            args.append("-a")
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.workdir,
            env={"HOME": str(self.workdir), "PATH": "/usr/bin:/bin"},
        )
        self._reader = threading.Thread(target=self._read, name=f"linphone-{self.user}", daemon=True)
        self._reader.start()
        self.command("soundcard use files")
        self.command(f"ports sip {self.sip_port}")
        self.command(f"play {self.source_wav}")
        self.command(f"record {self.record_path}")
        domain = self.registrar.split(":")[0]
        self.command(f"register sip:{self.user}@{domain} sip:{self.registrar} {self.password}")
        deadline = time.monotonic() + timeout
        while True:
            mark = self.mark()
            self.command("status register")
            try:
                self.wait_for(r"^(linphonec> )?registered, identity", 1.0, "registration", since=mark)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        logger.info("linphone %s up: sip %s:%d", self.user, self.host, self.sip_port)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self._out.append(line.rstrip("\n"))
                self._cond.notify_all()

    def command(self, line: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None, "linphone not started"
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self._out)

    def wait_for(self, pattern: str, timeout: float = 10.0, what: str = "", since: int = 0) -> str:
        """The first output line from ``since`` on matching ``pattern`` (a regular expression)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._out[since:]:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = "\n".join(self._out[-30:])
                    raise TimeoutError(f"linphone {self.user}: no {what or pattern} in {timeout}s:\n{tail}")
                self._cond.wait(remaining)

    def mark(self) -> int:
        """A position in the output, for ``wait_for(since=...)``."""
        with self._cond:
            return len(self._out)

    def log_text(self) -> str:
        return read_log(self.log_path)

    def stop(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.command("terminate all")
            self.command("quit")
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        logger.info("linphone %s stopped", self.user)
