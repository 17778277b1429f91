"""The simulated board's control socket: a UNIX socket speaking JSON lines.

One request per line, one JSON answer per line. People (``deskphone sim``) and tests use it to act on
the simulated hardware (lift or replace the handset, press keys) and to read back what the phone
shows (state, LEDs, ringer, display, audio counters, recent events).

Threads: ``sim-control`` accepts connections; each connection is served by its own short-lived
``sim-client`` thread. Requests only drive mock pins or read snapshots the core thread published,
so no thread here ever waits on the core. ``watch`` waits (bounded) for the core to say that the phone
changed (``notify_changed``, which never blocks it), so a client shows each change as it happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
KEYS = set("0123456789*#")
MAX_WATCH_S = 60.0


class Panel(Protocol):
    def lift(self) -> None: ...
    def replace(self) -> None: ...
    def flash(self, seconds: float | None = None) -> None: ...
    def press(self, key: str) -> None: ...


class ControlError(ValueError):
    """A request the control socket cannot carry out; the message is sent back to the client."""


class SimControlServer:
    def __init__(self, path: Path, panel: Panel, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._path = path
        self._panel = panel
        self._snapshot = snapshot
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._version = 0  # how many times the phone changed since the server started

    def notify_changed(self) -> None:
        """The phone changed (state, LEDs, ringer, display...): wake the watchers. Any thread, never blocks
        for long."""
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def _watch(self, request: dict[str, Any]) -> dict[str, Any]:
        since = request.get("since")
        timeout = request.get("timeout", 30.0)
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise ControlError("watch: 'since' must be a version (an integer >= 0) from an earlier answer")
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 <= timeout <= MAX_WATCH_S
        ):
            raise ControlError(f"watch: 'timeout' must be a number of seconds from 0 to {MAX_WATCH_S:.0f}")
        with self._changed:
            self._changed.wait_for(lambda: self._version > since, timeout)
            version = self._version
        return {**self._snapshot(), "version": version}

    def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._path.exists():
            self._path.unlink()
        handler = _make_handler(self.handle)
        self._server = socketserver.ThreadingUnixStreamServer(str(self._path), handler)
        self._server.daemon_threads = True
        os.chmod(self._path, 0o660)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-control", daemon=True)
        self._thread.start()
        logger.info("simulator control socket at %s", self._path)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._path.unlink(missing_ok=True)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out one request; raises ControlError with a reason for a bad one."""
        op = request.get("op")
        if op == "hook":
            state = request.get("state")
            if state == "up":
                self._panel.lift()
            elif state == "down":
                self._panel.replace()
            else:
                raise ControlError("hook: 'state' must be 'up' or 'down'")
            return {}
        if op == "flash":
            seconds = request.get("seconds")
            if seconds is not None and (
                isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 5
            ):
                raise ControlError("flash: 'seconds' must be a number of seconds, above 0 and at most 5")
            self._panel.flash(seconds)
            return {}
        if op == "keys":
            keys = request.get("keys")
            if not isinstance(keys, str) or not keys or not set(keys) <= KEYS:
                raise ControlError("keys: 'keys' must be a non-empty string of 0-9, * and #")
            for key in keys:
                self._panel.press(key)
            return {}
        if op == "state":
            with self._changed:
                version = self._version
            return {**self._snapshot(), "version": version}
        if op == "watch":
            return self._watch(request)
        raise ControlError(f"unknown op {op!r}; known: hook, flash, keys, state, watch")


def _make_handler(
    handle: Callable[[dict[str, Any]], dict[str, Any]],
) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            threading.current_thread().name = "sim-client"
            for line in self.rfile:
                self.wfile.write((json.dumps(_answer(handle, line)) + "\n").encode())
                self.wfile.flush()

    return Handler


def _answer(handle: Callable[[dict[str, Any]], dict[str, Any]], line: bytes) -> dict[str, Any]:
    if len(line) > MAX_REQUEST_BYTES:
        return {"ok": False, "error": f"request longer than {MAX_REQUEST_BYTES} bytes"}
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        return {"ok": False, "error": f"not JSON: {exc}"}
    if not isinstance(request, dict):
        return {"ok": False, "error": "request must be a JSON object"}
    try:
        return {"ok": True, **handle(request)}
    except ControlError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # the socket must outlive any bad request
        logger.exception("sim control request failed")
        return {"ok": False, "error": f"internal error: {exc}"}


class SimClient:
    """Client side of the control socket, for the CLI, tests and benchmarks."""

    def __init__(self, path: Path | str, timeout: float = 5.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(str(path))
        self._file = self._sock.makefile("rwb")

    def request(self, **request: Any) -> dict[str, Any]:
        self._file.write((json.dumps(request) + "\n").encode())
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise ConnectionError("control socket closed")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise ControlError(answer.get("error", "unknown error"))
        return answer

    def hook(self, up: bool) -> None:
        self.request(op="hook", state="up" if up else "down")

    def flash(self, seconds: float | None = None) -> None:
        """A hook flash (the handset down briefly and up again), ``seconds`` long or the board's."""
        self.request(op="flash") if seconds is None else self.request(op="flash", seconds=seconds)

    def keys(self, keys: str) -> None:
        self.request(op="keys", keys=keys)

    def state(self) -> dict[str, Any]:
        return self.request(op="state")

    def watch(self, since: int, timeout: float = 30.0) -> dict[str, Any]:
        """The state once the phone changed after ``version`` ``since`` (or after ``timeout`` seconds)."""
        previous = self._sock.gettimeout()
        self._sock.settimeout(timeout + (previous or 5.0))
        try:
            return self.request(op="watch", since=since, timeout=timeout)
        finally:
            self._sock.settimeout(previous)

    def close(self) -> None:
        # Shut the socket down first: it wakes a thread still reading from it (a ``watch``), which
        # would otherwise hold the file's lock until its answer came.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._file.close()
        self._sock.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
