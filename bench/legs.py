"""``python -m bench.legs [N]``: where a screen pop and a call end spend their time, leg by leg.

The loopback sniffer times three legs of each (needs root or CAP_NET_RAW):
- far end -> phone: the far end's command sent -> the INVITE (BYE) reaches the phone's SIP port
  (baresip and kamailio);
- inside the phone: the INVITE (BYE) on the wire -> the phone's MQTT PUBLISH of call.incoming
  (call.ended) on the wire (pjsip, the sip thread's callbacks, the core's step, the outbox commit,
  the mqtt-outbox thread and paho's network thread);
- broker -> CRM: that PUBLISH -> the bench's CRM subscriber has the message (mosquitto, paho).
Only our phone; prints median and max of each leg.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.lab import OURS_USER, Lab
from bench.measure import INCOMING_SPACING_S, _ours_event
from lab import sniff
from lab.sniff import Packet

_PUBLISH = (b"\x30", b"\x32")  # MQTT PUBLISH, QoS 0 / 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=50, help="calls (default 50)")
    args = parser.parse_args(argv)
    if not sniff.available():
        print("bench.legs needs a loopback sniffer (root or CAP_NET_RAW)", file=sys.stderr)
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="deskphone-legs-"))
    lab = Lab(scratch, mic_seconds=60.0)
    packets: list[Packet] = []
    legs: dict[str, list[float]] = {}
    try:
        with sniff.Sniffer() as sniffer:
            sniffer.add(packets.append)
            lab.start()
            phone = lab.start_ours()
            lab.wait_ours_registered()
            far, crm = lab.far, lab.crm
            assert far is not None and crm is not None
            broker = lab.broker.port

            def split(name: str, t0: float, t_crm: float, sip: bytes, event: bytes) -> None:
                arrived = [p.t for p in packets if p.proto == 17 and p.dport == phone.sip_port
                           and p.payload.startswith(sip)]  # fmt: skip
                published = [p.t for p in packets if p.proto == 6 and p.dport == broker
                             and p.payload[:1] in _PUBLISH and event in p.payload]  # fmt: skip
                if arrived and published:
                    for leg, ms in (
                        ("far end -> phone", arrived[0] - t0),
                        ("inside the phone", published[0] - arrived[0]),
                        ("broker -> CRM", t_crm - published[0]),
                    ):
                        legs.setdefault(f"{name}: {leg}", []).append(ms * 1000.0)

            for _ in range(args.n):
                time.sleep(INCOMING_SPACING_S)
                far.clear_events()
                packets.clear()
                mark = crm.mark()
                t0 = far.send_command("dial", lab.uri(OURS_USER))
                pop = crm.wait(_ours_event(lab, "call.incoming"), mark)
                split("screen pop", t0, pop.t, b"INVITE", b"call.incoming")
                phone.client.hook(True)
                far.wait_for_event("CALL_ESTABLISHED")
                time.sleep(0.2)
                packets.clear()
                mark = crm.mark()
                t1 = far.send_command("hangup")
                end = crm.wait(_ours_event(lab, "call.ended"), mark)
                split("call end", t1, end.t, b"BYE", b"call.ended")
                far.wait_for_event("CALL_CLOSED")
                phone.client.hook(False)
                phone.wait_mode("idle")
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    for name, values in legs.items():
        median, worst = statistics.median(values), max(values)
        print(f"{name:32s} median {median:7.2f} ms, max {worst:7.2f} ms, n {len(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
