"""``python -m bench.phone_trace run --config PATH``: ``deskphone run`` with a time stamp at every hop of
an event's path inside the phone, for ``bench.legs --stages``. Bench only: nothing of this is in the
phone's own code.

Each hop is a wrapper (``trace_marks.wrap``) put around the phone's own function (or paho's) before the
daemon starts; it appends ``(time.monotonic(), name)`` to a list (~0.3 µs) and the list is written
to ``$DESKPHONE_TRACE`` (one ``<t> <name>`` per line) when the process exits. The marks, in the order
of a screen pop (a call end goes through ``sip.call_state`` instead of the first three):

- ``sip.prefilter``: pjsip's stateless filter asks Python about the INVITE (``sip`` thread);
- ``sip.select_account``, ``sip.incoming``: pjsua2's ``onSelectAccount`` and ``onIncomingCall``;
- ``sip.emit``: the user agent reports the SIP event (after the 180 is sent);
- ``core.post``: the daemon posts the phone's input to the ``core`` inbox;
- ``core.handle``: the ``core`` thread has it; ``core.step``: ``step`` has returned its effects;
- ``bridge.publish_event``: the CRM bridge is the reporter called; ``outbox.appended``: committed;
- ``pump.run``: the ``mqtt-outbox`` thread looks at the outbox;
- ``paho.publish`` / ``paho.queued``: paho's ``publish`` of an event is called / has returned;
- ``paho.send``: a thread (paho's network thread, with ``loop_start``) writes a PUBLISH to the socket;
- ``sip.drop_call`` / ``sip.dropped``: the ``sip`` thread lets a call's objects go after its end was
  reported (``sip.media_clock``: the media clock's switch in it); ``gc.collect`` / ``gc.collected``:
  a collection asked for (by the ``sip`` thread after a call).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Any

from trace_marks import MARKS, run_deskphone, wrap  # this directory's module, see trace_marks


def _dump(path: str) -> None:
    with open(path, "w") as out:
        out.writelines(f"{t:.7f} {name}\n" for t, name in MARKS)


def _is_event(event: Any) -> bool:
    return type(event).__name__ in ("IncomingCall", "CallEnded")


def install() -> None:
    """Wrap the hops (imports the phone's modules now, not after its REGISTER as the daemon does)."""
    import paho.mqtt.client as mqtt

    import firmware.core
    from crm_bridge.bridge import CrmBridge
    from crm_bridge.outbox import Outbox
    from crm_bridge.publish import EventPump
    from firmware.core import PhoneCore
    from sip_stack.agent import UserAgent
    from sip_stack.calls import SipCall

    wrap(UserAgent, "_prefilter_decide", "sip.prefilter")
    wrap(UserAgent, "_select_account", "sip.select_account")
    wrap(UserAgent, "_incoming", "sip.incoming")
    wrap(SipCall, "onCallState", "sip.call_state")
    wrap(UserAgent, "_emit", "sip.emit", when=lambda self, event: _is_event(event))
    wrap(gc, "collect", "gc.collect", "gc.collected")
    wrap(UserAgent, "_drop_call", "sip.drop_call", "sip.dropped")
    wrap(UserAgent, "_update_media_clock", "sip.media_clock", "sip.media_clock_done")
    wrap(PhoneCore, "post", "core.post")
    wrap(PhoneCore, "handle", "core.handle")
    wrap(firmware.core, "step", after="core.step")
    wrap(CrmBridge, "publish_event", "bridge.publish_event")
    wrap(Outbox, "add" if hasattr(Outbox, "add") else "append", after="outbox.appended")
    wrap(EventPump, "_pump", "pump.run")
    wrap(mqtt.Client, "publish", "paho.publish", "paho.queued",
            when=lambda self, topic, *a, **k: topic.endswith("/events"))  # fmt: skip
    wrap(mqtt.Client, "_sock_send", "paho.send", when=lambda self, data: _is_event_publish(data))


def _is_event_publish(data: bytes) -> bool:
    return len(data) > 0 and data[0] & 0xF0 == 0x30 and b"/events" in data[:200]


def main() -> int:
    path = os.environ.get("DESKPHONE_TRACE")
    if not path:
        print("bench.phone_trace: set DESKPHONE_TRACE to the file the marks go to", file=sys.stderr)
        return 2
    install()
    switch = os.environ.get("DESKPHONE_TRACE_SWITCH_INTERVAL_S")
    if switch:
        sys.setswitchinterval(float(switch))  # bench.legs --switch-interval
    atexit.register(_dump, path)
    try:
        return run_deskphone(sys.argv[1:])
    finally:
        _dump(path)


if __name__ == "__main__":
    sys.exit(main())
