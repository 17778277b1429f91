"""The simulator's control socket: requests drive the panel, bad requests get a reason and change nothing."""

from __future__ import annotations

import json
import socket
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


@pytest.fixture
def panel() -> RecordingPanel:
    return RecordingPanel()


@pytest.fixture
def socket_path(tmp_path: Path, panel: RecordingPanel) -> Iterator[Path]:
    path = tmp_path / "sim.sock"
    server = SimControlServer(path, panel, lambda: {"phone_state": "idle"})
    server.start()
    yield path
    server.stop()
    assert not path.exists()


def test_hook_keys_and_state(socket_path: Path, panel: RecordingPanel) -> None:
    with SimClient(socket_path) as client:
        client.hook(True)
        client.keys("1002#")
        client.hook(False)
        assert client.state()["phone_state"] == "idle"
    assert panel.actions == ["lift", "1", "0", "0", "2", "#", "replace"]


@pytest.mark.parametrize(
    ("request_line", "reason"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"op": "explode"}\n', "unknown op"),
        (b'{"op": "keys", "keys": "12a"}\n', "0-9"),
        (b'{"op": "keys"}\n', "0-9"),
        (b'{"op": "hook", "state": "sideways"}\n', "'up' or 'down'"),
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
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "sim", "--socket", str(socket_path), "console"],
        input="u\n1002#\nx\nd\nq\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert panel.actions == ["lift", "1", "0", "0", "2", "#", "replace"]
    assert "[idle]" in result.stdout  # the state line after each command
    assert "commands:" in result.stdout  # "x" is not a command: the help is shown again
