"""When to restart the media clock so that its ticks come just after the routed call's RTP packets.

The conference bridge takes a frame out of the call's jitter buffer at each tick of pjmedia's clock
(pjsua's null sound device). The far end sends one packet per frame on a clock of its own, so a packet
waits in the jitter buffer from its arrival to the next tick: 0-20 ms at 20 ms frames, fixed for the
call (both clocks run at the same rate) and arbitrary, because the clock started with the dial tone or
the call. pjmedia's clock ticks ``frame_ms`` after it was started (``clock_thread.c``), and pjsua's
``setNullDev`` starts a new one, so starting it again ``MARGIN_S`` after a packet arrives puts every
later tick ``MARGIN_S`` after a packet: the wait becomes the margin.

RTP is received on the ``sip`` thread (media shares its ioqueue), so the moment ``libHandleEvents``
returns with one more packet counted is that packet's arrival, to within the thread's own latency. A
late one of ``SAMPLES`` arrivals (``LATE_FRACTION`` of them are earlier, folded onto one frame period)
sets the phase: not the latest, which on a loaded machine is a stall of the thread's own, not the
packets' usual lateness. A packet later than the margin misses its
tick, and the restart itself leaves one interval between ticks longer than a frame: either way two
packets land between two ticks, pjmedia's burst estimate (``jbuf.c``) rises to two packets, and the
buffer holds one packet more (+1 frame of delay) until the estimate decays (21 calm ticks a step) and
progressive discard drops it (1-3 s). So the margin is a trade: a smaller one gains its difference on
a quiet machine and loses a frame at every late packet on a loaded one.

The clocks of a real far end and ours drift apart by up to ~100 ppm: the phase walks through a whole
frame in minutes, and the wait goes back to 0-20 ms. This helps the start of a call on a LAN phone, or
every call between clocks that agree; nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLES = 25
"""Packet arrivals looked at before choosing the phase (half a second at 20 ms frames)."""
LATE_FRACTION = 0.8
"""Where among the folded arrivals the phase is taken."""
MARGIN_S = 0.004
"""How long after that arrival the ticks come: room for the arrivals' own jitter."""


@dataclass
class ClockPhase:
    """On the ``sip`` thread: collects arrivals of the routed call's packets, then says when to restart
    the clock (once per routing)."""

    frame_s: float
    target: tuple[str, int] | None = None  # (call id, audio media index) being followed
    restart_at: float | None = None
    _arrivals: list[float] = field(default_factory=list)
    _packets: int | None = None

    def follow(self, call_id: str, media_index: int) -> None:
        """The bridge port was just connected to this call's audio: learn its packets' phase."""
        self.target = (call_id, media_index)
        self.restart_at = None
        self._arrivals.clear()
        self._packets = None

    def stop_following(self, call_id: str | None = None) -> None:
        if call_id is None or (self.target is not None and self.target[0] == call_id):
            self.target = None
            self.restart_at = None

    def packets_counted(self, packets: int, now: float) -> None:
        """After ``libHandleEvents`` returned: the followed stream's received-packet count at ``now``.
        Exactly one more packet than last time is an arrival at ``now``; more came together (a stall)
        and say nothing of their times."""
        if self.target is None or self.restart_at is not None:
            return
        previous, self._packets = self._packets, packets
        if previous is None or packets != previous + 1:
            return
        self._arrivals.append(now)
        if len(self._arrivals) < SAMPLES:
            return
        first = self._arrivals[0]
        half = self.frame_s / 2
        offsets = sorted((t - first + half) % self.frame_s - half for t in self._arrivals)
        late = first + offsets[int(LATE_FRACTION * (len(offsets) - 1))]
        at = late + MARGIN_S
        while at <= now:
            at += self.frame_s
        self.restart_at = at

    def restart_due(self, now: float) -> bool:
        """True once, when the clock is to be started again (then the call is no longer followed). Woken
        later than the margin allows, the restart waits for the same phase a frame or more on."""
        if self.restart_at is None or now < self.restart_at:
            return False
        late = now - self.restart_at
        if late > MARGIN_S:
            self.restart_at += (late // self.frame_s + 1) * self.frame_s
            return False
        self.target = None
        self.restart_at = None
        return True
