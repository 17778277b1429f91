"""baresip 1.0 as a scripted far end, driven over ``ctrl_tcp`` (netstring-framed JSON).

Modules: account, g711, g722, aufile (audio source plays a WAV), sndfile (records what baresip
decodes from the network to ``dump-*-dec.wav`` and what it encodes to ``dump-*-enc.wav``), alsa with
the ``null`` PCM as player so no sound card is needed, ctrl_tcp for commands and events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.servers.files import read_log, write_private
from lab.servers.ports import LOOPBACK, free_port

logger = logging.getLogger(__name__)

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
MODULE_PATH = "/usr/lib/baresip/modules"

_CONFIG = """\
poll_method\t\tepoll
net_interface\t\t{host}
sip_listen\t\t{host}:{sip_port}
audio_player\t\talsa,null
audio_alert\t\talsa,null
audio_source\t\taufile,{source_wav}
ausrc_srate\t\t{srate}
auplay_srate\t\t{srate}
audio_channels\t\t1
rtp_tos\t\t\t0
jitter_buffer_delay\t1-10
module_path\t\t{module_path}
module\t\t\tg711.so
module\t\t\tg722.so
module\t\t\taufile.so
module\t\t\tsndfile.so
module\t\t\talsa.so
module_app\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t{host}:{ctrl_port}
snd_path\t\t{record_dir}
"""


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


@dataclass
class Baresip:
    """A running baresip user agent registered (optionally) at a registrar.

    ``registrar`` is ``host:port``; when it is empty baresip does not register and is reached
    directly at ``host:sip_port``.
    """

    workdir: Path
    user: str
    password: str = ""
    registrar: str = ""
    auto_answer: bool = True
    source_wav: Path | None = None
    codecs: str = "G722/16000/1,PCMA,PCMU"
    host: str = LOOPBACK
    sip_port: int = 0
    ctrl_port: int = 0
    srate: int = 16000
    extra_config: str = ""  # more config lines (e.g. baresip's own mqtt module when it is the phone)
    paced_audio: bool = False  # aubridge as source and player: paced by baresip's own timer, no ALSA
    # A player that never pulls (an aubridge device without its source): the alsa,null player spins a
    # core in every call. What it receives is then neither played nor recorded (bench far ends).
    idle_player: bool = False
    # Every request through the registrar, as a phone behind a PBX sends them: a REFER's target such as
    # sip:1003@127.0.0.1 (no port: the domain) then reaches the lab's kamailio, not port 5060.
    via_registrar: bool = False
    media_encryption: str = ""  # baresip's mediaenc: "srtp" (optional SDES), "srtp-mand" (RTP/SAVP)
    events: list[dict[str, Any]] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None
    _sock: socket.socket | None = None
    _reader: threading.Thread | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _consumed: int = 0
    _responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    _token: int = 0

    def __post_init__(self) -> None:
        self._given_ports = (self.sip_port, self.ctrl_port)

    @property
    def record_dir(self) -> Path:
        return self.workdir / "rec"

    @property
    def log_path(self) -> Path:
        return self.workdir / "baresip.log"

    @property
    def uri(self) -> str:
        """Where to reach this baresip directly (without the registrar)."""
        return f"sip:{self.user}@{self.host}:{self.sip_port}"

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(exist_ok=True)
        # Ports given by the caller are kept; others are picked afresh at every start, so a restart
        # never races another process for the port the last run had.
        self.sip_port = self._given_ports[0] or free_port(span=2)
        self.ctrl_port = self._given_ports[1] or free_port()
        if self.source_wav is None:
            raise ValueError("baresip needs a source WAV (aufile)")
        config = _CONFIG.format(
            host=self.host,
            sip_port=self.sip_port,
            ctrl_port=self.ctrl_port,
            source_wav=self.source_wav,
            srate=self.srate,
            module_path=MODULE_PATH,
            record_dir=self.record_dir,
        ) + ("module\t\t\tsrtp.so\n" if self.media_encryption.startswith("srtp") else "")
        if self.paced_audio:
            # alsa,null does not pace (baresip's player then spins a core): the audio bridge moves each
            # received frame back into the source on a ptime timer, like a sound card's clock.
            config = config.replace("alsa,null", "aubridge,bench").replace(
                f"aufile,{self.source_wav}", "aubridge,bench"
            )
            config += "module\t\t\taubridge.so\n"
        elif self.idle_player:
            config = config.replace("alsa,null", "aubridge,nowhere") + "module\t\t\taubridge.so\n"
        (self.workdir / "config").write_text(config + self.extra_config)
        write_private(self.workdir / "accounts", self._account_line() + "\n")
        (self.workdir / "contacts").write_text("")
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [BARESIP, "-f", str(self.workdir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._connect(timeout)
        if self.registrar:
            self._wait_registered(timeout)
        logger.info("baresip %s up: sip %s:%d, ctrl %d", self.user, self.host, self.sip_port, self.ctrl_port)

    def _account_line(self) -> str:
        params = [f"audio_codecs={self.codecs}", f"answermode={'auto' if self.auto_answer else 'manual'}"]
        if self.media_encryption:
            params.append(f"mediaenc={self.media_encryption}")
        if self.registrar:
            aor = f"<sip:{self.user}@{self.registrar}>"
            params += [f"auth_pass={self.password}", "regint=600"]
            if self.via_registrar:
                params.append(f'outbound="sip:{self.registrar};lr"')
        else:
            aor = f"<sip:{self.user}@{self.host}>"
            params.append("regint=0")
        return aor + ";" + ";".join(params)

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"baresip exited; log:\n{self.log_text()[-3000:]}")
            try:
                self._sock = socket.create_connection((self.host, self.ctrl_port), timeout=0.5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"baresip ctrl_tcp not up; log:\n{self.log_text()[-3000:]}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, name="baresip-ctrl", daemon=True)
        self._reader.start()

    def _wait_registered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if any(e.get("type") == "REGISTER_OK" for e in self.events):
                    return
            if "200 OK" in self.log_text():
                return
            time.sleep(0.05)
        raise RuntimeError(f"baresip did not register; log:\n{self.log_text()[-3000:]}")

    def _read_loop(self) -> None:
        sock = self._sock  # stop() sets the attribute to None while this thread may still be reading
        assert sock is not None
        buf = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                length = int(buf[:colon])
                end = colon + 1 + length
                if len(buf) < end + 1:
                    break
                payload, buf = buf[colon + 1 : end], buf[end + 1 :]
                self._dispatch(json.loads(payload))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        logger.debug("baresip %s ctrl: %s", self.user, msg)
        with self._cond:
            if msg.get("event"):
                self.events.append(msg)
            elif msg.get("response"):
                self._responses[str(msg.get("token", ""))] = msg
            self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Run a baresip command (``dial``, ``accept``, ``hangup``...) and return its response."""
        assert self._sock is not None, "baresip not started"
        with self._cond:
            self._token += 1
            token = f"t{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(_netstring(body))
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout):
                raise TimeoutError(f"baresip did not answer {command!r}")
            return self._responses.pop(token)

    def dial(self, uri: str) -> dict[str, Any]:
        return self.command("dial", uri)

    def accept(self) -> dict[str, Any]:
        return self.command("accept")

    def hangup(self) -> dict[str, Any]:
        return self.command("hangup")

    def transfer(self, uri: str) -> dict[str, Any]:
        """Blind-transfer the current call to ``uri`` (a REFER to the other party)."""
        return self.command("transfer", uri)

    def wait_for_event(self, event_type: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next not yet consumed event of this type (events before it of other types are kept)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self._consumed, len(self.events)):
                    if self.events[i].get("type") == event_type:
                        event = self.events.pop(i)
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [e.get("type") for e in self.events]
                    raise TimeoutError(f"no {event_type} from baresip within {timeout}s (seen {seen})")
                self._cond.wait(remaining)

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("type") == event_type]

    def received_dtmf(self) -> str:
        """Digits baresip reported as received (``CALL_DTMF_START`` events)."""
        return "".join(str(e.get("param", "")) for e in self.events_of("CALL_DTMF_START"))

    def recorded_wav_path(self, direction: str = "dec") -> Path | None:
        """Newest sndfile recording: ``dec`` = audio received from us, ``enc`` = audio sent to us."""
        files = sorted(self.record_dir.glob(f"*-{direction}.wav"), key=lambda p: p.stat().st_mtime)
        return files[-1] if files else None

    def log_text(self) -> str:
        return read_log(self.log_path)

    def kill(self) -> None:
        """End baresip at once (SIGKILL): a far end that crashes, with no BYE."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def freeze(self, frozen: bool = True) -> None:
        """Stop baresip where it is (SIGSTOP: no RTP, no BYE, its sockets still open), or let it go on."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        self.freeze(False)  # a frozen baresip would not read its quit command
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendall(_netstring(json.dumps({"command": "quit", "token": "q"}).encode()))
        if self._proc is not None:
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        logger.info("baresip %s stopped", self.user)
