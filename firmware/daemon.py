"""The daemon: builds the parts from the config, starts them in dependency order, serves the core
thread, and stops them in reverse order inside ``finally``.

Start order: storage, SIP user agent (its REGISTER first: the rest is imported after it), CRM bridge
(when configured: connected before the rest is imported; what it and the line report meanwhile waits
for the core), board and pins, (sim) ALSA config and panel, hardware, core and timers, audio path,
input callbacks, (sim) control socket; then READY for systemd.
An initialisation error prints one clear line and exits 1.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import board as boards
import sip_stack
from firmware import __version__, systemd
from firmware.config import Config, config_warnings, load_config_or_report
from firmware.logs import configure as configure_logging

# The state machine, the vocabulary and the reporters (their dataclasses, ~40 ms) are imported after
# the REGISTER has gone out, in _start_parts.
if TYPE_CHECKING:
    from collections.abc import Callable

    import hal
    from firmware import commands as cmd
    from firmware.core import PhoneCore
    from firmware.events import CallRecord
    from firmware.line_settings import LineSettings, LineSettingsStore
    from firmware.phone import PhoneState
    from firmware.reporters import RecentEvents

logger = logging.getLogger(__name__)

AVAILABILITY = {
    "idle": "idle",
    "ringing_in": "ringing",
    "alerting": "ringing",
    "dialing": "busy",
    "outgoing": "busy",
    "in_call": "busy",
    "ended": "busy",
}


class StartupError(RuntimeError):
    """A part could not start; the message is the one line the user sees."""


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.board = boards.get_board(config.board.name)
        self._parts = contextlib.ExitStack()
        self._state: PhoneState | None = None
        self._published_status: tuple[bool, str, dict[str, Any]] | None = None
        self._line_settings: LineSettingsStore | None = None
        self._kept_settings: LineSettings | None = None
        self.recent: RecentEvents | None = None
        self.core: PhoneCore | None = None
        self._early_lock = threading.Lock()
        self._early: list[Callable[[], None]] = []  # SIP events and commands that came before the core
        self.hardware: Any = None
        self.sip: Any = None
        self.bridge: Any = None
        self.panel: Any = None
        self.control: Any = None  # the sim board's control socket

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start_parts()
        except BaseException:
            self._parts.close()
            raise
        # What start-up made (modules, pjsua2's wrappers, the parts) lives as long as the process: out
        # of the collector's sight, a full collection (the sip thread runs one after each call, holding
        # the GIL) scans only what came later. It took ~25 ms before, delaying call.ended as long.
        gc.collect()
        gc.freeze()
        gc.enable()  # `deskphone run` starts without it (firmware.cli)

    def _start_parts(self) -> None:
        config = self.config
        storage = config.storage.dir
        storage.mkdir(parents=True, exist_ok=True, mode=0o700)

        # The line first: the REGISTER goes out before the rest is imported and built (gpiozero, the
        # state machine, the CRM bridge). What the sip thread reports meanwhile waits for the core.
        self.sip = sip_stack.UserAgent(self._sip_settings(), self._on_sip_event)
        try:
            self.sip.start()
        except RuntimeError as exc:
            raise StartupError(str(exc)) from exc
        self._parts.callback(self.sip.stop)
        from firmware.line_settings import LineSettingsStore

        self._line_settings = LineSettingsStore(storage, self._configured_line_settings())
        self._kept_settings = self._line_settings.load()  # the status shows them before the state exists
        # The broker next (paho's import, the outbox's open): connected ~140 ms sooner than after the
        # pins and the state machine. The core joins it to its reporters once it exists.
        if config.mqtt.enabled:
            self.bridge = self._make_bridge()
            self._parts.callback(self.bridge.stop)  # closes the outbox even if it never started
            self.bridge.start()

        import hal
        from firmware.actuators import PhoneActuators
        from firmware.core import PhoneCore
        from firmware.phone import PhoneSettings, initial_state
        from firmware.reporters import LogReporter, RecentEvents

        self.recent = RecentEvents(config.device.id)

        factory = hal.make_pin_factory(config.board.pin_factory)
        self._parts.callback(factory.close)
        audio_settings = self._audio_settings()
        if config.board.name == "sim":
            from hal.sim_alsa import remove_mic_copy
            from hal.simulated import SimulatedPanel

            self._parts.callback(remove_mic_copy, config.sim.asoundrc)

            self.panel = SimulatedPanel(factory, self.board)

        self.hardware = hal.build_hardware(self.board, factory, audio_settings)
        self._parts.callback(self.hardware.close)

        state = initial_state(
            PhoneSettings.from_config(
                config.dialplan,
                call_id_prefix=f"out-{os.urandom(3).hex()}-",
                hook_flash_s=self._hook_flash_window(),
                call_waiting=config.line.call_waiting,
                own_number=config.sip.user,
                waiting_choice_s=config.line.call_waiting_choice_s,
            ),
            dnd=self._kept_settings.dnd,
            off_hook=self.hardware.hook.is_off_hook,
            forwarding=self._kept_settings.forwarding,
        )
        # The core serves its inbox only from serve(), so the CRM bridge may join its reporters later.
        actuators = PhoneActuators(self.hardware, self.sip)
        core = PhoneCore(state, actuators, [LogReporter(), self.recent], on_state=self._on_state)
        self._state = state
        core.timers.start()
        self._parts.callback(core.timers.stop)
        if self.bridge is not None:
            core.add_reporter(self.bridge, first=True)  # the event on its way before its log line
        with self._early_lock:  # in the order they came, before any later one (posting never blocks)
            self.core = core
            for post in self._early:
                post()
            self._early = []

        self.hardware.audio.start(
            self.sip.audio.read_earpiece_frame,
            self.sip.audio.write_mic_frame,
            self.sip.audio,
        )
        self._parts.callback(self.hardware.audio.stop)
        if config.audio.volume_percent is not None:
            self.hardware.audio.set_volume(config.audio.volume_percent)

        self.hardware.hook.when_changed = self._on_hook
        self.hardware.keypad.when_key = self._on_key
        self.hardware.keypad.start()

        if self.panel is not None:
            from firmware.sim_control import SimControlServer

            self.control = SimControlServer(config.sim.control_socket, self.panel, self.snapshot)
            self.control.start()
            self._parts.callback(self.control.stop)

    def serve(self) -> None:
        """Run the core thread's loop (in the calling thread) until :meth:`request_stop`."""
        assert self.core is not None
        interval = systemd.watchdog_interval_s()
        systemd.notify("READY=1\nSTATUS=running")
        logger.info("deskphone %s running as %s", __version__, self.config.device.id)
        # The core wakes for the watchdog only as often as systemd asks (half its timeout), and not at
        # all without one: a phone at rest sleeps until something happens.
        self.core.run(heartbeat=self._heartbeat, heartbeat_s=interval)

    def request_stop(self) -> None:
        if self.core is not None:
            self.core.stop()

    def stop(self) -> None:
        systemd.notify("STOPPING=1")
        # Before the parts stop: the sip thread's last collection must see the pjsua2 objects that
        # start-up made (the agent deletes them all before libDestroy).
        gc.unfreeze()
        self._parts.close()
        logger.info("deskphone stopped")

    # -- wiring ---------------------------------------------------------------------------------------

    def _once_the_core_exists(self, post: Callable[[], None]) -> None:
        """Run ``post`` now, or, during start-up (the line and the broker are up before the core
        exists), when the core is made, in the order things came."""
        with self._early_lock:
            if self.core is None:
                self._early.append(post)
                return
        post()

    def _on_sip_event(self, event: sip_stack.SipEvent) -> None:
        self._once_the_core_exists(lambda: self._post_sip_event(event))

    def _post_sip_event(self, event: sip_stack.SipEvent) -> None:
        from firmware.sip_inputs import to_input

        assert self.core is not None
        self.core.post(to_input(event, self.config.sip.trusted_pbx))

    def _on_command(self, command: cmd.Command) -> None:
        self._once_the_core_exists(lambda: self._post_command(command))

    def _post_command(self, command: cmd.Command) -> None:
        assert self.core is not None
        self.core.post(command)

    def _hook_flash_window(self) -> tuple[float, float]:
        """The board's hook flash window, narrowed or widened by ``[line]``; (0, 0) when flash is off."""
        line = self.config.line
        if not line.hook_flash:
            return (0.0, 0.0)
        low = self.board.hook_flash_min_s if line.hook_flash_min_s is None else line.hook_flash_min_s
        high = self.board.hook_flash_max_s if line.hook_flash_max_s is None else line.hook_flash_max_s
        if low >= high:
            logger.warning("hook flash window %.2f-%.2f s is empty: hook flash is off", low, high)
            return (0.0, 0.0)
        return (low, high)

    def _on_hook(self, off_hook: bool) -> None:
        from firmware.commands import LiftHandset, ReplaceHandset

        assert self.core is not None
        self.core.post(LiftHandset() if off_hook else ReplaceHandset())

    def _on_key(self, key: str) -> None:
        from firmware.commands import PressKey

        assert self.core is not None
        self.core.post(PressKey(key))

    def _on_state(self, state: PhoneState) -> None:
        from firmware.line_settings import LineSettings

        self._state = state
        if self.control is not None:
            self.control.notify_changed()
        line = LineSettings.of(state)
        self._keep_line_settings(line)
        status = (state.registered, AVAILABILITY.get(state.mode, state.mode), line.as_dict())
        if self.bridge is not None and status != self._published_status:
            self._published_status = status
            self.bridge.update_status(
                registered=status[0], state=status[1], extension=self.config.sip.user, settings=status[2]
            )

    def _configured_line_settings(self) -> LineSettings:
        from firmware.line_settings import Forwarding, LineSettings

        forward = self.config.forward
        forwarding = Forwarding(
            always=forward.always or None,
            busy=forward.busy or None,
            no_answer=forward.no_answer or None,
            no_answer_s=forward.no_answer_s,
        )
        return LineSettings(dnd=self.config.sip.do_not_disturb, forwarding=forwarding)

    def _keep_line_settings(self, settings: LineSettings) -> None:
        """Write forwarding and DND to disk when a command changed them (core thread)."""
        if self._line_settings is not None and settings != self._kept_settings:
            self._kept_settings = settings
            self._line_settings.save(settings)

    def _heartbeat(self) -> None:
        systemd.notify("WATCHDOG=1")

    # -- views ----------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What the sim socket shows: the phone as a person sees it, plus counters. Any thread."""
        state = self._state
        hw = self.hardware
        recent = self.recent
        call = state.call if state else None
        sip = self.sip.status() if self.sip else {}  # a copy; its "audio" is the bridge's counters
        return {
            "device_id": self.config.device.id,
            "phone_state": state.mode if state else "starting",
            "registered": bool(state and state.registered),
            "dnd": bool(state and state.dnd),
            "forward": state.forwarding.as_dict() if state else None,
            "digits": state.digits if state else "",
            "missed_call": bool(state and state.missed_call),
            "hook": "up" if hw.hook.is_off_hook else "down",
            "leds": {"line": hw.line_led.mode, "message": hw.message_led.mode},
            "ringer": hw.ringer.pattern,
            "display": hw.display.text,
            "call": _call_view(call),
            "transfer": _call_view(state.transfer if state else None),
            "held": _call_view(state.held if state else None),
            "waiting": _call_view(state.waiting if state else None),
            "audio": hw.audio.counters(),
            "bridge": sip.pop("audio", {}),
            "sip": sip,
            "mqtt": self.bridge.counters() if self.bridge else None,
            "events": recent.events() if recent else [],
            "replies": recent.replies() if recent else [],
        }

    # -- settings -------------------------------------------------------------------------------------

    def _audio_settings(self) -> hal.AudioSettings:
        import hal

        audio = self.config.audio
        capture = audio.capture_device or None
        playback = audio.playback_device or None
        periods = hal.AudioSettings.periods
        if self.config.board.name == "sim":
            from hal.sim_alsa import PERIODS, use_asoundrc, write_asoundrc

            periods = PERIODS
            sim = self.config.sim
            capture, playback = write_asoundrc(
                sim.asoundrc, sim.mic_file, sim.earpiece_file, audio.sample_rate
            )
            use_asoundrc(sim.asoundrc)
        return hal.AudioSettings(
            sample_rate=audio.sample_rate,
            frame_ms=audio.frame_ms,
            periods=periods,
            capture_device=capture,
            playback_device=playback,
            volume_percent=audio.volume_percent,
        )

    def _sip_settings(self) -> sip_stack.SipSettings:
        sip = self.config.sip
        return sip_stack.SipSettings(
            registrar=sip.registrar,
            user=sip.user,
            password=sip.password.reveal(),
            domain=sip.domain,
            auth_user=sip.auth_user,
            display_name=sip.display_name,
            transport=sip.transport,
            local_port=sip.local_port,
            bind_address=sip.bind_address,
            media_port_start=sip.media_port,
            register_expiry_s=sip.register_expiry_s,
            retry_interval_s=sip.retry_interval_s,
            rtp_timeout_s=sip.rtp_timeout_s,
            codecs=tuple(sip.codecs),
            clock_rate=self.config.audio.sample_rate,
            frame_ms=self.config.audio.frame_ms,
            tone_plan=self.config.audio.tone_plan,
            tls_ca_file=str(sip.tls_ca_file or ""),
            tls_verify_server=sip.tls_verify_server,
            srtp=sip.srtp,
            user_agent=f"deskphone/{__version__}",
            accept_transfer=sip.accept_transfer,
            hold_music=str(self.config.line.hold_music or ""),
            max_calls=sip.max_calls,
            only_from_pbx=sip.only_from_pbx,
            trusted_pbx=tuple(sip.trusted_pbx),
        )

    def _make_bridge(self) -> Any:
        from crm_bridge.bridge import CrmBridge
        from crm_bridge.settings import MqttSettings, PhoneStatus
        from firmware.line_settings import LineSettings

        mqtt = self.config.mqtt
        settings = MqttSettings(
            host=mqtt.host,
            port=mqtt.port,
            username=mqtt.username or None,
            password=mqtt.password.reveal() or None,
            tls=mqtt.tls,
            ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
            client_cert=str(mqtt.client_cert) if mqtt.client_cert else None,
            client_key=str(mqtt.client_key) if mqtt.client_key else None,
            topic_prefix=mqtt.topic_prefix,
            keepalive_s=mqtt.keepalive_s,
            session_expiry_s=mqtt.session_expiry_s,
            outbox_path=str(self.config.storage.dir / "outbox.sqlite3"),
            outbox_max_events=mqtt.outbox_max_events,
            firmware_version=__version__,
        )

        def status() -> PhoneStatus:
            state = self._state
            mode = state.mode if state else "idle"
            line = LineSettings.of(state) if state else self._kept_settings
            return PhoneStatus(
                registered=bool(state and state.registered),
                state=AVAILABILITY.get(mode, mode),
                extension=self.config.sip.user,
                settings=line.as_dict() if line else None,
            )

        return CrmBridge(settings, self.config.device.id, self._on_command, status)


def _call_view(call: CallRecord | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {"call_id": call.call_id, "direction": call.direction, "remote": call.remote.number}


def run_daemon(config_path: Path) -> int:
    config = load_config_or_report(config_path)
    if config is None:
        return 1
    configure_logging(config.log.level, secrets=[config.sip.password.reveal(), config.mqtt.password.reveal()])
    for warning in config_warnings(config):
        logger.warning("config: %s", warning)
    daemon = Daemon(config)
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()
        daemon.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.start()
    except Exception as exc:
        logger.debug("start-up failed", exc_info=True)
        print(f"deskphone: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if not stopping.is_set():
            daemon.serve()
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(run_daemon(Path(os.environ.get("DESKPHONE_CONFIG", "/etc/deskphone/deskphone.toml"))))
