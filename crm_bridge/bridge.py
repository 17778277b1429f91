"""The CRM bridge: one paho client (MQTT 5) wired to the outbox, the publishers and the subscriber.

Threads: paho's network thread (``loop_start``) runs the callbacks and the command subscriber; the
``mqtt-outbox`` thread moves events from the outbox to paho; the outbox's ``outbox-sync`` thread
fsyncs its commits in groups. ``publish_event``, ``send_reply`` and
``update_status`` may be called from any thread and never wait for the network.

A failed connection is logged once per outage and reason (``diagnosis``), not once per retry. TLS
files that cannot be loaded leave the bridge offline with one error line; the phone goes on without
the CRM either way.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from firmware.commands import Command, Reply
from firmware.events import Event, utc_now

from . import diagnosis
from .client import new_client, use_tls
from .codec import LAST_WILL
from .outbox import Outbox
from .publish import EventPump, ReplyRouter, StatusPublisher
from .settings import MqttSettings, PhoneStatus
from .subscribe import CommandSubscriber

logger = logging.getLogger(__name__)

_STOP_FLUSH_S = 2.0
REMIND_AFTER_S = 3600.0  # a long outage's reason is logged again this often


class CrmBridge:
    """Status, commands, replies and events between one phone and the CRM's broker."""

    def __init__(
        self,
        settings: MqttSettings,
        device_id: str,
        submit: Callable[[Command], None],
        status_provider: Callable[[], PhoneStatus] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not device_id or set(device_id) & {"/", "+", "#"}:
            raise ValueError("device_id must be a single topic level")
        self.settings = settings
        self.device_id = device_id
        self.base_topic = settings.base_topic(device_id)
        self._status_provider = status_provider
        self._clock = clock
        self._lock = threading.Lock()
        self._connected = False
        self._stopping = False
        self._started = False
        self._outage_since: float | None = None
        self._outage_reasons: dict[str, float] = {}  # reason -> when it was last logged, this outage
        self._outage_failures = 0
        self._refused = False  # the broker refused the CONNECT: its disconnect is the same failure
        self._tls_read_error: str | None = None  # paho's last logged SSL error, read on disconnect
        self._tls_setup_error: str | None = None
        self.connects = 0
        self.connect_failures = 0

        self.outbox = Outbox(settings.outbox_path, device_id, settings.outbox_max_events)
        self._client = self._make_client()
        self._events = EventPump(self._client, self.outbox, f"{self.base_topic}/events")
        self.outbox.on_durable = self._events.wake
        self._replies = ReplyRouter(self._client, self.base_topic)
        self._status = StatusPublisher(
            self._client, f"{self.base_topic}/status", settings.firmware_version, clock()
        )
        self._commands = CommandSubscriber(self._client, self.base_topic, submit, self._replies, clock)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; the broker need not be up. Never raises for network trouble."""
        s = self.settings
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry_s
        logger.info(
            "CRM bridge for %s: broker %s:%d%s, user %s, topics %s/#",
            self.device_id,
            s.host,
            s.port,
            " (TLS)" if s.tls else "",
            s.username or "-",
            self.base_topic,
        )
        if self._tls_setup_error is not None:
            logger.error("%s; the phone stays without the CRM broker until restarted", self._tls_setup_error)
            return
        self._started = True
        self._events.start()
        self._client.connect_async(
            s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Say offline (retained), flush briefly, disconnect; the outbox keeps what was not sent."""
        with self._lock:
            self._stopping = True
            connected = self._connected
        if connected:
            info = self._client.publish(f"{self.base_topic}/status", LAST_WILL, qos=1, retain=True)
            deadline = time.monotonic() + _STOP_FLUSH_S
            while not info.is_published() and time.monotonic() < deadline:
                time.sleep(0.02)
        if self._started:
            self._events.stop()
            self._client.disconnect()
            self._client.loop_stop()
        self.outbox.close()
        logger.info("CRM bridge stopped")

    # --- API for the daemon ---------------------------------------------------------------------

    def publish_event(self, event: Event) -> int:
        """Store ``event`` in the outbox (its ``seq`` is returned) and publish it when possible: from
        this thread at once in the usual case (``EventPump.offer``)."""
        stored = self.outbox.add(event)
        self._events.offer(stored.seq, stored.payload)
        return stored.seq

    def send_reply(self, reply: Reply) -> None:
        """The one reply to a command, to ``reply/<id>`` or the command's MQTT 5 response topic."""
        self._replies.send(reply)

    def update_status(
        self, registered: bool, state: str, extension: str, settings: dict[str, Any] | None = None
    ) -> None:
        """Change the retained ``status``; published at once when connected, else on connect.
        ``settings``: the phone's do-not-disturb and forwarding, shown in the status."""
        self._status.update(PhoneStatus(registered, state, extension, settings), self._clock())
        with self._lock:
            connected = self._connected
        if connected:
            self._status.publish()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def counters(self) -> dict[str, int]:
        return {
            "connected": int(self.connected),
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "events_published": self._events.published,
            "events_refused_by_broker": self._events.rejected,
            "events_in_flight": self._events.in_flight,
            "outbox_pending": len(self.outbox),
            "outbox_dropped": self.outbox.dropped,
            "commands_received": self._commands.received,
            "commands_rejected": self._commands.rejected,
        }

    # --- paho -----------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = new_client(f"deskphone-{self.device_id}", s.username, s.password)
        if s.tls:
            try:
                use_tls(client, s.ca_file, s.client_cert, s.client_key)
            except OSError as exc:  # unreadable files; ssl.SSLError (a key that does not match) is one too
                self._tls_setup_error = f"TLS: cannot load {_tls_files(s)}: {exc.strerror or exc}"
        will_props = Properties(PacketTypes.WILLMESSAGE)
        client.will_set(
            f"{s.base_topic(self.device_id)}/status", LAST_WILL, qos=1, retain=True, properties=will_props
        )
        client.reconnect_delay_set(min_delay=s.reconnect_min_s, max_delay=s.reconnect_max_s)
        client.max_inflight_messages_set(20)
        client.on_connect = self._guard(self._on_connect)
        client.on_connect_fail = self._guard(self._on_connect_fail)
        client.on_disconnect = self._guard(self._on_disconnect)
        client.on_message = self._guard(self._on_message)
        client.on_publish = self._guard(self._on_publish)
        client.on_log = self._on_log
        return client

    @staticmethod
    def _guard(callback: Callable[..., None]) -> Callable[..., None]:
        """An exception in a paho callback would end paho's thread: log it instead."""

        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception:
                logger.exception("error in MQTT callback %s", callback.__name__)

        return guarded

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            with self._lock:
                self._refused = True
            self._outage(f"the broker refused the connection: {reason}")
            return
        self._commands.subscribe()
        with self._lock:
            self._connected = True  # only now: a command published from here on reaches us
            outage_since, self._outage_since = self._outage_since, None
            self._outage_reasons.clear()
            self._outage_failures = 0
            self._tls_read_error = None
        self.connects += 1
        if outage_since is not None:
            logger.info("reconnected to the broker after %.1f s", time.monotonic() - outage_since)
        else:
            logger.info("connected to the broker (session present: %s)", bool(flags.session_present))
        if self._status_provider is not None:
            try:
                self._status.update(self._status_provider(), self._clock())
            except Exception:
                logger.exception("status provider failed; publishing the last known status")
        self._status.publish()
        self._events.wake()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its ``except OSError``: the exception handled is the reason.
        self._outage(diagnosis.describe(sys.exc_info()[1], self.settings))

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and diagnosis.is_tls_error_text(text):
            with self._lock:
                self._tls_read_error = text

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
            stopping = self._stopping
            tls_error, self._tls_read_error = self._tls_read_error, None
            refused, self._refused = self._refused, False
        if stopping or refused:
            return
        dropped_handshake = None if was_connected else diagnosis.describe_dropped_handshake(self.settings)
        if tls_error is not None:
            self._outage(diagnosis.describe_tls_text(tls_error, self.settings))
        elif dropped_handshake is not None:
            self._outage(dropped_handshake)
        else:
            self._outage(f"lost the broker connection ({reason})")

    def _outage(self, reason: str) -> None:
        """Log a broker outage once per reason (and again every ``REMIND_AFTER_S``), not per retry."""
        now = time.monotonic()
        with self._lock:
            if self._outage_since is None:
                self._outage_since = now
            logged_at = self._outage_reasons.get(reason)
            remind = logged_at is not None and now - logged_at >= REMIND_AFTER_S
            if logged_at is None or remind:
                self._outage_reasons[reason] = now
            self.connect_failures += 1
            self._outage_failures += 1
            failures, since = self._outage_failures, self._outage_since
        s = self.settings
        if logged_at is None:
            logger.warning(
                "broker %s:%d: %s; retrying with backoff up to %d s (calls work without the CRM meanwhile)",
                s.host,
                s.port,
                reason,
                s.reconnect_max_s,
            )
        elif remind:
            logger.warning(
                "broker %s:%d: still %s (%d failed attempts in %.0f min)",
                s.host,
                s.port,
                reason,
                failures,
                (now - since) / 60,
            )
        else:
            logger.debug("broker %s:%d: %s (still)", s.host, s.port, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._commands.on_message(message)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        self._events.on_publish(mid, reason.is_failure)


def _tls_files(settings: MqttSettings) -> str:
    files = [
        f"mqtt.{key} {value}"
        for key, value in (
            ("ca_file", settings.ca_file),
            ("client_cert", settings.client_cert),
            ("client_key", settings.client_key),
        )
        if value
    ]
    return ", ".join(files) or "the system's CA store"
