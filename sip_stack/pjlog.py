"""Forward pjsip's log into Python logging (logger ``sip_stack.pjsip``), at a bounded rate.

pjsua logs a few lines for every call, and pjsip every packet it cannot parse, whole, as an error: a
flood would write megabytes a minute to the phone's SD card. Past ``BURST`` lines, at most
``LINES_PER_S`` a second go through, errors included; the number left out is logged with the next
line that does.
"""

from __future__ import annotations

import logging
import threading
import time

import pjsua2 as pj

logger = logging.getLogger("sip_stack.pjsip")

# pjsip levels: 1 error, 2 warning, 3 info, 4 and up debug / message traces.
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}
BURST = 200
LINES_PER_S = 20.0


class PjLogWriter(pj.LogWriter):
    """Called from any pjsip thread; does nothing but hand the line to ``logging``."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._tokens = float(BURST)
        self._at = time.monotonic()
        self._left_out = 0

    def write(self, entry: pj.LogEntry) -> None:
        level = _LEVELS.get(entry.level, logging.DEBUG)
        if not logger.isEnabledFor(level):
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(BURST, self._tokens + (now - self._at) * LINES_PER_S)
            self._at = now
            if self._tokens < 1.0:
                self._left_out += 1
                return
            self._tokens = max(0.0, self._tokens - 1.0)
            left_out, self._left_out = self._left_out, 0
        if left_out:
            logger.warning("%d pjsip log lines left out (more than %d a second)", left_out, LINES_PER_S)
        logger.log(level, "%s", entry.msg.rstrip())
