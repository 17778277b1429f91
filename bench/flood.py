"""``python -m bench.flood``: the highest flood rate at which a call placed during the flood connects.

For each rate (messages per second, ``lab.flood.FloodMix``) a flood of ``--seconds`` runs against one
phone; 3 s in, baresip calls the phone through kamailio and the phone answers as soon as it rings.
Recorded per rate: whether the call connected, the time from the dial to ringing and to connected,
the phone's RSS and open fds before the flood and after it (once the heap was trimmed, 40 s after the
last refusal). Two mixes: ``scanner`` (every source a stranger) and ``spoofed`` (a quarter of the rate
from the PBX's own address). Writes ``bench/results/flood.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.flood import FloodMix
from lab.servers.audio import write_sine_wav
from lab.servers.baresip import Baresip
from lab.servers.kamailio import Kamailio
from lab.servers.phone import PHONE_PASSWORD, PHONE_USER, PhoneProcess, events_of, phone_config_text
from lab.servers.ports import free_port

RESULTS = Path(__file__).parent / "results"
RATES = (50, 200, 500, 1000, 2000, 4000)


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else -1


def fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def rang(state: dict[str, Any], since: int) -> bool:
    return "1002" in [e["call"]["remote"]["number"] for e in events_of(state, "call.incoming")[since:]]


def call_during_flood(phone: PhoneProcess, far: Baresip, kamailio: Kamailio, mix: FloodMix) -> dict[str, Any]:
    incoming = len(events_of(phone.state(), "call.incoming"))
    time.sleep(3.0)  # the flood is under way
    dialled = time.monotonic()
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    result: dict[str, Any] = {"connected": False, "ring_ms": None, "connect_ms": None}
    try:
        phone.wait_for(lambda s: rang(s, incoming), timeout=30, what="ringing")
        result["ring_ms"] = round((time.monotonic() - dialled) * 1000)
        phone.wait_mode("ringing_in", timeout=5)
        phone.client.hook(True)
        far.wait_for_event("CALL_ESTABLISHED", timeout=20)
        result["connect_ms"] = round((time.monotonic() - dialled) * 1000)
        result["connected"] = True
        result["flood_still_running"] = mix.running()
    except (TimeoutError, AssertionError) as exc:
        result["error"] = str(exc)[:200]
    finally:
        far.hangup()
        phone.client.hook(False)
        phone.wait_mode("idle", timeout=30)
    return result


def flood_once(lab: dict[str, Any], mix_name: str, rate: int, seconds: float) -> dict[str, Any]:
    phone: PhoneProcess = lab["phone"]
    assert phone.proc is not None
    pid = phone.proc.pid
    before = (rss_kib(pid), fds(pid))
    trims = phone.log_text().count("heap trimmed")
    workdir = lab["work"] / f"flood-{mix_name}-{rate}"
    mix = FloodMix(phone.sip_port, rate, seconds, workdir, spoof_pbx=mix_name == "spoofed")
    mix.start()
    try:
        call = call_during_flood(phone, lab["far"], lab["kamailio"], mix)
        summaries = mix.wait()
    finally:
        mix.stop()
    phone.wait_for(lambda s: phone.log_text().count("heap trimmed") > trims, timeout=90, what="heap trim")
    after = (rss_kib(pid), fds(pid))
    return {
        "mix": mix_name,
        "rate": rate,
        **call,
        "alive": phone.alive(),
        "registered": phone.state()["registered"],
        "rss_kib": [before[0], after[0]],
        "fds": [before[1], after[1]],
        "sent": sum(s["sent"] for s in summaries),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| mix | rate/s | call connected | ring ms | connect ms | RSS KiB before -> after | fds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rss, fd = r["rss_kib"], r["fds"]
        connected = "yes" if r["connected"] else "NO"
        lines.append(
            f"| {r['mix']} | {r['rate']} | {connected} | {r['ring_ms']} | {r['connect_ms']} "
            f"| {rss[0]} -> {rss[1]} | {fd[0]} -> {fd[1]} |"
        )
    for name in ("scanner", "spoofed"):
        ok = [r["rate"] for r in rows if r["mix"] == name and r["connected"]]
        lines.append(f"\n{name}: highest rate with the call connected: {max(ok) if ok else 'none'}/s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each flood")
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    parser.add_argument("--mixes", default="scanner,spoofed")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        work = Path(tmp)
        kamailio = Kamailio(work / "kamailio")
        kamailio.start()
        kamailio.add_user(PHONE_USER, PHONE_PASSWORD)
        kamailio.add_user("1002", "pw")
        registrar = f"{kamailio.host}:{kamailio.port}"
        tone = write_sine_wav(work / "tone.wav", freq=440.0, seconds=600.0, rate=16000, amplitude=0.3)
        far = Baresip(work / "far", user="1002", password="pw", registrar=registrar, auto_answer=False,
                      source_wav=tone)  # fmt: skip
        port = free_port()
        phone = PhoneProcess(
            work / "phone", phone_config_text(work / "phone", registrar, port, log_level="INFO"), port
        )
        lab = {"work": work, "kamailio": kamailio, "far": far, "phone": phone}
        try:
            far.start()
            phone.start()
            phone.wait_for(lambda s: s["registered"], timeout=20, what="registration")
            for mix_name in args.mixes.split(","):
                for rate in rates:
                    rows.append(flood_once(lab, mix_name, rate, args.seconds))
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            phone.stop()
            far.stop()
            kamailio.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flood.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
