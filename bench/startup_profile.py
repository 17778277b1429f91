"""``python -m bench.startup_profile [N] [--variant SPEC ...] [--importtime]``: where a start of the
phone spends its time, from exec to the REGISTER's 200 OK and to the broker's CONNACK.

The phone runs under ``bench/startup_trace.py`` (the ``deskphone run`` command with time marks at
each stage: imports, config, board, pjsua2's ``libCreate`` ... ``Account.create``, the sip thread's
first poll, the first ``onRegState``, the CRM bridge) against the lab's kamailio and mosquitto; the
loopback sniffer (root or CAP_NET_RAW) times the REGISTER, the 401, the REGISTER with credentials,
the 200 OK, MQTT's CONNECT and CONNACK. Printed: the median of each stage, in ms since the exec, per
variant (columns), and the step from the stage above.

A variant is ``LABEL;INTERPRETER OPTIONS;TREE;PYTHON`` (all but the label optional): e.g.
``'frozen-off;-X frozen_modules=off'``, ``'before;;/tmp/old'`` for another checkout of the phone's
packages (``git archive``), put first on PYTHONPATH, or ``'hook;;;/tmp/venv/bin/python'`` for another
venv's interpreter (its site: a copy of this venv with another editable install, say). Variants
start in turn (A, B, A, B ...), so that the machine's load falls on all alike. ``--importtime`` adds
one more start per variant and round under ``-X importtime`` and prints the imports before the
REGISTER with the largest own time.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab import sniff
from lab.servers.files import write_private
from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import Mosquitto
from lab.servers.phone import PHONE_PASSWORD, PHONE_USER, PhoneProcess, compile_checkout, phone_config_text
from lab.servers.ports import free_port

TRACE = Path(__file__).with_name("startup_trace.py")
# The last line the phone logs before its REGISTER goes out (sip_stack.agent): imports above it in
# the log came before the REGISTER.
SIP_STARTED = "SIP stack started"
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")
_REGISTER_CSEQ = re.compile(rb"\r\nCSeq: *\d+ REGISTER\r\n", re.IGNORECASE)
_CONNECT, _CONNACK = 0x10, 0x20


@dataclass
class Variant:
    label: str
    options: list[str]
    tree: Path | None
    python: str = sys.executable
    starts: list[dict[str, float]] = field(default_factory=list)
    imports: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Variant:
        label, options, tree, python = ([*spec.split(";"), "", "", ""])[:4]
        return cls(label, shlex.split(options), Path(tree) if tree else None, python or sys.executable)

    def env(self) -> dict[str, str]:
        if self.tree is None:
            return {}
        return {"PYTHONPATH": os.pathsep.join(filter(None, [str(self.tree), os.environ.get("PYTHONPATH")]))}


class Profiler:
    def __init__(self, scratch: Path, sniffer: sniff.Sniffer) -> None:
        self.dir = scratch
        self.kam = Kamailio(scratch / "kamailio")
        self.broker = Mosquitto(scratch / "mosquitto")
        self.sniffer = sniffer
        self.starts = 0

    def __enter__(self) -> Profiler:
        self.kam.start()
        self.broker.start()
        self.kam.add_user(PHONE_USER, PHONE_PASSWORD)
        return self

    def __exit__(self, *exc: object) -> None:
        self.broker.stop()
        self.kam.stop()

    def start_once(self, variant: Variant, importtime: bool = False) -> tuple[dict[str, float], str]:
        """One start of the phone: its stages in ms since the exec, and its log."""
        self.starts += 1
        workdir = self.dir / f"phone-{self.starts}"
        sip_port = free_port()
        text = phone_config_text(
            workdir, f"{self.kam.host}:{self.kam.port}", sip_port, mqtt_port=self.broker.port
        ).replace('level = "DEBUG"', 'level = "INFO"')  # as bench.run's phone
        workdir.mkdir(parents=True)
        config = workdir / "deskphone.toml"
        write_private(config, text)
        trace = workdir / "trace.json"
        options = [*variant.options, *(["-X", "importtime"] if importtime else [])]
        argv = [variant.python, *options, str(TRACE), "run", "--config", str(config)]
        phone = PhoneProcess(workdir, text, sip_port, argv=argv)
        phone.env = {**phone.env, **variant.env(), "DESKPHONE_STARTUP_TRACE": str(trace)}
        packets: list[sniff.Packet] = []

        def keep(p: sniff.Packet) -> None:
            if sip_port in (p.sport, p.dport) or self.broker.port in (p.sport, p.dport):
                packets.append(p)

        self.sniffer.add(keep)
        try:
            t0 = time.monotonic()
            phone.start()
            phone.wait_for(lambda s: s["registered"], 15, "registration")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(_is_connack(p, self.broker.port) for p in packets):
                time.sleep(0.02)
        finally:
            self.sniffer.remove(keep)
            phone.stop()
        stages = {label: (t - t0) * 1000 for label, t in json.loads(trace.read_text())}
        stages.update(_wire_stages(packets, sip_port, self.broker.port, t0))
        log = phone.log_text()
        shutil.rmtree(workdir, ignore_errors=True)
        return stages, log


def _is_connack(p: sniff.Packet, broker: int) -> bool:
    return p.proto == 6 and p.sport == broker and p.payload[:1] == bytes([_CONNACK])


def _wire_stages(packets: list[sniff.Packet], sip_port: int, broker: int, t0: float) -> dict[str, float]:
    out: dict[str, float] = {}

    def first(label: str, t: float) -> None:
        out.setdefault(label, (t - t0) * 1000)

    registers = 0
    for p in packets:
        if p.proto == 17 and p.sport == sip_port and p.payload.startswith(b"REGISTER "):
            registers += 1
            authorized = b"\nAuthorization:" in p.payload
            first("wire: REGISTER with credentials" if authorized else "wire: REGISTER", p.t)
        elif p.proto == 17 and p.dport == sip_port and _REGISTER_CSEQ.search(p.payload):
            if p.payload.startswith(b"SIP/2.0 401") or p.payload.startswith(b"SIP/2.0 407"):
                first("wire: 401 challenge", p.t)
            elif p.payload.startswith(b"SIP/2.0 200"):
                first("wire: 200 OK (registered)", p.t)
        elif p.proto == 6 and p.dport == broker and p.payload[:1] == bytes([_CONNECT]):
            first("wire: MQTT CONNECT", p.t)
        elif _is_connack(p, broker):
            first("wire: CONNACK (broker connected)", p.t)
    return out


def imports_before_register(log: str) -> dict[str, float]:
    """``-X importtime``'s own time (ms) of each module imported before the REGISTER went out."""
    own: dict[str, float] = {}
    for line in log.splitlines():
        if SIP_STARTED in line:
            break
        match = _IMPORTTIME.match(line)
        if match:
            own[match.group(4)] = int(match.group(1)) / 1000
    return own


def report(variants: list[Variant], load: tuple[float, float, float], top: int) -> str:
    base = variants[0]
    labels = sorted(
        {label for v in variants for s in v.starts for label in s},
        key=lambda label: _median([s[label] for s in base.starts if label in s]) or 1e9,
    )
    n = min(len(v.starts) for v in variants)
    lines = [
        f"start-up profile: {n} starts per variant, alternating; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}",
        "median ms since the exec (step from the row above, in the first variant)",
        f"{'stage':<46}" + "".join(f"{v.label:>14}" for v in variants) + f"{'step':>9}",
    ]
    previous = 0.0
    for label in labels:
        cells = []
        for v in variants:
            value = _median([s[label] for s in v.starts if label in s])
            cells.append(f"{value:14.1f}" if value is not None else f"{'-':>14}")
        mine = _median([s[label] for s in base.starts if label in s])
        step = f"{mine - previous:+9.1f}" if mine is not None else ""
        previous = mine if mine is not None else previous
        lines.append(f"{label:<46}" + "".join(cells) + step)
    for v in variants:
        if not v.imports:
            continue
        own = {name: statistics.median(values) for name, values in v.imports.items()}
        total = sum(own.values())
        lines.append(
            f"imports before the REGISTER, {v.label} (-X importtime, own ms, median of "
            f"{len(next(iter(v.imports.values())))}): {len(own)} modules, {total:.1f} ms in all; largest:"
        )
        for name, ms in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {ms:6.1f}  {name}")
    return "\n".join(lines)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=10, help="starts per variant (default 10)")
    parser.add_argument(
        "--variant", action="append", default=[], help="LABEL;OPTIONS;TREE;PYTHON (repeatable)"
    )
    parser.add_argument("--importtime", action="store_true", help="also the imports before the REGISTER")
    parser.add_argument("--top", type=int, default=25, help="imports listed per variant (default 25)")
    args = parser.parse_args(argv)
    if not sniff.available():
        print("bench.startup_profile needs a loopback sniffer (root or CAP_NET_RAW)", file=sys.stderr)
        return 1
    variants = [Variant.parse(spec) for spec in args.variant] or [Variant("phone", [], None)]
    compile_checkout()
    compileall.compile_file(TRACE.with_name("trace_marks.py"), quiet=1)  # the tracer's, before the first mark
    for v in variants:
        if v.tree is not None:
            compileall.compile_dir(v.tree, quiet=1)
    scratch = Path(tempfile.mkdtemp(prefix="deskphone-startup-"))
    try:
        with sniff.Sniffer() as sniffer, Profiler(scratch, sniffer) as profiler:
            for v in variants:  # one start each first: the page cache warm for all alike
                profiler.start_once(v)
            for _ in range(args.n):
                for v in variants:
                    stages, _log = profiler.start_once(v)
                    v.starts.append(stages)
                    if args.importtime:
                        _stages, log = profiler.start_once(v, importtime=True)
                        for name, ms in imports_before_register(log).items():
                            v.imports.setdefault(name, []).append(ms)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(report(variants, os.getloadavg(), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
