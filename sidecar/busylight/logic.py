"""Busy-light state logic: which colour each watched desk phone shows.

Pure MicroPython (runs under CPython too): no hardware, network or clock imports. The board's
``main.py`` feeds it every MQTT message (``handle``) and calls ``tick`` from its loop; the LED
driver (``show``) and the millisecond clock (``clock``) are handed in, so tests can run this
module on any MicroPython port.

Inputs, per phone, from the MQTT contract version 1 (``<prefix>/<device_id>/status`` retained and
``<prefix>/<device_id>/events``):

* ``status``: ``online`` false (the last will) -> offline; otherwise ``registered`` and ``state``
  (``idle``; ``ringing``/``ringing_in``/``alerting``; ``busy``/``dialing``/``outgoing``/``in_call``/
  ``ended``). The status is the authority; events only move the light sooner.
* ``events``: ``hook.offhook`` -> busy; ``hook.onhook`` -> idle; ``call.incoming`` and
  ``click_to_call.alerting`` -> ringing (only from idle: a second call while busy is refused by the
  phone); ``call.outgoing``/``call.ringing``/``call.answered`` -> busy; ``call.ended`` of the current
  call -> idle; ``click_to_call.expired``/``cancelled`` -> idle when alerting; ``registration.changed``
  -> registered flag. An event not newer than the latest status's ``since`` is stale (the status
  already tells its outcome, or it is an old event replayed from the phone's outbox) and ignored.

Anything else (other topics, phones not watched, bad JSON, wrong types, unknown types, oversized) is
ignored and counted in ``counters``; ``handle`` never raises.
"""

import json

OFFLINE = "offline"
UNREGISTERED = "unregistered"
IDLE = "idle"
RINGING = "ringing"
BUSY = "busy"
KINDS = (OFFLINE, UNREGISTERED, IDLE, RINGING, BUSY)

# Which kind wins when several phones share one LED (a single RGB LED): the most urgent.
PRIORITY = {OFFLINE: 0, UNREGISTERED: 1, IDLE: 2, BUSY: 3, RINGING: 4}

DEFAULT_COLOURS = {
    OFFLINE: (0, 0, 0),
    UNREGISTERED: (0, 0, 0),
    IDLE: (0, 255, 0),
    RINGING: (255, 120, 0),
    BUSY: (255, 0, 0),
}
DEFAULT_BLINK = (RINGING,)
DEFAULT_BLINK_MS = 400
MAX_PAYLOAD = 4096

STATUS_STATES = {
    "idle": IDLE,
    "ringing": RINGING,
    "ringing_in": RINGING,
    "alerting": RINGING,
    "busy": BUSY,
    "dialing": BUSY,
    "outgoing": BUSY,
    "in_call": BUSY,
    "ended": BUSY,
}

EVENT_TYPES = (
    "hook.offhook",
    "hook.onhook",
    "registration.changed",
    "click_to_call.alerting",
    "click_to_call.expired",
    "click_to_call.cancelled",
    "call.incoming",
    "call.outgoing",
    "call.ringing",
    "call.answered",
    "call.ended",
)

COUNTERS = ("received", "applied", "malformed", "unknown", "foreign", "stale", "errors")


class Ignored(Exception):
    """A message that is not applied; ``args[0]`` names the counter."""


class Phone:
    """What the light knows of one phone."""

    def __init__(self, device_id):
        self.device_id = device_id
        self.online = None  # None: nothing heard yet
        self.registered = True
        self.state = None  # IDLE, RINGING, BUSY or None
        self.call_id = None  # the call the light follows
        self.since = None  # ``since`` of the latest status (phone's clock, ISO 8601)

    def kind(self):
        if self.online is not True:
            return OFFLINE
        if not self.registered:
            return UNREGISTERED
        return self.state or IDLE


def _colour(value, name):
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError("colour " + name + ": three numbers 0-255 expected")
    out = []
    for c in value:
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 255:
            raise ValueError("colour " + name + ": three numbers 0-255 expected")
        out.append(c)
    return tuple(out)


def _newer(ts, since):
    """True unless both are contract timestamps and ``ts`` is not later than ``since``."""
    if not isinstance(ts, str) or not isinstance(since, str):
        return True
    if len(ts) != len(since) or not ts.endswith("Z") or not since.endswith("Z"):
        return True
    return ts > since


class BusyLight:
    """The light for ``phones`` (device ids, in pixel order).

    ``show(pixels)`` gets a list of ``(r, g, b)`` tuples, one per pixel (one per phone, or a single one
    when ``combine``), whenever what is shown changes. ``clock()`` gives milliseconds; ``ticks_diff``
    subtracts two of them (``time.ticks_diff`` on the board, where the clock wraps).
    """

    def __init__(
        self,
        phones,
        prefix="deskphone",
        colours=None,
        blink=DEFAULT_BLINK,
        blink_ms=DEFAULT_BLINK_MS,
        combine=False,
        show=None,
        clock=None,
        ticks_diff=None,
    ):
        if not phones:
            raise ValueError("phones: at least one device id")
        if not isinstance(prefix, str) or not prefix or prefix[0] == "/" or prefix[-1] == "/":
            raise ValueError("topic_prefix: no leading or trailing '/'")
        self.prefix = prefix
        self.order = []
        self.phones = {}
        for device_id in phones:
            bad = not isinstance(device_id, str) or not device_id or "/" in device_id
            if bad or device_id in self.phones:
                raise ValueError("phones: distinct device ids without '/'")
            self.order.append(device_id)
            self.phones[device_id] = Phone(device_id)
        self.colours = dict(DEFAULT_COLOURS)
        for name, value in (colours or {}).items():
            if name not in KINDS:
                raise ValueError("colours: unknown name " + str(name))
            self.colours[name] = _colour(value, name)
        for name in blink:
            if name not in KINDS:
                raise ValueError("blink: unknown name " + str(name))
        self.blink = tuple(blink)
        if not isinstance(blink_ms, int) or blink_ms < 50:
            raise ValueError("blink_ms: at least 50")
        self.blink_ms = blink_ms
        self.combine = combine
        self._show = show
        self._clock = clock or (lambda: 0)
        self._diff = ticks_diff or (lambda a, b: a - b)
        self.changed_at = {}  # device id -> clock when its kind last changed (blink phase)
        self.counters = {}
        for name in COUNTERS:
            self.counters[name] = 0
        self.shown = None
        self.render(force=True)

    @classmethod
    def from_config(cls, config, show=None, clock=None, ticks_diff=None, pixels=None):
        """A light from the board's ``config.json`` (parsed); ``pixels`` is how many the LEDs have:
        one for a single RGB LED (it then shows the most urgent phone)."""
        phones = config.get("phones") or ()
        return cls(
            phones,
            prefix=config.get("topic_prefix", "deskphone"),
            colours=config.get("colours"),
            blink=config.get("blink", DEFAULT_BLINK),
            blink_ms=config.get("blink_ms", DEFAULT_BLINK_MS),
            combine=pixels == 1 and len(phones) > 1,
            show=show,
            clock=clock,
            ticks_diff=ticks_diff,
        )

    # --- MQTT ---------------------------------------------------------------------------------------

    def subscriptions(self):
        """The exact topics to subscribe to (what the sidecar's broker account may read)."""
        out = []
        for device_id in self.order:
            out.append(self.prefix + "/" + device_id + "/status")
            out.append(self.prefix + "/" + device_id + "/events")
        return out

    def handle(self, topic, payload):
        """Apply one MQTT message; True when the light changed. Never raises."""
        self.counters["received"] += 1
        try:
            before = self.kinds()
            self._apply(topic, payload)
            self.counters["applied"] += 1
        except Ignored as reason:
            self.counters[reason.args[0]] += 1
            return False
        except Exception:  # a light must never die of a message
            self.counters["errors"] += 1
            return False
        now = self._clock()
        after = self.kinds()
        for i in range(len(self.order)):
            if before[i] != after[i]:
                self.changed_at[self.order[i]] = now
        return self.render()

    def _apply(self, topic, payload):
        if isinstance(topic, (bytes, bytearray)):
            topic = bytes(topic).decode()
        if not isinstance(topic, str):
            raise Ignored("malformed")
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise Ignored("foreign")
        parts = topic[len(head) :].split("/")
        if len(parts) != 2 or parts[1] not in ("status", "events"):
            raise Ignored("foreign")
        phone = self.phones.get(parts[0])
        if phone is None:
            raise Ignored("foreign")
        if isinstance(payload, str):
            payload = payload.encode()
        if len(payload) > MAX_PAYLOAD:
            raise Ignored("malformed")
        try:
            message = json.loads(payload)
        except Exception:  # ValueError, UnicodeError, recursion: all the same here
            raise Ignored("malformed") from None
        if not isinstance(message, dict) or "v" not in message:
            raise Ignored("malformed")
        if message["v"] != 1 or isinstance(message["v"], bool):
            raise Ignored("unknown")
        if parts[1] == "status":
            self._status(phone, message)
        else:
            self._event(phone, message)

    def _status(self, phone, message):
        online = message.get("online")
        if not isinstance(online, bool):
            raise Ignored("malformed")
        if not online:
            phone.online = False
            phone.state = None
            phone.call_id = None
            return
        registered, state, since = message.get("registered"), message.get("state"), message.get("since")
        if not isinstance(registered, bool) or not isinstance(state, str):
            raise Ignored("malformed")
        if since is not None and not isinstance(since, str):
            raise Ignored("malformed")
        kind = STATUS_STATES.get(state)
        if kind is None:
            raise Ignored("unknown")
        phone.online = True
        phone.registered = registered
        phone.since = since
        if kind != phone.state:
            phone.state = kind
            if kind == IDLE:
                phone.call_id = None

    def _event(self, phone, message):
        etype, ts = message.get("type"), message.get("ts")
        if not isinstance(etype, str) or (ts is not None and not isinstance(ts, str)):
            raise Ignored("malformed")
        device_id = message.get("device_id")
        if device_id is not None and device_id != phone.device_id:
            raise Ignored("malformed")
        if etype not in EVENT_TYPES:
            raise Ignored("unknown")
        call_id, disposition = None, None
        if etype.startswith("call."):
            call = message.get("call")
            if not isinstance(call, dict):
                raise Ignored("malformed")
            call_id, disposition = call.get("call_id"), call.get("disposition")
            if not isinstance(call_id, str) or (disposition is not None and not isinstance(disposition, str)):
                raise Ignored("malformed")
        data = message.get("data", {})
        if not isinstance(data, dict):
            raise Ignored("malformed")
        if phone.online is False or not _newer(ts, phone.since):
            raise Ignored("stale")  # offline: the phone announces itself with a status first
        if etype == "registration.changed":
            registered = data.get("registered")
            if not isinstance(registered, bool):
                raise Ignored("malformed")
            phone.registered = registered
        elif etype == "hook.offhook":
            phone.state = BUSY
        elif etype == "hook.onhook":
            phone.state, phone.call_id = IDLE, None
        elif etype == "call.incoming":
            if phone.state in (None, IDLE):
                phone.state, phone.call_id = RINGING, call_id
        elif etype == "click_to_call.alerting":
            if phone.state in (None, IDLE):
                phone.state = RINGING
        elif etype in ("click_to_call.expired", "click_to_call.cancelled"):
            if phone.state == RINGING and phone.call_id is None:
                phone.state = IDLE
        elif etype == "call.ended":
            if call_id == phone.call_id or (
                phone.call_id is None and not (disposition == "rejected" and phone.state == BUSY)
            ):
                phone.state, phone.call_id = IDLE, None
        else:  # call.outgoing, call.ringing, call.answered
            phone.state, phone.call_id = BUSY, call_id
        if phone.online is None:
            phone.online = True  # events flow, so it is online; its status will follow

    # --- output -------------------------------------------------------------------------------------

    def kinds(self):
        return [self.phones[d].kind() for d in self.order]

    def pixels(self, now=None):
        """What the LEDs show at ``now`` (clock milliseconds): a list of ``(r, g, b)``."""
        now = self._clock() if now is None else now
        slots = []
        for device_id in self.order:
            kind = self.phones[device_id].kind()
            slots.append((kind, self.changed_at.get(device_id, now)))
        if self.combine:
            best = slots[0]
            for slot in slots[1:]:
                if PRIORITY[slot[0]] > PRIORITY[best[0]]:
                    best = slot
            slots = [best]
        out = []
        for kind, since in slots:
            colour = self.colours[kind]
            if kind in self.blink and (self._diff(now, since) // self.blink_ms) % 2 == 1:
                colour = (0, 0, 0)  # the dark half of a blink; the bright half comes first
            out.append(colour)
        return out

    def render(self, force=False):
        """Show the current pixels if they differ from what is shown; True when shown."""
        pixels = self.pixels()
        if not force and pixels == self.shown:
            return False
        self.shown = pixels
        if self._show is not None:
            self._show(pixels)
        return True

    def tick(self):
        """Call often (every 20-50 ms) from the main loop: advances blinking."""
        try:
            return self.render()
        except Exception:  # drawing must not stop the loop
            self.counters["errors"] += 1
            return False
