"""The simulator's control socket: requests drive the panel, bad requests get a reason and change nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.sim_control import ControlError, SimClient, SimControlServer


class RecordingPanel:
    def __init__(self) -> None:
        self.actions: list[str] = []

    def lift(self) -> None:
        self.actions.append("lift")

    def replace(self) -> None:
        self.actions.append("replace")

    def press(self, key: str) -> None:
        self.actions.append(key)

    def flash(self, seconds: float | None = None) -> None:
        self.actions.append("flash" if seconds is None else f"flash {seconds:g}")


@pytest.fixture
def panel() -> RecordingPanel:
    return RecordingPanel()


@pytest.fixture
def phone_view() -> dict[str, Any]:
    """What the fake daemon's snapshot shows; a test changes it and calls ``notify_changed``."""
    return {"phone_state": "idle"}


@pytest.fixture
def server(tmp_path: Path, panel: RecordingPanel, phone_view: dict[str, Any]) -> Iterator[SimControlServer]:
    running = SimControlServer(tmp_path / "sim.sock", panel, lambda: dict(phone_view))
    running.start()
    yield running
    running.stop()
    assert not (tmp_path / "sim.sock").exists()


@pytest.fixture
def socket_path(server: SimControlServer, tmp_path: Path) -> Path:
    return tmp_path / "sim.sock"


def test_hook_keys_and_state(socket_path: Path, panel: RecordingPanel) -> None:
    with SimClient(socket_path) as client:
        client.hook(True)
        client.keys("1002#")
        client.flash()
        client.flash(0.3)
        client.hook(False)
        assert client.state()["phone_state"] == "idle"
    assert panel.actions == ["lift", "1", "0", "0", "2", "#", "flash", "flash 0.3", "replace"]


@pytest.mark.parametrize(
    ("request_line", "reason"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"op": "explode"}\n', "unknown op"),
        (b'{"op": "keys", "keys": "12a"}\n', "0-9"),
        (b'{"op": "keys"}\n', "0-9"),
        (b'{"op": "hook", "state": "sideways"}\n', "'up' or 'down'"),
        (b'{"op": "flash", "seconds": 0}\n', "above 0 and at most 5"),
        (b'{"op": "flash", "seconds": true}\n', "above 0 and at most 5"),
        (b'{"op": "flash", "seconds": 60}\n', "above 0 and at most 5"),
        (b'{"op": "watch"}\n', "'since' must be a version"),
        (b'{"op": "watch", "since": 0, "timeout": 3600}\n', "'timeout' must be"),
        (b'{"op": "keys", "keys": "' + b"1" * 5000 + b'"}\n', "longer than"),
    ],
)
def test_bad_requests_get_a_reason_and_change_nothing(
    socket_path: Path, panel: RecordingPanel, request_line: bytes, reason: str
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(socket_path))
        sock.sendall(request_line)
        answer: dict[str, Any] = json.loads(sock.makefile("rb").readline())
    assert answer["ok"] is False
    assert reason in answer["error"]
    assert panel.actions == []
    with SimClient(socket_path) as client:  # the server is still there
        assert client.state()["ok"] is True


def test_client_raises_control_error_with_the_reason(socket_path: Path) -> None:
    with SimClient(socket_path) as client, pytest.raises(ControlError, match="0-9"):
        client.keys("x")


def test_the_console_drives_the_panel_from_typed_lines(socket_path: Path, panel: RecordingPanel) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "sim", "--socket", str(socket_path), "console"],
        input="u\n1002#\nf\nx\nd\nq\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert panel.actions == ["lift", "1", "0", "0", "2", "#", "flash", "replace"]
    assert "[idle]" in result.stdout  # the state line
    assert "commands:" in result.stdout  # "x" is not a command: the help is shown again


def test_watch_answers_at_the_next_change_not_before(
    server: SimControlServer, socket_path: Path, phone_view: dict[str, Any]
) -> None:
    with SimClient(socket_path) as client:
        version = client.state()["version"]
        assert client.watch(version, timeout=0.2)["version"] == version  # no change: the timeout
        answer: dict[str, Any] = {}
        watching = threading.Thread(target=lambda: answer.update(client.watch(version, timeout=30)))
        watching.start()
        phone_view["phone_state"] = "ringing_in"
        server.notify_changed()
        watching.join(10)
        assert answer["phone_state"] == "ringing_in" and answer["version"] == version + 1


def test_the_console_redraws_the_state_line_when_the_phone_changes_by_itself(
    server: SimControlServer, socket_path: Path, phone_view: dict[str, Any]
) -> None:
    console = subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "sim", "--socket", str(socket_path), "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert console.stdout is not None
        line = ""
        while not line.startswith("[idle]"):
            line = console.stdout.readline()
        # a call rings in: nobody types anything, the console shows it
        phone_view.update(phone_state="ringing_in", ringer="normal", display="1002")
        server.notify_changed()
        redrawn = console.stdout.readline()
        assert redrawn.startswith("[ringing_in] ") and "ringer=normal" in redrawn and "1002" in redrawn
    finally:
        assert console.stdin is not None
        console.stdin.write("q\n")
        console.stdin.close()
        console.wait(10)


def test_sim_state_follow_prints_a_line_at_every_change(
    server: SimControlServer, socket_path: Path, phone_view: dict[str, Any]
) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "sim", "--socket", str(socket_path), "state", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        line = ""
        while line != "}\n":  # the JSON state first
            line = follower.stdout.readline()
            assert line, "sim state ended"
        phone_view.update(phone_state="ringing_in", ringer="normal")
        server.notify_changed()
        assert follower.stdout.readline().startswith("[ringing_in] ")
    finally:
        follower.terminate()
        follower.wait(10)
