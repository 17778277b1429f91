"""Which incoming INVITEs the phone takes on, decided before pjsua gives them any media.

A SIP scanner's burst of INVITEs (each with an SDP offer, each CANCELled at once) made pjsua open an
RTP and an RTCP socket per INVITE; pjmedia's ioqueue holds 64 sockets and keeps a closed one for
500 ms before reuse, so a few dozen INVITEs within half a second aborted the process (an assertion in
``pj_ioqueue_register_sock2``). The user agent asks ``Admission.decide`` about every INVITE before
pjsua creates anything for it (``sip_stack.prefilter``, or ``onSelectAccount`` as the fallback); a
refused INVITE is answered at once with the refusal's code, without ringing and without reaching the
firmware. In order:

1. ``403`` from a source that is not the registrar or a trusted PBX, when ``only_from_pbx`` is on
   ("accept SIP only from the PBX", the protection against ghost calls);
2. ``404`` for a Request-URI user that is not ours (a scanner, or a misrouted call);
3. ``486`` when ``max_calls`` calls are up already;
4. ``486`` when more than ``ADMISSIONS_BURST`` INVITEs, refilled at ``ADMISSIONS_PER_S``, were taken
   on lately: the bound on how fast calls (and their sockets) can be made. The registrar's own
   signalling address (host and port) has a bucket of its own, so that a flood sent from the PBX's
   host (a spoofer, another process on it) does not use up the rate of the PBX's real calls.

Refusals are logged once per source and then summed up every ``SUMMARY_INTERVAL_S``, so a flood
does not flood the log.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

ADMISSIONS_BURST = 4
ADMISSIONS_PER_S = 4.0
SUMMARY_INTERVAL_S = 10.0
FLOOD_REFUSALS = 100  # refusals that make a flood, after which the heap is trimmed once it is over
QUIET_BEFORE_TRIM_S = 40.0  # Timer H / J (64 * T1 = 32 s) ended the last refused INVITE's or call's tsx
MAX_CALLS_LIMIT = 12
"""pjmedia's ioqueue (64 sockets) holds 2 per live call plus 2 per call ended in the last 500 ms: with
two buckets at the admission rate above that is at most 2 * 12 + 2 * 2 * (4 + 4 * 0.5) = 48 sockets."""


@dataclass(frozen=True)
class Refusal:
    code: int
    reason: str
    why: str  # the counter it is summed up under: "untrusted", "not_for_us", "busy", "rate"


UNTRUSTED = Refusal(403, "Forbidden", "untrusted")
NOT_FOR_US = Refusal(404, "Not Found", "not_for_us")
BUSY = Refusal(486, "Busy Here", "busy")
TOO_FAST = Refusal(486, "Busy Here", "rate")


def split_host(address: str) -> str:
    """The host of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``, lowercased."""
    address = address.strip().lower()
    if address.startswith("["):
        return address[1 : address.index("]")] if "]" in address else address
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


def host_matches(source_host: str, entries: Iterable[str]) -> bool:
    """Whether ``source_host`` is one of ``entries``: host names or addresses, or CIDR networks."""
    host = split_host(source_host)
    for entry in entries:
        if host == split_host(entry):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


class TokenBucket:
    def __init__(self, burst: int, per_s: float, clock: Callable[[], float]) -> None:
        self.burst = burst
        self.per_s = per_s
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Admission:
    """The decision for one INVITE; owned by the ``sip`` thread (no locking).

    ``trusted`` are the hosts (names, addresses, CIDR networks) INVITEs may come from when
    ``only_from_pbx`` is on: the registrar's addresses and the trusted PBX list. Host names are
    compared as given; the user agent adds the registrar's resolved addresses with ``trust``.
    """

    def __init__(
        self,
        user: str,
        trusted: Iterable[str],
        *,
        only_from_pbx: bool = True,
        max_calls: int = 4,
        registrar_port: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= max_calls <= MAX_CALLS_LIMIT:
            raise ValueError(f"max_calls must be 1..{MAX_CALLS_LIMIT}, not {max_calls}")
        self.user = user
        self.trusted = list(trusted)
        self.only_from_pbx = only_from_pbx
        self.max_calls = max_calls
        self._clock = clock
        self._bucket = TokenBucket(ADMISSIONS_BURST, ADMISSIONS_PER_S, clock)
        self._registrar_bucket = TokenBucket(ADMISSIONS_BURST, ADMISSIONS_PER_S, clock)
        self.registrar_port = registrar_port
        self.registrar_hosts: set[str] = set()
        self._refused: Counter[str] = Counter()
        self._sources_logged: set[str] = set()
        self._summary_at = clock() + SUMMARY_INTERVAL_S
        self.totals: Counter[str] = Counter()
        self._refused_since_trim = 0
        self._last_refusal_at = 0.0

    def trust(self, hosts: Iterable[str], registrar: bool = False) -> None:
        """Trust ``hosts`` too; ``registrar``: they are the registrar's (its own rate bucket)."""
        for host in hosts:
            if host not in self.trusted:
                self.trusted.append(host)
            if registrar:
                self.registrar_hosts.add(split_host(host))

    def decide(self, source: str, request_user: str | None, calls_up: int) -> Refusal | None:
        """None to take the INVITE on, or the refusal to answer it with."""
        refusal = self._refusal(source, request_user, calls_up)
        self.totals["refused" if refusal else "admitted"] += 1
        if refusal is not None:
            self._note(refusal, source)
        return refusal

    def room_for_call(self, calls_up: int) -> bool:
        return calls_up < self.max_calls

    def _refusal(self, source: str, request_user: str | None, calls_up: int) -> Refusal | None:
        if self.only_from_pbx and not host_matches(source, self.trusted):
            return UNTRUSTED
        if request_user is not None and request_user != self.user:
            return NOT_FOR_US
        if not self.room_for_call(calls_up):
            return BUSY
        bucket = self._registrar_bucket if self._from_registrar(source) else self._bucket
        if not bucket.take():
            return TOO_FAST
        return None

    def _from_registrar(self, source: str) -> bool:
        port = source.rsplit(":", 1)[1] if source.count(":") == 1 or "]:" in source else ""
        return split_host(source) in self.registrar_hosts and port == str(self.registrar_port)

    def heap_trim_due(self) -> bool:
        """True once after a flood: ``QUIET_BEFORE_TRIM_S`` after the last of ``FLOOD_REFUSALS``."""
        if self._refused_since_trim < FLOOD_REFUSALS:
            return False
        if self._clock() - self._last_refusal_at < QUIET_BEFORE_TRIM_S:
            return False
        self._refused_since_trim = 0
        return True

    def _note(self, refusal: Refusal, source: str) -> None:
        self._refused[refusal.why] += 1
        self._refused_since_trim += 1
        self._last_refusal_at = self._clock()
        host = split_host(source)
        if host not in self._sources_logged and len(self._sources_logged) < 100:
            self._sources_logged.add(host)
            logger.info("INVITE from %s refused with %d (%s); more are summed up", source, refusal.code,
                        refusal.why)  # fmt: skip
        self.flush_summary()

    def housekeeping_pending(self) -> bool:
        """True while refusals wait for their summary or a flood for its heap trim (look every second)."""
        return bool(self._refused) or self._refused_since_trim >= FLOOD_REFUSALS

    def flush_summary(self, force: bool = False) -> None:
        """Log the refusals counted since the last summary, at most every ``SUMMARY_INTERVAL_S``."""
        now = self._clock()
        if not self._refused or (now < self._summary_at and not force):
            return
        counts = ", ".join(f"{why} {n}" for why, n in sorted(self._refused.items()))
        logger.warning("refused %d INVITEs since the last summary (%s)", sum(self._refused.values()), counts)
        self._refused.clear()
        self._summary_at = now + SUMMARY_INTERVAL_S
