"""``python -m bench.run [--quick]``: our phone against baresip-as-the-phone, side by side.

One kamailio, one mosquitto and one baresip far end serve both systems in the same run. Writes
``bench/results/results.md`` (the table) and ``results.json`` (every sample) and prints the table.
Latencies are in ms, ``spread`` is the interquartile range (p75 - p25).
The last table judges the run against issue 12's goals (``bench.goals``).

Full mode is the size issue 12 asks for: a 10-minute audio call for ours and baresip, a 10-minute
call of ours under a CPU cap (a cgroup quota of 25% of one core), and a 500-call soak for both. To
keep ``make bench`` near 35 minutes on 2 cores the independent long parts run at the same time where
that is fair: the three 10-minute calls together (ours and baresip side by side see the same machine;
the capped phone is a second phone of ours in its own cgroup, with its own far end, so it cannot take
more than its quota from the other two), then both soaks together (each with its own far end; they
count memory, descriptors and exactly-once delivery, not time). Latencies (start-up, screen pop, call
end, click to call) and the idle CPU window run alone, one system after the other. ``--quick`` is
CI's short version (~3 minutes). Every far end plays its marks with an idle player (an ``aubridge``
device without a source): baresip's ``alsa,null`` player spins a core in every call, which the
earlier runs paid on 2 cores in every in-call figure.
``--only audio --call-s 60`` runs only our PCMU call with marks (the earpiece budget in docs/SIP.md).
Start-up figures and the audio path delay need a loopback packet sniffer (root or CAP_NET_RAW);
without one they are reported as not measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import cpucap, goals, measure
from bench.lab import Lab
from lab import sniff

RESULTS = Path(__file__).parent / "results"

FULL = {
    "latency_n": 200,
    "c2c_n": 200,
    "cpu_window_s": 60.0,
    "audio_call_s": 600.0,
    "capped_latency_n": 100,
    "capped_call_s": 600.0,
    "startup_n": 10,
    "soak_ours_n": 500,
    "soak_bs_n": 500,
    # After the soak, RSS once the phone is idle again: past sip_stack's heap trim, QUIET_BEFORE_TRIM_S
    # (40 s) after the last call, when Timer J has ended its transactions (docs/SIP.md "Memory").
    "soak_settle_s": 45.0,
}
QUICK = {
    "latency_n": 10,
    "c2c_n": 10,
    "cpu_window_s": 5.0,
    "audio_call_s": 20.0,
    "capped_latency_n": 5,
    "capped_call_s": 10.0,
    "startup_n": 3,
    "soak_ours_n": 10,
    "soak_bs_n": 10,
    "soak_settle_s": 0.0,
}

log = logging.getLogger("bench")


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    return {
        "median": round(float(np.median(a)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "spread": round(float(np.percentile(a, 75) - np.percentile(a, 25)), 3),
        "n": len(values),
    }


def _cell(s: dict[str, Any] | None) -> list[str]:
    if not s or not s.get("n"):
        return ["—", "—", "—", "0"]
    return [f"{s['median']:g}", f"{s['p99']:g}", f"{s['spread']:g}", str(s["n"])]


def render(rows: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]], notes: list[str]) -> str:
    head = (
        "| metric | ours median | ours p99 | ours spread | ours n "
        "| baresip median | baresip p99 | baresip spread | baresip n |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(f"| {name} | " + " | ".join(_cell(a) + _cell(b)) + " |\n" for name, a, b in rows)
    return head + body + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def single(value: float | None) -> dict[str, Any] | None:
    return None if value is None else {"median": value, "p99": value, "spread": 0, "n": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI's short version (few repetitions)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--only",
        default="",
        help="comma list: startup,latency,c2c,cpu,capped_latency,calls,audio,soak,faults (default all;\n"
        "audio: only our PCMU call of 'calls', for the earpiece path and the bridge counters)",
    )
    parser.add_argument("--call-s", type=float, help="length of the audio calls in s (mode's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s")
    cfg = dict(QUICK if args.quick else FULL)
    if args.call_s:
        cfg["audio_call_s"] = cfg["capped_call_s"] = args.call_s
    only = set(filter(None, args.only.split(",")))
    wanted: Callable[[str], bool] = lambda name: not only or name in only  # noqa: E731
    scratch = Path(tempfile.mkdtemp(prefix="deskphone-bench-"))
    started = time.monotonic()
    data: dict[str, Any] = {"mode": "quick" if args.quick else "full", "config": cfg, "errors": {}}
    data["machine"] = {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}
    # The mic file plays on while the phone is in a call (the short ones before the long call too):
    # long enough that the long call's marks are all in it.
    lab = Lab(scratch, mic_seconds=3 * max(cfg["audio_call_s"], cfg["capped_call_s"]) + 180.0)
    sniffer = sniff.Sniffer() if sniff.available() else None
    if sniffer is not None:
        sniffer.__enter__()

    def step(name: str, fn: Callable[[], Any]) -> Any:
        if not wanted(name):
            return None
        t = time.monotonic()
        log.info("== %s", name)
        try:
            value = fn()
        except Exception as exc:
            log.error("%s failed: %s", name, exc)
            data["errors"][name] = traceback.format_exc()[-2000:]
            return None
        log.info("== %s done in %.1f s", name, time.monotonic() - t)
        data[name] = value
        return value

    try:
        lab.start()
        lab.start_ours()
        lab.wait_ours_registered()
        lab.start_bs()
        lab.wait_bs_registered()
        step("startup", lambda: measure.startup(lab, sniffer, cfg["startup_n"]))
        step(
            "latency",
            lambda: {s: measure.incoming_cycles(lab, s, cfg["latency_n"]) for s in ("ours", "bs")},
        )
        step("c2c", lambda: {s: measure.click_to_call(lab, s, cfg["c2c_n"]) for s in ("ours", "bs")})
        step("cpu", lambda: measure.cpu_and_memory(lab, cfg["cpu_window_s"]))
        if cpucap.available():
            step("capped_latency", lambda: capped_latency(lab, cfg["capped_latency_n"]))
        step("calls", lambda: long_calls(lab, sniffer, cfg))
        if not wanted("calls") and sniffer is not None:
            step("audio", lambda: {"ours": our_audio_call(lab, sniffer, cfg["audio_call_s"])})
        step("soak", lambda: soaks(lab, cfg))
    finally:
        lab.stop()
        if sniffer is not None:
            sniffer.__exit__(None, None, None)
    # CI's make test has just run tests/faults; its quick bench leaves out the 3-minute flood at four rates.
    skip = ["-k", "not floods_at_four_rates"] if args.quick else []
    step("faults", lambda: run_fault_tests(scratch / "faults.xml", skip))
    data["elapsed_s"] = round(time.monotonic() - started, 1)
    rows, notes = tabulate(data)
    data["summary"] = {name: {"ours": a, "baresip": b} for name, a, b in rows}
    args.out.mkdir(parents=True, exist_ok=True)
    table = render(rows, notes) + "\n" + goals.render(rows)
    title = f"# Bench results ({data['mode']} mode, {data['elapsed_s']} s)\n\n"
    (args.out / "results.md").write_text(title + table)
    (args.out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(title + table)
    if args.keep:
        print(f"scratch kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if data["errors"] else 0


def capped_latency(lab: Lab, n: int) -> dict[str, Any]:
    """Screen pop and call end of our phone while its cgroup may use a quarter of one core."""
    assert lab.ours is not None and lab.ours.proc is not None
    with cpucap.CpuCap(0.25, "latency") as cap:
        cap.add(lab.ours.proc.pid)
        return {"cap": cap.description, **measure.incoming_cycles(lab, "ours", n)}


def long_calls(lab: Lab, sniffer: sniff.Sniffer | None, cfg: dict[str, Any]) -> dict[str, Any]:
    """At the same time: ours in a PCMU call with marks (audio path, counters, CPU), baresip in a G.722
    call (CPU, RSS), and a second phone of ours under the CPU cap in a PCMU call of its own."""
    jobs: dict[str, Callable[[], Any]] = {"bs": lambda: measure.baresip_call(lab, cfg["audio_call_s"])}
    if sniffer is not None:
        jobs["ours"] = lambda: our_audio_call(lab, sniffer, cfg["audio_call_s"])
        if cpucap.available():
            jobs["capped"] = lambda: capped_call(lab, sniffer, cfg["capped_call_s"])
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def our_audio_call(lab: Lab, sniffer: sniff.Sniffer, seconds: float) -> dict[str, Any]:
    far = measure.start_pcmu_far_end(lab, "1004")
    try:
        return measure.audio_path(lab, sniffer, seconds, far)
    finally:
        far.stop()


def capped_call(lab: Lab, sniffer: sniff.Sniffer, seconds: float) -> dict[str, Any]:
    phone = lab.start_phone("1005", f"{lab.device_id}-capped")
    far = measure.start_pcmu_far_end(lab, "1006")
    try:
        phone.wait_for(lambda s: s["registered"], 15, "registration")
        assert phone.proc is not None
        with cpucap.CpuCap(0.25, "call") as cap:
            cap.add(phone.proc.pid)
            return {"cap": cap.description, **measure.audio_path(lab, sniffer, seconds, far, phone)}
    finally:
        far.stop()
        phone.stop()


def soaks(lab: Lab, cfg: dict[str, Any]) -> dict[str, Any]:
    """Both soaks at once, each with a far end of its own."""
    far_bs = lab.start_far_end("1007", auto_answer=False)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            settle = cfg["soak_settle_s"]
            ours = pool.submit(measure.soak, lab, "ours", cfg["soak_ours_n"], settle_s=settle)
            bs = pool.submit(measure.soak, lab, "bs", cfg["soak_bs_n"], far_bs, settle_s=settle)
            return {"ours": ours.result(), "bs": bs.result()}
    finally:
        far_bs.stop()


def run_fault_tests(junit: Path, extra: list[str] | None = None) -> dict[str, tuple[str, float]]:
    """Run tests/faults (pytest, e2e) and return each test's outcome and duration."""
    import subprocess
    import xml.etree.ElementTree as ET

    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults"]
    subprocess.run(
        [*command, *(extra or []), f"--junitxml={junit}"],
        cwd=root,
        check=False,
    )
    results: dict[str, tuple[str, float]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        outcome = "failed" if failed else "skipped" if skipped else "passed"
        results[case.get("name", "?")] = (outcome, round(float(case.get("time", 0)), 1))
    return results


def tabulate(data: dict[str, Any]) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    rows: list[tuple[str, Any, Any]] = []
    notes = [
        "Latencies in ms; spread = interquartile range; CPU in CPU-seconds per minute; RSS in MiB.",
        "Screen pop: far end's dial command sent -> CRM receives call.incoming / CALL_INCOMING.",
        "Click-to-call: CRM publishes the dial -> far end reports the INVITE (ctrl_tcp CALL_INCOMING).",
        "Call end: far end's hangup (BYE) sent -> CRM receives call.ended / CALL_CLOSED.",
    ]
    st = data.get("startup") or {}
    for metric in ("start_to_registered_ms", "start_to_broker_connected_ms", "start_to_online_ms"):
        rows.append(
            (
                metric.replace("_ms", " (ms)").replace("_", " "),
                summary(st.get("ours", {}).get(metric, [])),
                summary(st.get("baresip", {}).get(metric, [])) if metric != "start_to_online_ms" else None,
            )
        )
    lat = data.get("latency") or {}
    for metric in ("screen_pop_ms", "call_end_ms"):
        rows.append(
            (
                metric.replace("_ms", " (ms)").replace("_", " "),
                summary(lat.get("ours", {}).get(metric, [])),
                summary(lat.get("bs", {}).get(metric, [])),
            )
        )
    c2c = data.get("c2c") or {}
    rows.append(("click to call (ms)", summary(c2c.get("ours", [])), summary(c2c.get("bs", []))))
    cpu = data.get("cpu") or {}
    for metric, label in (
        ("cpu_idle_s_per_min", "CPU idle registered (s/min)"),
        ("cpu_call_s_per_min", "CPU in G.722 call (s/min)"),
        ("rss_idle_mib", "RSS idle (MiB)"),
        ("rss_call_mib", "RSS in call (MiB)"),
    ):
        rows.append(
            (label, single(cpu.get("ours", {}).get(metric)), single(cpu.get("baresip", {}).get(metric)))
        )
    calls = data.get("calls") or data.get("audio") or {}
    audio, bs_call = calls.get("ours"), calls.get("bs")
    if audio or bs_call:
        seconds = (audio or bs_call)["call_s"]
        for key, label in (("cpu_s_per_min", "CPU (s/min)"), ("rss_mib", "RSS (MiB)")):
            rows.append(
                (
                    f"call {seconds:g} s: {label}",
                    single(audio.get(key)) if audio else None,
                    single(bs_call.get(key)) if bs_call else None,
                )
            )
    if audio:
        rows.append(("audio: mic stream -> RTP sent (ms)", summary(audio["mic_to_rtp_ms"]), None))
        rows.append(("audio: RTP received -> earpiece (ms)", summary(audio["rtp_to_earpiece_ms"]), None))
        jitter = audio.get("jitter_buffer")
        if jitter:
            rows.append(("audio: jitter buffer delay, pjmedia (ms)", single(float(jitter["delay_ms"])), None))
            rows.append(("audio: jitter buffer empty reads", single(float(jitter["empty"])), None))
        c = audio["counters"]
        keys = ("audio.overruns", "audio.underruns", "audio.errors", "bridge.underruns", "bridge.overruns")
        for key in keys:
            if key in c:
                rows.append((f"audio call {audio['call_s']:g} s: {key}", single(float(c[key])), None))
        notes.append(
            "Jitter buffer: pjmedia's mean fill at each tick's first read over the call (20 ms: one packet, "
            "no reserve; 40: one packet held back) and its empty reads (gaps), from the phone's log line at "
            "its hangup (docs/SIP.md, Earpiece budget)."
        )
        notes.append(
            "Audio path: marked bursts in the mic file / far end's file; RTP times from a loopback sniffer "
            "(PCMU call); baresip has no comparable hook (—)."
        )
        notes.append(
            "mic -> RTP: from the first look (every ~6 ms) at the sim microphone's read position "
            "(/proc fdinfo of the file the ALSA file plugin reads) past a burst's first sample, to the "
            "RTP packet carrying it. RTP -> earpiece: from the packet to the first look at the earpiece "
            "file that has the burst written (the frame counters of earlier runs misplaced both by the "
            "media clock's pause between the dial tone and the call)."
        )
        notes.append(
            "The long calls ran at the same time: ours (PCMU, marks), baresip (G.722 with the far end) "
            "and the CPU-capped phone (a second phone of ours, PCMU, its own far end)."
        )
    lat_c = data.get("capped_latency") or {}
    audio_c = calls.get("capped")
    uncapped: dict[str, Any] = {
        "screen_pop_ms": summary(lat.get("ours", {}).get("screen_pop_ms", [])),
        "call_end_ms": summary(lat.get("ours", {}).get("call_end_ms", [])),
    }
    capped: dict[str, Any] = {}
    for metric in ("screen_pop_ms", "call_end_ms"):
        if lat_c.get(metric):
            capped[metric] = summary(lat_c[metric])
            label = "CPU-capped 25%: " + metric.replace("_ms", " (ms)").replace("_", " ")
            rows.append((label, capped[metric], None))
    if audio_c:
        capped["rtp_to_earpiece_ms"] = summary(audio_c["rtp_to_earpiece_ms"])
        if audio:
            uncapped["rtp_to_earpiece_ms"] = summary(audio["rtp_to_earpiece_ms"])
        rows.append(("CPU-capped 25%: mic stream -> RTP sent (ms)", summary(audio_c["mic_to_rtp_ms"]), None))
        rows.append(("CPU-capped 25%: RTP received -> earpiece (ms)", capped["rtp_to_earpiece_ms"], None))
        rows.append((f"CPU-capped 25%: call {audio_c['call_s']:g} s: CPU (s/min)",
                     single(audio_c["cpu_s_per_min"]), None))  # fmt: skip
        for key in ("audio.overruns", "audio.underruns", "bridge.underruns", "bridge.overruns"):
            if key in audio_c["counters"]:
                label = f"CPU-capped 25%: call {audio_c['call_s']:g} s: {key}"
                rows.append((label, single(float(audio_c["counters"][key])), None))
    if capped:
        ratios = [
            f"{metric.removesuffix('_ms').replace('_', ' ')} "
            f"x{capped[metric][q] / uncapped[metric][q]:.2f} ({q})"
            for metric in capped
            if uncapped.get(metric, {}).get("n")
            for q in ("median", "p99")
            if uncapped[metric][q]
        ]
        notes.append(
            f"CPU-capped rows: our phone under a quota of 25% of one core "
            f"({lat_c.get('cap') or (audio_c or {}).get('cap')}), measured under emulation of a slower "
            "CPU; the servers and baresip are not capped. Capped / uncapped: " + ", ".join(ratios) + "."
        )
    notes.append(
        "baresip as the phone plays and records through its aubridge module (paced by its own ptime "
        "timer, no ALSA): alsa,null does not pace and spins a core, which made in-call CPU incomparable."
    )
    soak = data.get("soak") or {}
    for key, label in (("rss_kib", "soak RSS (MiB) at call"), ("fds", "soak open fds at call")):
        o, b = soak.get("ours", {}).get(key, {}), soak.get("bs", {}).get(key, {})
        for i in sorted(set(o) | set(b), key=int):
            scale = 1024 if key == "rss_kib" else 1
            rows.append(
                (
                    f"{label} {i}",
                    single(round(o[i] / scale, 1)) if i in o else None,
                    single(round(b[i] / scale, 1)) if i in b else None,
                )
            )
    o, b = soak.get("ours", {}), soak.get("bs", {})
    if "rss_settled_mib" in o or "rss_settled_mib" in b:
        label = f"soak RSS (MiB) {data['config']['soak_settle_s']:g} s after the last call"
        rows.append((label, single(o.get("rss_settled_mib")), single(b.get("rss_settled_mib"))))
    notes.append(rss_split_note(cpu.get("ours", {}), o))
    for sys_key, name in (("ours", "ours"), ("bs", "baresip")):
        s = soak.get(sys_key)
        if s:
            notes.append(
                f"Soak {name}: {s['calls']} calls, {s['calls_with_end_event']} with an end event, "
                f"{s['end_events_received']} end events received, exactly once: "
                f"{s['every_end_event_exactly_once']}."
            )
    for name, (outcome, seconds) in (data.get("faults") or {}).items():
        label = f"fault {name}: passed (1/0), test s {seconds:g}"
        rows.append((label, single(float(outcome == "passed")), None))
    if data.get("faults"):
        notes.append("Fault rows: the tests/faults pytest tests (assertions there), run by this bench.")
    for name, err in data.get("errors", {}).items():
        notes.append(f"ERROR in {name}: {err.strip().splitlines()[-1]}")
    notes.append(f"Total run time {data.get('elapsed_s')} s on {data['machine']['cpus']} CPUs.")
    return rows, notes


def rss_split_note(cpu: dict[str, Any], soak: dict[str, Any]) -> str:
    """Our phone's RSS as anonymous memory (heaps, stacks) / file pages (libraries) where measured."""
    parts = [
        f"{label} {figures[f'{key}_RssAnon']:g} / {figures[f'{key}_RssFile']:g}"
        for label, figures, key in (
            ("idle", cpu, "rss_idle"),
            ("in call", cpu, "rss_call"),
            ("after the soak, settled", soak, "rss_settled"),
        )
        if f"{key}_RssAnon" in figures
    ]
    return "Our RSS split, anonymous / file MiB: " + (", ".join(parts) or "not measured") + "."


if __name__ == "__main__":
    sys.exit(main())
