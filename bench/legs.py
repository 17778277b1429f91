"""``python -m bench.legs [N] [--stages] [--baseline DIR]``: where a screen pop and a call end spend
their time, leg by leg, and inside the phone hop by hop.

The loopback sniffer times three legs of each (needs root or CAP_NET_RAW):
- far end -> phone: the far end's command sent -> the INVITE (BYE) reaches the phone's SIP port
  (baresip and kamailio);
- inside the phone: the INVITE (BYE) on the wire -> the phone's MQTT PUBLISH of call.incoming
  (call.ended) on the wire (pjsip, the sip thread's callbacks, the core's step, the outbox commit,
  the hand-over to paho and paho's network thread);
- broker -> CRM: that PUBLISH -> the bench's CRM subscriber has the message (mosquitto, paho).

``--stages`` runs the phone under ``bench.phone_trace`` and splits the inside leg at each hop (the
marks are listed there): for every mark, the time from the packet's arrival (median, p99) and from
the mark before it (median). The wrappers cost about a microsecond per mark.

``--baseline DIR`` compares two firmwares in one run: DIR holds another tree of the phone's packages
(``git archive <commit> | tar -x -C DIR``); blocks of ``--block`` calls alternate between it and this
checkout, each on a freshly started phone, so that the machine's load falls on both alike.
``--switch-interval S`` adds this checkout run with ``sys.setswitchinterval(S)`` (with ``--stages``).
Only our phone; baresip's figures come from ``bench.run --only latency``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.lab import OURS_USER, Lab
from bench.measure import INCOMING_SPACING_S, _ours_event
from lab import sniff
from lab.servers.phone import ALLOCATOR_ENV, PhoneProcess
from lab.sniff import Packet

_PUBLISH = (b"\x30", b"\x32")  # MQTT PUBLISH, QoS 0 / 1
_TRACER = Path(__file__).with_name("phone_trace.py")
_FIRST_STAGES = {
    "screen pop": ("sip.prefilter", "sip.select_account", "sip.incoming"),
    "call end": ("sip.call_state",),
}
_COMMON_STAGES = ("sip.emit", "core.post", "core.handle", "core.step", "bridge.publish_event",
                  "outbox.appended", "pump.run", "paho.publish", "paho.queued", "paho.send")  # fmt: skip
_AFTER_STAGES = {  # may come after the PUBLISH
    "screen pop": (),
    "call end": ("sip.drop_call", "sip.media_clock", "sip.media_clock_done", "sip.dropped", "gc.collect",
                 "gc.collected"),
}  # fmt: skip


def _stages(kind: str) -> tuple[str, ...]:
    return (*_FIRST_STAGES[kind], *_COMMON_STAGES, *_AFTER_STAGES[kind])


@dataclass
class Variant:
    name: str
    tree: Path | None  # None: this checkout
    env: dict[str, str] = field(default_factory=dict)
    legs: dict[str, list[float]] = field(default_factory=dict)
    stages: dict[str, dict[str, list[float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Cycle:
    kind: str
    arrived: float
    published: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=50, help="calls per firmware (default 50)")
    parser.add_argument("--stages", action="store_true", help="time every hop inside the phone")
    parser.add_argument("--baseline", type=Path, help="another tree of the phone's packages to compare")
    parser.add_argument("--block", type=int, default=25, help="calls per phone start (default 25)")
    parser.add_argument(
        "--switch-interval", type=float, help="also this checkout with sys.setswitchinterval(S) (--stages)"
    )
    args = parser.parse_args(argv)
    if not sniff.available():
        print("bench.legs needs a loopback sniffer (root or CAP_NET_RAW)", file=sys.stderr)
        return 1
    variants = [Variant("this checkout", None)]
    if args.baseline is not None:
        variants.insert(0, Variant(f"baseline {args.baseline}", args.baseline.resolve()))
    if args.switch_interval is not None:
        env = {"DESKPHONE_TRACE_SWITCH_INTERVAL_S": str(args.switch_interval)}
        variants.append(Variant(f"this checkout, switch interval {args.switch_interval} s", None, env=env))
    scratch = Path(tempfile.mkdtemp(prefix="deskphone-legs-"))
    lab = Lab(scratch, mic_seconds=60.0)
    packets: list[Packet] = []
    try:
        with sniff.Sniffer() as sniffer:
            sniffer.add(packets.append)
            lab.start()
            done = 0
            while done < args.n:
                block = min(args.block, args.n - done)
                for variant in variants:
                    _run_block(lab, variant, block, packets, args.stages, scratch)
                done += block
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    for variant in variants:
        if len(variants) > 1:
            print(f"== {variant.name}")
        _print(variant)
    return 0


def _run_block(
    lab: Lab, variant: Variant, n: int, packets: list[Packet], stages: bool, scratch: Path
) -> None:
    env = dict(ALLOCATOR_ENV) | variant.env
    launcher = None
    trace = scratch / f"trace-{time.monotonic_ns()}.txt"
    if variant.tree is not None:
        env["PYTHONPATH"] = str(variant.tree)
    if stages:
        env["DESKPHONE_TRACE"] = str(trace)
        launcher = [sys.executable, str(_TRACER)]
    phone = lab.start_ours(env=env, launcher=launcher)
    cycles: list[Cycle] = []
    try:
        lab.wait_ours_registered()
        for _ in range(n):
            _one_call(lab, phone, variant, packets, cycles)
    finally:
        lab.stop_ours()
    if stages:
        _split_stages(variant, cycles, _read_marks(trace))


def _one_call(
    lab: Lab, phone: PhoneProcess, variant: Variant, packets: list[Packet], cycles: list[Cycle]
) -> None:
    far, crm = lab.far, lab.crm
    assert far is not None and crm is not None
    broker = lab.broker.port

    def split(name: str, t0: float, t_crm: float, sip: bytes, event: bytes) -> None:
        arrived = [p.t for p in packets if p.proto == 17 and p.dport == phone.sip_port
                   and p.payload.startswith(sip)]  # fmt: skip
        published = [p.t for p in packets if p.proto == 6 and p.dport == broker
                     and p.payload[:1] in _PUBLISH and event in p.payload]  # fmt: skip
        variant.legs.setdefault(f"{name}: end to end", []).append((t_crm - t0) * 1000.0)
        if arrived and published:
            cycles.append(Cycle(name, arrived[0], published[0]))
            for leg, ms in (
                ("far end -> phone", arrived[0] - t0),
                ("inside the phone", published[0] - arrived[0]),
                ("broker -> CRM", t_crm - published[0]),
            ):
                variant.legs.setdefault(f"{name}: {leg}", []).append(ms * 1000.0)

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


def _read_marks(path: Path) -> list[tuple[float, str]]:
    if not path.exists():
        print(f"no trace written ({path})", file=sys.stderr)
        return []
    marks = []
    for line in path.read_text().splitlines():
        t, name = line.split(" ", 1)
        marks.append((float(t), name))
    return marks


def _split_stages(variant: Variant, cycles: list[Cycle], marks: list[tuple[float, str]]) -> None:
    """For each cycle, the first of each mark after the packet arrived (and before it was published)."""
    for cycle in cycles:
        names = _stages(cycle.kind)
        table = variant.stages.setdefault(cycle.kind, {})
        for name in names:
            late = cycle.published + (
                0.5 if name.startswith(("sip.drop", "sip.media", "gc.")) else 0.002
            )  # may come after
            first = next((t for t, m in marks if m == name and cycle.arrived <= t <= late), None)
            if first is not None:
                table.setdefault(name, []).append((first - cycle.arrived) * 1000.0)
        table.setdefault("wire out", []).append((cycle.published - cycle.arrived) * 1000.0)


def _p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def _print(variant: Variant) -> None:
    for name, values in variant.legs.items():
        print(f"{name:36s} median {statistics.median(values):7.2f} ms, p99 {_p99(values):7.2f} ms, "
              f"max {max(values):7.2f} ms, n {len(values)}")  # fmt: skip
    for kind, table in variant.stages.items():
        print(
            f"-- {kind}, inside the phone: ms from the packet's arrival (median, p99; + the median's growth)"
        )
        previous: float | None = None
        for name in (*_stages(kind), "wire out"):
            values = table.get(name)
            if not values:
                continue
            median = statistics.median(values)
            step = "" if previous is None else f"  +{median - previous:6.3f}"
            print(f"   {name:22s} {median:7.3f} {_p99(values):7.3f}{step}   n {len(values)}")
            previous = median


if __name__ == "__main__":
    sys.exit(main())
