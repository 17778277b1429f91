"""The effects' hands: hardware (ringer, LEDs, display) and the SIP stack (calls, tones, DTMF)."""

from __future__ import annotations

from typing import Any, Protocol


class SipControl(Protocol):
    def make_call(self, call_id: str, number: str) -> None: ...
    def answer(self, call_id: str) -> None: ...
    def hangup(self, call_id: str, code: int | None = None) -> None: ...
    def redirect(self, call_id: str, number: str, reason: str) -> None: ...
    def send_dtmf(self, call_id: str, digits: str) -> None: ...
    def hold(self, call_id: str, hold: bool) -> None: ...
    def transfer(self, call_id: str, number: str | None = None, replaces: str | None = None) -> None: ...
    def play_tone(self, kind: str | None) -> None: ...
    def route_audio(self, call_id: str | None, microphone: bool) -> None: ...


class PhoneActuators:
    """Carries out effects on a ``hal.Hardware`` and a ``sip_stack.UserAgent``; never blocks."""

    def __init__(self, hardware: Any, sip: SipControl) -> None:
        self._hw = hardware
        self._sip = sip

    def play_tone(self, kind: str | None) -> None:
        self._sip.play_tone(kind)

    def ring(self, pattern: str | None) -> None:
        if pattern is None:
            self._hw.ringer.stop()
        else:
            self._hw.ringer.ring(pattern)

    def set_led(self, led: str, mode: str) -> None:
        indicator = self._hw.line_led if led == "line" else self._hw.message_led
        indicator.set(mode)

    def show_text(self, text: str) -> None:
        self._hw.display.show(text)

    def place_call(self, call_id: str, number: str) -> None:
        self._sip.make_call(call_id, number)

    def answer_call(self, call_id: str) -> None:
        self._sip.answer(call_id)

    def end_call(self, call_id: str, code: int | None) -> None:
        self._sip.hangup(call_id, code)

    def redirect_call(self, call_id: str, number: str, reason: str) -> None:
        self._sip.redirect(call_id, number, reason)

    def send_dtmf(self, call_id: str, digit: str) -> None:
        self._sip.send_dtmf(call_id, digit)

    def hold_call(self, call_id: str, hold: bool) -> None:
        self._sip.hold(call_id, hold)

    def transfer_call(self, call_id: str, number: str | None, replaces: str | None) -> None:
        self._sip.transfer(call_id, number, replaces)

    def route_audio(self, call_id: str | None, microphone: bool) -> None:
        self._sip.route_audio(call_id, microphone)
