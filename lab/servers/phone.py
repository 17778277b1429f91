"""The phone daemon itself, on the simulated board, as a subprocess a test can drive and kill."""

from __future__ import annotations

import compileall
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.sim_control import SimClient
from lab.servers import process
from lab.servers.baresip import Baresip
from lab.servers.files import read_log, write_private
from lab.servers.ports import LOOPBACK, free_port

PHONE_USER = "1001"
PHONE_PASSWORD = "phone-pw-7f3a"
# glibc's allocator as deploy/deskphone.service leaves it (docs/SIP.md "Memory"): its defaults.
# MALLOC_ARENA_MAX=2 with fixed mmap/trim thresholds saved 0.3-0.4 MiB idle but kept 1.2 MiB more
# after the SIP flood test (+8.1% against +5.6%), so neither sets it; the lab measures what the board runs.
ALLOCATOR_ENV: dict[str, str] = {}


def phone_config_text(
    workdir: Path,
    registrar: str,
    sip_port: int,
    *,
    device_id: str = "desk-test",
    user: str = PHONE_USER,
    password: str = PHONE_PASSWORD,
    mqtt_port: int | None = None,
    mqtt_options: str = "",
    mic_file: Path | None = None,
    dialplan: str = "interdigit_timeout_s = 2",
    log_level: str = "DEBUG",
    sip_extra: str = "",
    extra: str = "",
) -> str:
    """The phone's config; ``sip_extra`` are more lines of its ``[sip]`` table, ``extra`` more tables."""
    mqtt = (
        f'enabled = true\nhost = "{LOOPBACK}"\nport = {mqtt_port}\n{mqtt_options}'
        if mqtt_port
        else "enabled = false\n"
    )
    mic = f'mic_file = "{mic_file}"\n' if mic_file else ""
    return f"""[device]
id = "{device_id}"

[board]
name = "sim"

[sim]
control_socket = "{workdir}/sim.sock"
earpiece_file = "{workdir}/earpiece.raw"
asoundrc = "{workdir}/asoundrc"
{mic}
[sip]
registrar = "{registrar}"
user = "{user}"
password = "{password}"
local_port = {sip_port}
bind_address = "{LOOPBACK}"
media_port = {free_port()}
retry_interval_s = 2
trusted_pbx = ["{LOOPBACK}"]
{sip_extra}

[dialplan]
{dialplan}

[mqtt]
{mqtt}
[storage]
dir = "{workdir}/state"

[log]
level = "{log_level}"
{extra}
"""


@dataclass
class PhoneProcess:
    """``deskphone run`` on the sim board; ``client`` is its control socket.

    ``argv`` replaces the default command (this checkout's firmware with ``config_text`` written to
    ``workdir``): e.g. an installed phone's service command, its config already in place. ``env`` is
    added to this process's environment (default: the service's allocator settings). ``launcher``
    replaces the default command's interpreter and module (``python -m firmware.cli``), e.g. a bench
    wrapper that time-stamps the phone's hops (``bench.phone_trace``).
    """

    workdir: Path
    config_text: str
    sip_port: int
    argv: list[str] | None = None
    launcher: list[str] | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(ALLOCATOR_ENV))
    proc: subprocess.Popen[bytes] | None = None
    _client: SimClient | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.workdir / "deskphone.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "phone.log"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "sim.sock"

    @property
    def media_port(self) -> int:
        """The first RTP port of the phone (pjsua2 takes its media ports from there upwards)."""
        match = re.search(r"^media_port = (\d+)$", self.config_text, re.MULTILINE)
        assert match is not None, "no media_port in the phone's config"
        return int(match.group(1))

    @property
    def earpiece_path(self) -> Path:
        return self.workdir / "earpiece.raw"

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if argv is None:
            compile_checkout()
            write_private(self.config_path, self.config_text)
            launcher = self.launcher or [sys.executable, "-m", "firmware.cli"]
            argv = [*launcher, "run", "--config", str(self.config_path)]
        self.socket_path.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"phone exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if self.socket_path.exists():
                with contextlib.suppress(OSError):
                    self._client = SimClient(self.socket_path)
                    return
            time.sleep(0.05)
        process.kill(self.proc)  # not left running behind a failed start (nothing else holds its pid)
        raise RuntimeError(f"phone did not start:\n{self.log_text()[-3000:]}")

    @property
    def client(self) -> SimClient:
        assert self._client is not None, "phone not started"
        return self._client

    def state(self) -> dict[str, Any]:
        return self.client.state()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, what: str = "condition"
    ) -> dict[str, Any]:
        """Poll the control socket until ``predicate(state)`` holds; the state that satisfied it."""
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, (
                "phone died:\n" + self.log_text()[-3000:]
            )
            state = self.state()
            if predicate(state):
                return state
            time.sleep(0.05)
        raise TimeoutError(f"phone: no {what} within {timeout}s; last state {_brief(state)}")

    def wait_mode(self, mode: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for(lambda s: s["phone_state"] == mode, timeout, f"mode {mode}")

    def wait_event(self, event_type: str, timeout: float = 10.0, nth: int = 1) -> dict[str, Any]:
        state = self.wait_for(
            lambda s: len(events_of(s, event_type)) >= nth, timeout, f"event {event_type} #{nth}"
        )
        return events_of(state, event_type)[nth - 1]

    def call_and_hang_up(self, far: Baresip, number: str) -> None:
        """Lift, dial ``number``, wait until the auto-answering ``far`` and the phone are in the call,
        hang up and wait until ``far`` saw the call close."""
        self.client.hook(True)
        self.wait_mode("dialing")
        self.client.keys(f"{number}#")
        far.wait_for_event("CALL_ESTABLISHED", timeout=10)
        self.wait_mode("in_call")
        self.client.hook(False)
        far.wait_for_event("CALL_CLOSED", timeout=10)

    def log_text(self) -> str:
        return read_log(self.log_path)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None
        return process.terminate(self.proc, timeout)

    def kill(self) -> None:
        process.kill(self.proc)
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None


_PHONE_PACKAGES = ("board", "configschema", "crm_bridge", "firmware", "hal", "sip_stack")
_compiled = False


def compile_checkout() -> None:
    """Byte-compile this checkout's phone packages once per process, as pip does when it installs the
    phone's wheel: under PYTHONDONTWRITEBYTECODE (or on a read-only tree) every start of the phone
    would compile them again from source (~150 ms here before its first REGISTER)."""
    global _compiled
    if _compiled:
        return
    root = Path(__file__).resolve().parents[2]
    for package in _PHONE_PACKAGES:
        compileall.compile_dir(root / package, quiet=1)
    _compiled = True


def events_of(state: dict[str, Any], event_type: str) -> list[dict[str, Any]]:
    return [e for e in state.get("events", []) if e["type"] == event_type]


def _brief(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state.get(k) for k in ("phone_state", "registered", "hook", "leds", "ringer", "display")} | {
        "events": [e["type"] for e in state.get("events", [])]
    }
