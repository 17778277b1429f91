"""Builds the whole set of devices for one board on one pin factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gpiozero.pins import Factory

from board import BoardDescription
from hal.audio import AlsaAudioPath, AudioSettings, PcmOpener, open_alsa_pcm
from hal.display import LogDisplay
from hal.hook import GpioHookSwitch
from hal.indicator import GpioIndicator
from hal.keypad import MatrixKeypad
from hal.protocols import AudioPath, Display, HookSwitch, Indicator, Keypad, Ringer
from hal.ringer import GpioRinger

logger = logging.getLogger(__name__)


@dataclass
class Hardware:
    """Every device of the phone; :meth:`close` releases each pin and PCM, in reverse order of creation."""

    board: BoardDescription
    hook: HookSwitch
    keypad: Keypad
    line_led: Indicator
    message_led: Indicator
    ringer: Ringer
    display: Display
    audio: AudioPath

    def close(self) -> None:
        for part in (
            self.audio,
            self.display,
            self.ringer,
            self.message_led,
            self.line_led,
            self.keypad,
            self.hook,
        ):
            try:
                part.close()
            except Exception:
                logger.exception("closing %s failed", type(part).__name__)


def build_hardware(
    board: BoardDescription,
    pin_factory: Factory,
    audio_settings: AudioSettings | None = None,
    pcm_opener: PcmOpener = open_alsa_pcm,
) -> Hardware:
    """Make every device of ``board`` on ``pin_factory`` (never gpiozero's global default).

    Nothing starts here: call ``keypad.start()`` and ``audio.start(...)`` when the consumers are ready.
    """
    logger.info("building hardware for board %s on %s", board.name, type(pin_factory).__name__)
    made: list[object] = []
    try:
        hook = GpioHookSwitch(board, pin_factory)
        made.append(hook)
        keypad = MatrixKeypad(board, pin_factory)
        made.append(keypad)
        blink = (board.led_blink_on_s, board.led_blink_off_s)
        line_led = GpioIndicator("line", board.line_led_pin, pin_factory, *blink)
        made.append(line_led)
        message_led = GpioIndicator("message", board.message_led_pin, pin_factory, *blink)
        made.append(message_led)
        ringer = GpioRinger(board.ringer_pin, pin_factory)
        made.append(ringer)
    except Exception:
        for part in reversed(made):
            part.close()  # type: ignore[attr-defined]
        raise
    return Hardware(
        board=board,
        hook=hook,
        keypad=keypad,
        line_led=line_led,
        message_led=message_led,
        ringer=ringer,
        display=LogDisplay(),
        audio=AlsaAudioPath(board, audio_settings, pcm_opener),
    )
