"""Endpoint teardown: no pjsua2 object is destroyed after libDestroy or on another thread.

Each cycle of the stress run starts a user agent (no servers: its registration just fails), plays a
tone (the media clock runs, our bridge port is called from it), places a call and stops. Two things
that happen in real processes are forced on every cycle: an ``on_event`` handler that raises, whose
logged traceback keeps the call's Python proxy alive in a handler that keeps its records (as pytest's
log capture does), and Python's automatic garbage collection at every allocation on every thread.
The cycles run in a child process with faulthandler, so that a crash is a failure with its stack.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pjsua2")

REPO = Path(__file__).resolve().parents[2]
CYCLES = int(os.environ.get("TEARDOWN_CYCLES", "6"))


class KeepRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _held_calls(records: list[logging.LogRecord]) -> list[object]:
    """The pjsua2 Call proxies that the kept tracebacks hold (in the frames they reference)."""
    import pjsua2 as pj

    found: list[object] = []
    for record in records:
        tb = record.exc_info[2] if record.exc_info else None
        frame = tb.tb_frame if tb is not None else None
        while frame is not None:
            found += [v for v in frame.f_locals.values() if isinstance(v, pj.Call) and v not in found]
            frame = frame.f_back
    return found


def _cycles(count: int) -> None:
    from lab.servers.ports import free_port
    from sip_stack import SipSettings
    from sip_stack.agent import UserAgent
    from sip_stack.events import OutgoingCallStarted

    kept = KeepRecords()
    logging.getLogger().addHandler(kept)
    logging.getLogger().setLevel(logging.INFO)
    gc.set_threshold(1, 1, 1)  # collect at every allocation, on whichever thread allocates
    started = threading.Event()

    def on_event(event: object) -> None:
        if isinstance(event, OutgoingCallStarted):
            started.set()
            raise RuntimeError("a handler that fails")  # its logged traceback holds the call

    held: list[object] = []
    for cycle in range(count):
        dead = f"127.0.0.1:{free_port()}"
        settings = SipSettings(registrar=dead, user="t", password="x", bind_address="127.0.0.1")
        ua = UserAgent(settings, on_event)
        ua.start(timeout=60)
        ua.play_tone("dial")
        assert ua.audio.wait_for_media(30), "the media clock did not start"
        ua.audio.read_earpiece_frame()
        started.clear()
        ua.make_call(f"c{cycle}", "1002")
        assert started.wait(30), "the call did not start"
        ua.stop(timeout=60)
        calls = _held_calls(kept.records)
        assert calls, "no traceback held the call: the test lost its point"
        held += [c for c in calls if c not in held]
        owned = [c for c in held if c.thisown]  # type: ignore[attr-defined]
        assert not owned, f"cycle {cycle}: a Call proxy still owns its C++ object after libDestroy"
        print(f"cycle {cycle}: stopped, {len(held)} held calls disowned", flush=True)
    # Dropping the last references now (after every endpoint is gone) runs no pjsua2 destructor.
    del held, calls
    kept.records.clear()
    gc.collect()
    time.sleep(0.1)
    print("teardown stress: done", flush=True)


def test_teardown_destroys_every_pjsua2_object_on_the_sip_thread_before_libdestroy() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", __file__, str(CYCLES)],
        capture_output=True,
        text=True,
        timeout=120 + 30 * CYCLES,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "teardown stress: done" in proc.stdout
    # The tracker saw the one call each cycle that a traceback kept, and leaked it rather than let it
    # be destroyed later; nothing of ours was destroyed after libDestroy or off the sip thread.
    assert len(re.findall(r"pjsua2 Call still referenced at libDestroy", output)) >= CYCLES, output[-6000:]
    assert "destroyed after libDestroy" not in output, output[-6000:]
    assert "not on the sip thread" not in output, output[-6000:]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(threadName)s %(levelname)s %(name)s: %(message)s")
    _cycles(int(sys.argv[1]))
