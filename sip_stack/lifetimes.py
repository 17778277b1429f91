"""The pjsua2 objects the user agent makes, tracked so that none outlives the endpoint.

pjsua2's C++ destructors call into pjsua: ``Call`` clears its slot's user data and may hang up,
``Account`` deletes its account, ``AudioMediaPort``, ``ToneGenerator`` and ``AudioMediaPlayer`` leave the
conference bridge (the player destroys its pjsua player).
A Python proxy owns its C++ object, so the destructor runs whenever and wherever the proxy is freed.
Run after ``libDestroy`` it works on freed pools and stale ids (the slot of a *later* endpoint's call or
account, in a process that makes more than one, as the tests do); run by Python's garbage collector
it runs on whichever thread happened to allocate at that moment. pjsua2 wants every object deleted
before ``libDestroy``, on the thread that owns the endpoint.

The agent registers each such object here when it makes it. Before ``libDestroy`` it drops its own
references in a fixed order and calls :meth:`PjObjects.close`: whatever is still alive then (held by
something outside the agent: a traceback, a test) is logged and *disowned*, so that its C++ object is
leaked rather than destroyed later. Every object freed on another thread, or after ``close``, is
logged as an error and counted in ``violations``.

Plain data objects (``CallInfo``, ``CallOpParam``, ``ByteVector``...) are not tracked: their
destructors free only their own memory.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PjObjects:
    """Weak references to the pjsua2 objects of one endpoint; created and closed on the ``sip`` thread."""

    def __init__(self) -> None:
        self._owner = threading.get_ident()
        self._refs: dict[int, tuple[weakref.ref[object], str]] = {}
        self._keys = itertools.count()
        self._disowned: set[int] = set()
        self._lock = threading.RLock()  # a callback may fire while close() holds it
        self.closed = False
        self.violations: list[str] = []

    def track(self, obj: T, what: str) -> T:
        """Register ``obj`` (``what`` names it in the log); returns it."""
        key = next(self._keys)
        ref = weakref.ref(obj, lambda _ref, key=key: self._freed(key))
        with self._lock:
            self._refs[key] = (ref, what)
        return obj

    def alive(self) -> list[str]:
        """The names of the tracked objects that are still alive."""
        with self._lock:
            return [what for ref, what in self._refs.values() if ref() is not None]

    def close(self) -> list[str]:
        """Just before ``libDestroy`` (``sip`` thread): disown what is still alive; their names."""
        survivors: list[str] = []
        with self._lock:
            self.closed = True
            for key, (ref, what) in self._refs.items():
                obj = ref()
                if obj is None:
                    continue
                obj.thisown = False  # type: ignore[attr-defined]  # SWIG: the proxy no longer deletes it
                self._disowned.add(key)
                survivors.append(what)
        for what in survivors:
            logger.error("pjsua2 %s still referenced at libDestroy: leaked instead of destroyed", what)
        return survivors

    def _freed(self, key: int) -> None:
        """Weak reference callback: runs on the thread that frees the proxy, before its C++ delete."""
        with self._lock:
            _ref, what = self._refs.pop(key, (None, "?"))
            if key in self._disowned:
                self._disowned.discard(key)
                return
            closed = self.closed
        where = threading.current_thread().name
        if closed:
            problem = f"pjsua2 {what} destroyed after libDestroy (thread {where})"
        elif threading.get_ident() != self._owner:
            problem = f"pjsua2 {what} destroyed on thread {where}, not on the sip thread"
        else:
            return
        self.violations.append(problem)
        logger.error("%s", problem)
