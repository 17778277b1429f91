"""Several gateway instances on one broker (``[mqtt] share_group``): who is up, and what happens to
the events a dead instance had been given.

The instances share the phones' events through an MQTT 5 shared subscription
(``$share/<group>/<prefix>/+/events``). A broker hands each event to one member and keeps the events
that member has not acknowledged in the member's session. mosquitto (2.0) keeps them there when the
member dies, and goes on queueing that member's share of new events to its session while the session
lasts; with a session that ends at the disconnect they are dropped instead. Neither fails over by
itself, so the instances do it:

- each instance keeps a retained presence message, ``<prefix>/_gateways/<client id>``: ``up`` once
  connected, ``down`` as its will (the broker publishes it when the connection breaks) and when it
  stops;
- on ``down``, the live instance with the lowest client id resumes the dead member's session with its
  client id (``clean_start`` false: standard MQTT), handles and acknowledges whatever the session
  holds, and once nothing more comes it disconnects with a session expiry of 0, ending the session, so
  the broker gives that member's share to the live members from then on;
- the store makes a redelivered event harmless (``update_call`` and its unique keys).

If the dead instance comes back while its session is being drained, it takes its client id back (the
broker disconnects the rescuer) and carries on with the rest itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .config import MqttConfig

logger = logging.getLogger(__name__)

PRESENCE_LEVEL = "_gateways"  # device ids start with a letter or digit: no phone has this topic
UP, DOWN = b"up", b"down"
QUIET_S = 1.0  # a resumed session is drained once nothing has come for this long
RESCUE_SESSION_S = 300  # kept while draining, should the rescuer die too


class Peers:
    """The instances of the share group as their presence messages tell."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._up = {me}
        self._lock = threading.Lock()

    def seen(self, client_id: str, payload: bytes) -> bool:
        """Note a presence message; True when this instance should take over ``client_id``'s session."""
        with self._lock:
            if payload == UP:
                self._up.add(client_id)
                return False
            self._up.discard(client_id)
            self._up.add(self.me)
            return payload == DOWN and client_id != self.me and min(self._up) == self.me


def rescue_session(
    config: MqttConfig,
    dead: str,
    make_client: Callable[[str], mqtt.Client],
    handle: Callable[[mqtt.MQTTMessage], None],
    timeout_s: float = 30.0,
) -> int:
    """Resume ``dead``'s session, handle and acknowledge what it holds, end it; the events handled."""
    client = make_client(dead)
    state = {"connected": False, "present": False, "gone": False, "handled": 0, "last": time.monotonic()}

    def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        state["connected"] = not getattr(reason, "is_failure", False)
        state["present"] = bool(getattr(flags, "session_present", False))
        state["last"] = time.monotonic()

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            handle(message)
        except Exception:
            logger.exception("taking over %s: an event could not be handled; left in its session", dead)
            return
        state["handled"] += 1
        state["last"] = time.monotonic()
        if message.qos > 0:
            c.ack(message.mid, message.qos)

    def on_disconnect(c: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        state["gone"] = True

    client.on_connect, client.on_message, client.on_disconnect = on_connect, on_message, on_disconnect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = RESCUE_SESSION_S
    client.connect(
        config.host, config.port, keepalive=config.keepalive_s, clean_start=False, properties=props
    )
    deadline = time.monotonic() + timeout_s
    while not state["gone"] and time.monotonic() < deadline:
        client.loop(0.05)
        if state["connected"] and time.monotonic() - float(state["last"]) >= QUIET_S:
            break
    if state["gone"]:
        logger.info(
            "taking over %s: it is back (or another instance took it); %d events handled",
            dead,
            state["handled"],
        )
        return int(state["handled"])
    end = Properties(PacketTypes.DISCONNECT)
    end.SessionExpiryInterval = 0
    client.disconnect(properties=end)
    client.loop(0.2)
    logger.info(
        "took over the session of %s (session present: %s): %d events handled, session ended",
        dead,
        state["present"],
        state["handled"],
    )
    return int(state["handled"])
