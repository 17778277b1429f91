"""Give freed heap back to the system once the SIP transactions of past calls or of a flood are gone.

pjsip keeps a finished call's dialog, its INVITE session and their pools until the last transaction
ends: over UDP the BYE's server transaction waits Timer J (64 * T1 = 32 s) for retransmissions, and
every INVITE pjsua answered but a scanner never ACKed waits Timer H (32 s). Calls that follow each
other (the bench's latency runs: one every ~0.5 s) keep ~60 of them alive at once: 4-5 MiB in the
``sip`` thread's malloc arena. pjsip frees it all afterwards (a flood of 30 s at 500 INVITEs/s: ~100
MB), but glibc keeps the freed pages in its arenas, in holes between live blocks that no ordinary
``free`` returns; ``malloc_trim`` gives them back (docs/SIP.md "Memory").
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)


def trim_heap() -> bool | None:
    """``malloc_trim(0)`` where the C library has it (glibc): whether pages went back; None elsewhere.

    ``CDLL(None)`` is the process's own symbol table, libc included: ``ctypes.util.find_library`` would
    import subprocess and tempfile (~1 MiB of RSS, for a function that is there to give memory back)
    and run ``ldconfig``."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
