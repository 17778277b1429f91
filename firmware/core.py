"""The core thread: owns the phone state, reads one inbox, runs ``step`` and carries out its effects.

Everything that happens to the phone (keys, hook, MQTT and socket commands, SIP facts, timers) is
posted to the inbox from its own thread; only this thread reads the state machine's state. Effects
are handed to parts through non-blocking calls, so the core never waits on another thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from firmware import effects as fx
from firmware.commands import Reply
from firmware.events import Event, utc_now
from firmware.inputs import Input, TimerFired
from firmware.phone import PhoneState, initial_effects, step
from firmware.timers import TimerExpiry, Timers

logger = logging.getLogger(__name__)


class Actuators(Protocol):
    """The hardware and SIP side of the effects; every method returns at once."""

    def play_tone(self, kind: str | None) -> None: ...
    def ring(self, pattern: str | None) -> None: ...
    def set_led(self, led: str, mode: str) -> None: ...
    def show_text(self, text: str) -> None: ...
    def place_call(self, call_id: str, number: str) -> None: ...
    def answer_call(self, call_id: str) -> None: ...
    def end_call(self, call_id: str, code: int | None) -> None: ...
    def redirect_call(self, call_id: str, number: str, reason: str) -> None: ...
    def send_dtmf(self, call_id: str, digit: str) -> None: ...
    def hold_call(self, call_id: str, hold: bool) -> None: ...
    def transfer_call(self, call_id: str, number: str | None, replaces: str | None) -> None: ...
    def route_audio(self, call_id: str | None, microphone: bool) -> None: ...


class Reporter(Protocol):
    """Where events and replies go (the CRM bridge, the log, the simulator's view)."""

    def publish_event(self, event: Event) -> None: ...
    def send_reply(self, reply: Reply) -> None: ...


class _Stop:
    pass


class PhoneCore:
    def __init__(
        self,
        state: PhoneState,
        actuators: Actuators,
        reporters: Iterable[Reporter],
        on_state: Callable[[PhoneState], None] = lambda state: None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.state = state
        self._actuators = actuators
        self._reporters = list(reporters)
        self._on_state = on_state
        self._clock = clock
        self._inbox: queue.SimpleQueue[Input | TimerExpiry | _Stop] = queue.SimpleQueue()
        self.timers = Timers(self.post)
        self.inputs_handled = 0

    def add_reporter(self, reporter: Reporter, first: bool = False) -> None:
        """One more receiver of events and replies, called before the others if ``first``; only before
        :meth:`run`."""
        self._reporters.insert(0 if first else len(self._reporters), reporter)

    def post(self, item: Input | TimerExpiry) -> None:
        """Hand an input to the core; safe from any thread, never blocks."""
        self._inbox.put(item)

    def stop(self) -> None:
        self._inbox.put(_Stop())

    def run(self, heartbeat: Callable[[], None] = lambda: None, heartbeat_s: float = 1.0) -> None:
        """Serve the inbox until :meth:`stop`; ``heartbeat`` runs at least every ``heartbeat_s``."""
        threading.current_thread().name = "core"
        self._carry_out(initial_effects(self.state))
        self._on_state(self.state)
        while True:
            heartbeat()
            try:
                item = self._inbox.get(timeout=heartbeat_s)
            except queue.Empty:
                continue
            if isinstance(item, _Stop):
                return
            if isinstance(item, TimerExpiry):
                if not self.timers.is_current(item):
                    continue
                item = TimerFired(item.name)
            self.handle(item)

    def handle(self, item: Input) -> None:
        """Run one input through the state machine and carry out the effects."""
        try:
            self.state, effects = step(self.state, item, self._clock())
        except Exception:
            logger.exception("state machine failed on %r; input dropped", type(item).__name__)
            return
        self.inputs_handled += 1
        self._carry_out(effects)
        self._on_state(self.state)

    def _carry_out(self, effects: Iterable[fx.Effect]) -> None:
        for effect in effects:
            try:
                self._carry_out_one(effect)
            except Exception:
                logger.exception("effect %r failed", effect)

    def _carry_out_one(self, effect: fx.Effect) -> None:
        act = self._actuators
        match effect:
            case fx.PlayTone(kind=kind):
                act.play_tone(kind)
            case fx.Ring(pattern=pattern):
                act.ring(pattern)
            case fx.SetLed(led=led, mode=mode):
                act.set_led(led, mode)
            case fx.ShowText(text=text):
                act.show_text(text)
            case fx.PlaceCall(call_id=call_id, number=number):
                act.place_call(call_id, number)
            case fx.AnswerCall(call_id=call_id):
                act.answer_call(call_id)
            case fx.EndCall(call_id=call_id, code=code):
                act.end_call(call_id, code)
            case fx.RedirectCall(call_id=call_id, number=number, reason=reason):
                act.redirect_call(call_id, number, reason)
            case fx.HoldCall(call_id=call_id, hold=hold):
                act.hold_call(call_id, hold)
            case fx.TransferCall(call_id=call_id, number=number, replaces=replaces):
                act.transfer_call(call_id, number, replaces)
            case fx.SendDtmf(call_id=call_id, digit=digit):
                act.send_dtmf(call_id, digit)
            case fx.RouteAudio(call_id=call_id, microphone=microphone):
                act.route_audio(call_id, microphone)
            case fx.StartTimer(name=name, seconds=seconds):
                self.timers.schedule(name, seconds)
            case fx.CancelTimer(name=name):
                self.timers.cancel(name)
            case fx.Emit(event=event):
                for reporter in self._reporters:
                    _guarded(reporter.publish_event, event)
            case fx.SendReply(reply=reply):
                for reporter in self._reporters:
                    _guarded(reporter.send_reply, reply)
            case _:
                logger.error("unknown effect %r", effect)


def _guarded(function: Callable[[object], None], argument: object) -> None:
    # A failing listener is logged, never fatal: the phone goes on.
    try:
        function(argument)
    except Exception:
        logger.exception("reporter %s failed", getattr(function, "__qualname__", function))
