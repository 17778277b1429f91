"""Give freed heap back to the system after a flood of SIP requests.

Every INVITE pjsua answers keeps its transaction, dialog and pools for Timer H (32 s) waiting for an
ACK a scanner never sends: a flood of 30 s at 500 INVITEs/s grows the heap by ~100 MB. pjsua frees it
all afterwards, but glibc keeps the freed pages in its arenas; ``malloc_trim`` returns them.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def trim_heap() -> bool:
    """``malloc_trim(0)`` where the C library has it (glibc); False elsewhere."""
    import ctypes
    import ctypes.util  # subprocess, tempfile...: ~5 ms that the phone's start need not pay

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    released = bool(trim(0))
    logger.info("heap trimmed after a flood of INVITEs (pages given back: %s)", "yes" if released else "none")
    return True
