"""Phone → CRM: events from the outbox, replies, and the retained status.

``EventPump`` is the only writer of ``events``. It hands outbox events to paho in ``seq`` order as
soon as they are committed (not waiting for their fsync: an event is safe once the disk or the broker
has it; see ``outbox``), keeping at most ``window`` of them unacknowledged in paho's memory (the rest
wait on disk), and deletes an event from the outbox only when its PUBACK arrives. paho itself resends
what is unacknowledged when the connection comes back (clean start off), so order survives an
outage; a new process starts again from what the outbox still holds.

The thread that committed an event hands it to paho itself (``offer``) when it is the next in
``seq`` order, there is room in the window and its seq is reserved on disk: the usual case, one
thread hop less on the way to the broker. Everything else (events left on disk, a full window, a
seq reservation being renewed, the other thread handing over at that moment) is the ``mqtt-outbox``
thread's, which reads the outbox. One lock orders the two; the committing thread never waits for
it (it leaves the event to the pump thread instead).

The pump never holds a lock of its own while paho calls back, and paho's callbacks never wait for the
pump: ``on_publish`` only records the acknowledgement and wakes the pump thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.commands import Reply

from .codec import encode_reply, encode_status
from .outbox import Outbox
from .settings import PhoneStatus

logger = logging.getLogger(__name__)

_ROUTES_KEPT = 256
_EARLY_ACK_TTL_S = 60.0
NO_ID_REPLY_LEVEL = "_"


@dataclass(frozen=True)
class ReplyRoute:
    """Where the reply of one command goes: an MQTT 5 response topic and its correlation data."""

    topic: str
    correlation: bytes | None = None


class EventPump:
    """Moves events from the outbox to the broker, in order, removing them on PUBACK."""

    def __init__(self, client: mqtt.Client, outbox: Outbox, topic: str, window: int = 50) -> None:
        self._client = client
        self._outbox = outbox
        self._topic = topic
        self._window = window
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._handing = threading.Lock()  # held while events go to paho: one seq order
        self._ack_lock = threading.Lock()
        self._handed: dict[int, int] = {}  # paho mid -> seq, until PUBACK
        self._early: dict[int, tuple[float, bool]] = {}  # PUBACKs that beat the mid bookkeeping
        self._last_handed_seq = 0
        self._thread: threading.Thread | None = None
        self.published = 0
        self.rejected = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wake(self) -> None:
        self._wake.set()

    def offer(self, seq: int, payload: bytes) -> None:
        """The committing thread: hand event ``seq`` (just committed) to paho at once if it is next in
        order, else leave it to the pump thread. Never blocks on the pump."""
        if not self._handing.acquire(blocking=False):
            self._wake.set()  # the pump thread is handing over: it looks at the outbox again after
            return
        try:
            if (
                seq == self._last_handed_seq + 1
                and self.in_flight < self._window
                and seq <= self._outbox.publishable_seq
                and self._hand(seq, payload)
            ):
                return
        finally:
            self._handing.release()
        self._wake.set()

    @property
    def in_flight(self) -> int:
        with self._ack_lock:
            return len(self._handed)

    def on_publish(self, mid: int, failed: bool) -> None:
        """paho thread: a PUBACK (or reason code) for ``mid`` arrived."""
        with self._ack_lock:
            seq = self._handed.pop(mid, None)
            if seq is None:
                now = time.monotonic()
                self._early = {m: v for m, v in self._early.items() if now - v[0] < _EARLY_ACK_TTL_S}
                self._early[mid] = (now, failed)
                return
        self._acked(seq, failed)

    def _acked(self, seq: int, failed: bool) -> None:
        if failed:
            # The broker will never take it (e.g. not authorised): retrying would block every later event.
            self.rejected += 1
            logger.error("broker refused event seq %d; dropped from the outbox", seq)
        else:
            self.published += 1
        self._outbox.ack(seq)
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self._handing:
                    self._pump()
            except Exception:
                logger.exception("publishing from the outbox failed; will retry")
                time.sleep(1.0)

    def _pump(self) -> None:
        room = self._window - self.in_flight
        if room <= 0:
            return
        up_to = self._outbox.publishable_seq  # not waiting for the fsync, only for the seq reservation
        for item in self._outbox.pending(after_seq=self._last_handed_seq, limit=room, up_to=up_to):
            if not self._hand(item.seq, item.payload):
                return

    def _hand(self, seq: int, payload: bytes) -> bool:
        """Publish one event (``_handing`` held); False if paho did not take it."""
        info = self._client.publish(self._topic, payload, qos=1, retain=False)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            logger.warning("paho did not take event seq %d (%s); will retry", seq, info.rc)
            return False
        self._last_handed_seq = seq
        with self._ack_lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._handed[info.mid] = seq
        if early is not None:
            self._acked(seq, early[1])
        return True


class ReplyRouter:
    """Sends each command's one reply to ``reply/<id>`` or to the command's MQTT 5 response topic."""

    def __init__(self, client: mqtt.Client, base_topic: str) -> None:
        self._client = client
        self._base = base_topic
        self._lock = threading.Lock()
        self._routes: OrderedDict[str, ReplyRoute] = OrderedDict()

    def remember(self, request_id: str, route: ReplyRoute) -> None:
        with self._lock:
            self._routes[request_id] = route
            self._routes.move_to_end(request_id)
            while len(self._routes) > _ROUTES_KEPT:
                self._routes.popitem(last=False)

    def send(self, reply: Reply, route: ReplyRoute | None = None) -> None:
        if route is None and reply.request_id:
            with self._lock:
                route = self._routes.pop(reply.request_id, None)
        if route is None:
            route = ReplyRoute(f"{self._base}/reply/{reply.request_id or NO_ID_REPLY_LEVEL}")
        props: Properties | None = None
        if route.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = route.correlation
        info = self._client.publish(route.topic, encode_reply(reply), qos=1, retain=False, properties=props)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            logger.warning("reply to request %s not queued (%s)", reply.request_id, info.rc)
        else:
            logger.debug("reply to request %s ok=%s -> %s", reply.request_id, reply.ok, route.topic)


class StatusPublisher:
    """Keeps the retained ``status`` current; ``since`` is when the current state began."""

    def __init__(self, client: mqtt.Client, topic: str, firmware: str, now: datetime) -> None:
        self._client = client
        self._topic = topic
        self._firmware = firmware
        self._lock = threading.Lock()
        self._status = PhoneStatus()
        self._since = now

    @property
    def status(self) -> PhoneStatus:
        with self._lock:
            return self._status

    def update(self, status: PhoneStatus, now: datetime) -> None:
        with self._lock:
            if status.state != self._status.state:
                self._since = now
            self._status = status

    def publish(self) -> mqtt.MQTTMessageInfo:
        with self._lock:
            payload = encode_status(
                registered=self._status.registered,
                state=self._status.state,
                extension=self._status.extension,
                firmware=self._firmware,
                since=self._since,
                settings=self._status.settings,
            )
        return self._client.publish(self._topic, payload, qos=1, retain=True)
