"""Ending a daemon the lab started: SIGTERM and a grace period, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> int | None:
    """Stop ``proc`` as systemd would (SIGTERM, SIGKILL after ``timeout``); its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL ``proc`` if it still runs (a crash or power cut, as the fault tests want it)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
