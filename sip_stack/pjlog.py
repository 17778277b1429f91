"""Forward pjsip's log into Python logging (logger ``sip_stack.pjsip``)."""

from __future__ import annotations

import logging

import pjsua2 as pj

logger = logging.getLogger("sip_stack.pjsip")

# pjsip levels: 1 error, 2 warning, 3 info, 4 and up debug / message traces.
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}


class PjLogWriter(pj.LogWriter):
    """Called from any pjsip thread; does nothing but hand the line to ``logging``."""

    def write(self, entry: pj.LogEntry) -> None:
        level = _LEVELS.get(entry.level, logging.DEBUG)
        if logger.isEnabledFor(level):
            logger.log(level, "%s", entry.msg.rstrip())
