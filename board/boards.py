"""The boards we build for, as data. See docs/HARDWARE.md for the wiring of each."""

from __future__ import annotations

from board.description import BoardDescription

PHONE_KEYMAP = ("123", "456", "789", "*0#")

RPI_V1 = BoardDescription(
    name="rpi-v1",
    description="Raspberry Pi 4/5, USB or I2S handset codec, 4x3 keypad, hook switch, 2 LEDs, buzzer",
    pin_factory_default="lgpio",
    hook_pin=17,
    hook_active_low=True,
    hook_bounce_s=0.05,
    keypad_rows=(5, 6, 16, 26),
    keypad_cols=(22, 23, 24),
    keymap=PHONE_KEYMAP,
    key_debounce_s=0.02,
    key_scan_interval_s=0.005,
    key_settle_s=0.0001,
    line_led_pin=27,
    message_led_pin=25,
    led_blink_on_s=0.5,
    led_blink_off_s=0.5,
    ringer_pin=13,
    capture_device="plughw:CARD=Handset,DEV=0",
    playback_device="plughw:CARD=Handset,DEV=0",
    mixer_card="Handset",
    mixer_control="PCM",
)

SIM = BoardDescription(
    name="sim",
    description="Simulated board: gpiozero MockFactory pins, ALSA file-plugin PCMs (hal.sim_alsa)",
    pin_factory_default="mock",
    hook_pin=17,
    hook_active_low=True,
    hook_bounce_s=0.01,
    keypad_rows=(5, 6, 16, 26),
    keypad_cols=(22, 23, 24),
    keymap=PHONE_KEYMAP,
    key_debounce_s=0.01,
    key_scan_interval_s=0.005,
    key_settle_s=0.0,
    line_led_pin=27,
    message_led_pin=25,
    led_blink_on_s=0.5,
    led_blink_off_s=0.5,
    ringer_pin=13,
    capture_device="deskphone_sim_mic",
    playback_device="deskphone_sim_earpiece",
    mixer_card="",
    mixer_control="",
    audio_self_clocked=True,
)

BOARDS: dict[str, BoardDescription] = {board.name: board for board in (RPI_V1, SIM)}
