"""The measurements. Each returns plain figures; ``bench.run`` summarises and tabulates them."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.lab import (
    BS_BASETOPIC,
    BS_USER,
    FAR_USER,
    MARK_PERIOD_S,
    MIC_MARK_OFFSET_S,
    OURS_USER,
    RATE,
    Lab,
    Message,
    TimedBaresip,
    mark_onsets,
    proc_stat,
    rss_split,
)
from lab.servers.phone import PhoneProcess
from lab.sniff import Packet, Sniffer, rtp_payload, ulaw_decode

logger = logging.getLogger("bench")
BS_EVENT = f"/{BS_BASETOPIC}/event"


def _ours_event(lab: Lab, kind: str):  # type: ignore[no-untyped-def]
    topic = f"{lab.ours_topic}/events"
    return lambda m: m.topic == topic and m.payload.get("type") == kind


def _bs_event(kind: str):  # type: ignore[no-untyped-def]
    return lambda m: m.topic == BS_EVENT and m.payload.get("type") == kind


INCOMING_SPACING_S = 0.3


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


# ---- screen pop and call end -----------------------------------------------------------------------
def incoming_cycles(lab: Lab, system: str, n: int) -> dict[str, list[float]]:
    """Far end dials, the CRM sees the incoming call (screen pop); answered; far end hangs up (end)."""
    far, crm = lab.far, lab.crm
    assert far is not None and crm is not None
    pops: list[float] = []
    ends: list[float] = []
    next_dial = 0.0
    for _ in range(n):
        # Paced below the phone's INVITE admission rate (sip_stack.admission: 4 new calls/s, burst 4):
        # back-to-back cycles (~20/s) would measure its 486 refusals, not a screen pop.
        time.sleep(max(0.0, next_dial - time.monotonic()))
        next_dial = time.monotonic() + INCOMING_SPACING_S
        far.clear_events()
        mark = crm.mark()
        if system == "ours":
            assert lab.ours is not None
            t0 = far.send_command("dial", lab.uri(OURS_USER))
            pop = crm.wait(_ours_event(lab, "call.incoming"), mark)
            lab.ours.client.hook(True)
        else:
            assert lab.bs is not None
            t0 = far.send_command("dial", lab.uri(BS_USER))
            pop = crm.wait(_bs_event("CALL_INCOMING"), mark)
            lab.bs.send_command("accept")
        pops.append(_ms(pop.t - t0))
        far.wait_for_event("CALL_ESTABLISHED")
        mark = crm.mark()
        t1 = far.send_command("hangup")
        end = crm.wait(_ours_event(lab, "call.ended") if system == "ours" else _bs_event("CALL_CLOSED"), mark)
        ends.append(_ms(end.t - t1))
        far.wait_for_event("CALL_CLOSED")
        if system == "ours":
            assert lab.ours is not None
            lab.ours.client.hook(False)
            lab.ours.wait_mode("idle")
    return {"screen_pop_ms": pops, "call_end_ms": ends}


# ---- click to call ---------------------------------------------------------------------------------
def click_to_call(lab: Lab, system: str, n: int) -> list[float]:
    """CRM publishes the dial; the far end reports the INVITE (its CALL_INCOMING); far end rejects."""
    far, crm = lab.far, lab.crm
    assert far is not None and crm is not None
    out: list[float] = []
    for i in range(n):
        far.clear_events()
        if system == "ours":
            assert lab.ours is not None
            lab.ours.client.hook(True)
            lab.ours.wait_mode("dialing")
            mark = crm.mark()
            t0 = crm.publish(
                f"{lab.ours_topic}/cmd/dial", {"v": 1, "id": f"bench-{i}", "number": FAR_USER, "ttl_s": 30}
            )
        else:
            mark = crm.mark()
            token = f"bench{i}"
            t0 = crm.publish(
                f"/{BS_BASETOPIC}/command/{token}",
                {"command": "dial", "params": lab.uri(FAR_USER), "token": token},
            )
        invite = far.wait_for_event("CALL_INCOMING")
        out.append(_ms(invite["_t"] - t0))
        far.send_command("hangup")
        crm.wait(_ours_event(lab, "call.ended") if system == "ours" else _bs_event("CALL_CLOSED"), mark)
        if system == "ours":
            assert lab.ours is not None
            lab.ours.client.hook(False)
            lab.ours.wait_mode("idle")
    return out


# ---- CPU and memory --------------------------------------------------------------------------------
def _window(pids: dict[str, int], seconds: float) -> dict[str, tuple[float, int]]:
    before = {k: proc_stat(p)[0] for k, p in pids.items()}
    time.sleep(seconds)
    result = {}
    for k, p in pids.items():
        cpu, rss, _ = proc_stat(p)
        result[k] = ((cpu - before[k]) / seconds * 60.0, rss)
    return result


def _call_up(lab: Lab, system: str) -> None:
    far = lab.far
    assert far is not None
    far.clear_events()
    if system == "ours":
        assert lab.ours is not None
        far.send_command("dial", lab.uri(OURS_USER))
        lab.ours.wait_mode("ringing_in")
        lab.ours.client.hook(True)
    else:
        assert lab.bs is not None and lab.crm is not None
        mark = lab.crm.mark()
        far.send_command("dial", lab.uri(BS_USER))
        lab.crm.wait(_bs_event("CALL_INCOMING"), mark)
        lab.bs.send_command("accept")
    far.wait_for_event("CALL_ESTABLISHED")


def _call_down(lab: Lab, system: str) -> None:
    far = lab.far
    assert far is not None
    far.send_command("hangup")
    far.wait_for_event("CALL_CLOSED")
    if system == "ours":
        assert lab.ours is not None
        lab.ours.client.hook(False)
        lab.ours.wait_mode("idle")
    time.sleep(0.3)


def baresip_call(lab: Lab, seconds: float) -> dict[str, float]:
    """baresip-as-the-phone in a G.722 call with ``lab.far`` for ``seconds``: CPU (s/min) and RSS."""
    assert lab.bs is not None
    _call_up(lab, "bs")
    cpu, rss = _window({"bs": lab.bs.pid}, seconds)["bs"]
    _call_down(lab, "bs")
    return {"call_s": seconds, "cpu_s_per_min": round(cpu, 3), "rss_mib": round(rss / 1024, 1)}


def cpu_and_memory(lab: Lab, window_s: float) -> dict[str, dict[str, float]]:
    """CPU seconds per minute and RSS (MiB), idle-registered and in a G.722 call, both systems."""
    assert lab.ours is not None and lab.ours.proc is not None and lab.bs is not None
    pids = {"ours": lab.ours.proc.pid, "baresip": lab.bs.pid}
    time.sleep(1.0)
    idle = _window(pids, window_s)
    result: dict[str, dict[str, float]] = {k: {} for k in pids}
    for k, (cpu, rss) in idle.items():
        result[k]["cpu_idle_s_per_min"] = round(cpu, 3)
        result[k]["rss_idle_mib"] = round(rss / 1024, 1)
        result[k] |= {f"rss_idle_{part}": mib for part, mib in rss_split(pids[k]).items()}
    for system, key in (("ours", "ours"), ("bs", "baresip")):
        _call_up(lab, system)
        time.sleep(1.0)
        cpu, rss = _window({key: pids[key]}, window_s)[key]
        result[key]["cpu_call_s_per_min"] = round(cpu, 3)
        result[key]["rss_call_mib"] = round(rss / 1024, 1)
        result[key] |= {f"rss_call_{part}": mib for part, mib in rss_split(pids[key]).items()}
        _call_down(lab, system)
    return result


# ---- start-up --------------------------------------------------------------------------------------
class _StartupWatch:
    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.reg_ok: list[tuple[float, int]] = []
        self.connack: list[float] = []

    def __call__(self, p: Packet) -> None:
        if p.proto == 17 and p.payload.startswith(b"SIP/2.0 200"):
            head = p.payload.split(b"\r\n\r\n", 1)[0].lower()
            if b"register" in head.split(b"cseq:", 1)[-1].split(b"\r\n", 1)[0]:
                self.reg_ok.append((p.t, p.dport))
        elif p.proto == 6 and p.sport == self.broker_port and p.payload[:1] == b"\x20":
            self.connack.append(p.t)


def startup(lab: Lab, sniffer: Sniffer | None, reps: int) -> dict[str, dict[str, list[float]]]:
    """Start each system alone (the other stopped): time to REGISTER 200 OK, to CONNACK, to status."""
    assert lab.crm is not None
    out: dict[str, dict[str, list[float]]] = {
        "ours": {"start_to_registered_ms": [], "start_to_broker_connected_ms": [], "start_to_online_ms": []},
        "baresip": {"start_to_registered_ms": [], "start_to_broker_connected_ms": []},
    }
    watch = _StartupWatch(lab.broker.port)
    status_topic = f"{lab.ours_topic}/status"

    def is_online(m: Message) -> bool:
        return m.topic == status_topic and m.payload.get("online") is True

    if sniffer is not None:
        sniffer.add(watch)
    try:
        for _ in range(reps):
            lab.stop_ours()
            lab.stop_bs()
            time.sleep(0.5)
            # ours
            watch.reg_ok.clear()
            watch.connack.clear()
            mark = lab.crm.mark()
            t0 = time.monotonic()
            phone = lab.start_ours()
            online = lab.crm.wait(is_online, mark, 20)
            lab.wait_ours_registered()
            time.sleep(0.3)
            out["ours"]["start_to_online_ms"].append(_ms(online.t - t0))
            regs = [t for t, port in watch.reg_ok if port == phone.sip_port]
            if regs:
                out["ours"]["start_to_registered_ms"].append(_ms(regs[0] - t0))
            if watch.connack:
                out["ours"]["start_to_broker_connected_ms"].append(_ms(watch.connack[0] - t0))
            lab.stop_ours()
            time.sleep(0.3)
            # baresip
            watch.reg_ok.clear()
            watch.connack.clear()
            t0 = time.monotonic()
            bs = lab.start_bs()
            lab.wait_bs_registered()
            deadline = time.monotonic() + 5
            while not watch.connack and time.monotonic() < deadline:
                time.sleep(0.02)
            regs = [t for t, port in watch.reg_ok if port == bs.sip_port]
            if regs:
                out["baresip"]["start_to_registered_ms"].append(_ms(regs[0] - t0))
            if watch.connack:
                out["baresip"]["start_to_broker_connected_ms"].append(_ms(watch.connack[0] - t0))
    finally:
        if sniffer is not None:
            sniffer.remove(watch)
    if lab.ours is None:
        lab.start_ours()
        lab.wait_ours_registered()
    if lab.bs is None:
        lab.start_bs()
        lab.wait_bs_registered()
    return out


# ---- soak ------------------------------------------------------------------------------------------
def soak(
    lab: Lab,
    system: str,
    n: int,
    far: TimedBaresip | None = None,
    checkpoints: set[int] | None = None,
    settle_s: float = 0.0,
) -> dict[str, Any]:
    """``n`` calls alternating in (far end dials) and out (phone dials); RSS/fds at ``checkpoints``
    (default 1, n/2, n), and with ``settle_s`` once more that long after the last call (``rss_settled``:
    the phone idle again, its calls' SIP transactions over). ``far`` (default ``lab.far``): a far end
    of this soak's own, so that two soaks can run at once."""
    far, crm = far or lab.far, lab.crm
    assert far is not None and crm is not None
    checkpoints = checkpoints or {1, max(1, n // 2), n}
    samples: dict[int, tuple[int, int]] = {}
    start_mark = crm.mark()
    pid = lab.ours.proc.pid if system == "ours" else lab.bs.pid  # type: ignore[union-attr]
    ended = _ours_event(lab, "call.ended") if system == "ours" else _bs_event("CALL_CLOSED")
    for i in range(1, n + 1):
        far.clear_events()
        mark = crm.mark()
        inbound = i % 2 == 1
        if system == "ours":
            phone = lab.ours
            assert phone is not None
            if inbound:
                far.send_command("dial", lab.uri(OURS_USER))
                phone.wait_mode("ringing_in")
                phone.client.hook(True)
                far.wait_for_event("CALL_ESTABLISHED")
                far.send_command("hangup")
            else:
                phone.client.hook(True)
                phone.wait_mode("dialing")
                phone.client.keys(far.user + "#")
                far.wait_for_event("CALL_INCOMING")
                far.send_command("accept")
                far.wait_for_event("CALL_ESTABLISHED")
                phone.client.hook(False)
            crm.wait(ended, mark)
            phone.client.hook(False)
            phone.wait_mode("idle")
        else:
            bs = lab.bs
            assert bs is not None
            if inbound:
                far.send_command("dial", lab.uri(BS_USER))
                crm.wait(_bs_event("CALL_INCOMING"), mark)
                bs.send_command("accept")
                far.wait_for_event("CALL_ESTABLISHED")
                far.send_command("hangup")
            else:
                crm.publish(
                    f"/{BS_BASETOPIC}/command/soak{i}",
                    {"command": "dial", "params": lab.uri(far.user), "token": f"soak{i}"},
                )
                far.wait_for_event("CALL_INCOMING")
                far.send_command("accept")
                far.wait_for_event("CALL_ESTABLISHED")
                crm.publish(f"/{BS_BASETOPIC}/command/h{i}", {"command": "hangup", "token": f"h{i}"})
            crm.wait(ended, mark)
        far.wait_for_event("CALL_CLOSED")
        if i in checkpoints:
            _, rss, fds = proc_stat(pid)
            samples[i] = (rss, fds)
    time.sleep(max(2.0, settle_s))
    settled: dict[str, float] = {}
    if settle_s:
        settled["rss_settled_mib"] = round(proc_stat(pid)[1] / 1024, 1)
        settled |= {f"rss_settled_{part}": mib for part, mib in rss_split(pid).items()}
    msgs: list[Message] = crm.find(ended, start_mark)
    if system == "ours":
        per_call: dict[str, set[str]] = {}
        for m in msgs:
            per_call.setdefault(m.payload["call"]["call_id"], set()).add(m.payload["event_id"])
        exactly_once = len(per_call) == n and all(len(v) == 1 for v in per_call.values())
        distinct = len(per_call)
    else:
        ids = [m.payload.get("id") for m in msgs]
        distinct = len(set(ids))
        exactly_once = distinct == n == len(ids)
    return {
        "calls": n,
        "rss_kib": {str(k): v[0] for k, v in samples.items()},
        "fds": {str(k): v[1] for k, v in samples.items()},
        "end_events_received": len(msgs),
        "calls_with_end_event": distinct,
        "every_end_event_exactly_once": exactly_once,
        **settled,
    }


# ---- audio path delay ------------------------------------------------------------------------------
class _RtpWatch:
    """Onsets of the marks in the phone's RTP, each direction (PCMU payload decoded)."""

    def __init__(self, media_lo: int, media_hi: int) -> None:
        self.lo, self.hi = media_lo, media_hi
        self.tx: list[float] = []
        self.rx: list[float] = []
        self._last_loud = {"tx": -1e9, "rx": -1e9}

    def __call__(self, p: Packet) -> None:
        if p.proto != 17:
            return
        if self.lo <= p.sport < self.hi:
            direction = "tx"
        elif self.lo <= p.dport < self.hi:
            direction = "rx"
        else:
            return
        rtp = rtp_payload(p.payload)
        if rtp is None or rtp[0] != 0:
            return
        if max(abs(s) for s in ulaw_decode(rtp[1])) > 2000:
            if p.t - self._last_loud[direction] > MARK_PERIOD_S / 2:
                (self.tx if direction == "tx" else self.rx).append(p.t)
            self._last_loud[direction] = p.t


def _fd_of(pid: int, suffix: str) -> str | None:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(suffix):
                return fd
    return None


def _fd_pos(pid: int, fd: str) -> int:
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("pos:"):
            return int(line.split()[1])
    raise ValueError("no pos in fdinfo")


_JITTER_LINE = re.compile(
    r"jitter buffer: delay (\d+) ms \(min (\d+), max (\d+)\), burst (\d+) \(avg (\d+)\), prefetch (\d+); "
    r"lost (\d+), discarded (\d+), empty (\d+)"
)
JITTER_FIELDS = (
    "delay_ms",
    "min_delay_ms",
    "max_delay_ms",
    "burst",
    "avg_burst",
    "prefetch",
    "lost",
    "discarded",
    "empty",
)


def jitter_buffer_stats(log_text: str) -> dict[str, int] | None:
    """pjmedia's jitter-buffer figures of the last call the phone ended (sip_stack logs them at its
    hangup; delays in ms, the rest in 10 ms codec frames or counts), or None without such a line."""
    found = _JITTER_LINE.findall(log_text)
    return dict(zip(JITTER_FIELDS, map(int, found[-1]), strict=True)) if found else None


def audio_path(
    lab: Lab, sniffer: Sniffer, seconds: float, far_pcmu: TimedBaresip, phone: PhoneProcess | None = None
) -> dict[str, Any]:
    """One call from our phone (``lab.ours`` unless given) to a PCMU far end; marked bursts both ways;
    delays, counters, and the phone's CPU (s/min) and RSS over the call."""
    phone = phone or lab.ours
    assert phone is not None and phone.proc is not None
    media_lo = phone.media_port
    watch = _RtpWatch(media_lo, media_lo + 100)  # pjsua takes each call's ports further up its range
    stop = threading.Event()

    ear_written: list[tuple[float, int]] = []  # (time, size of the earpiece file)
    mic_read: list[tuple[float, int]] = []  # (time, read position in the mic copy)
    pid = phone.proc.pid
    mic_fd = _fd_of(pid, ".mic.raw")

    def poll() -> None:  # looks at files only: the phone is not asked anything meanwhile
        while not stop.is_set():
            with contextlib.suppress(OSError):
                size = phone.earpiece_path.stat().st_size
                ear_written.append((time.monotonic(), size))
            if mic_fd is not None:
                with contextlib.suppress(OSError, ValueError):
                    mic_read.append((time.monotonic(), _fd_pos(pid, mic_fd)))
            time.sleep(0.005)

    before = phone.state()
    ear_start = phone.earpiece_path.stat().st_size if phone.earpiece_path.exists() else 0
    sniffer.add(watch)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        far_pcmu.clear_events()
        phone.client.hook(True)
        phone.wait_mode("dialing")
        phone.client.keys(far_pcmu.user + "#")
        far_pcmu.wait_for_event("CALL_ESTABLISHED", timeout=15)
        cpu0, _, _ = proc_stat(phone.proc.pid)
        time.sleep(seconds)
        cpu1, rss, _ = proc_stat(phone.proc.pid)
        phone.client.hook(False)
        phone.wait_mode("idle")
        time.sleep(0.5)
    finally:
        stop.set()
        poller.join(2)
        sniffer.remove(watch)
    after = phone.state()
    jitter = (
        jitter_buffer_stats(phone.log_path.read_text(errors="replace")) if phone.log_path.exists() else None
    )
    # The PCMs stay open across calls (the mic copy is read on, the earpiece file appended to): this
    # call's earpiece samples are those after ``ear_start``.
    # When the audio thread read each mic mark: the first look at the capture file's read position
    # (/proc fdinfo of the mic copy the ALSA file plugin reads) past the mark's first sample.
    mic_marks = []
    k = 0
    while mic_read:
        offset = int((MIC_MARK_OFFSET_S + k * MARK_PERIOD_S) * RATE) * 2
        if offset > mic_read[-1][1]:
            break
        seen = next((t for t, pos in mic_read if pos > offset), None)
        if seen is not None and seen > mic_read[0][0]:
            mic_marks.append(seen)
        k += 1
    tx_delays = []
    for t_rtp in watch.tx:
        earlier = [t for t in mic_marks if 0 < t_rtp - t < 1.0]
        if earlier:
            tx_delays.append(_ms(t_rtp - earlier[-1]))
    # RTP received -> earpiece stream
    raw = phone.earpiece_path.read_bytes()[ear_start:]
    ear = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    # When each onset reached the earpiece: the first look at the earpiece file that found it
    # written (the ALSA file plugin writes what the audio thread plays; looks ~6 ms apart).
    ear_times = []
    for e in mark_onsets(ear):
        offset = ear_start + 2 * e
        seen = next((t for t, size in ear_written if size > offset), None)
        if seen is not None:
            ear_times.append(seen)
    rx_delays = []
    for t_rtp in watch.rx:
        later = [t for t in ear_times if 0 < t - t_rtp < 1.0]
        if later:
            rx_delays.append(_ms(later[0] - t_rtp))
    counters = {}
    for group in ("audio", "bridge"):
        for key, value in after.get(group, {}).items():
            if isinstance(value, int):
                counters[f"{group}.{key}"] = value - before.get(group, {}).get(key, 0)
    return {
        "call_s": seconds,
        "cpu_s_per_min": round((cpu1 - cpu0) / seconds * 60.0, 3),
        "rss_mib": round(rss / 1024, 1),
        "mic_to_rtp_ms": tx_delays,
        "rtp_to_earpiece_ms": rx_delays,
        "counters": counters,
        "jitter_buffer": jitter,
        "onsets": {"rtp_tx": len(watch.tx), "rtp_rx": len(watch.rx), "earpiece": len(ear_times)},
        "mic_marks_read": len(mic_marks),
    }


def start_pcmu_far_end(lab: Lab, user: str = "1004") -> TimedBaresip:
    return lab.start_far_end(user, auto_answer=True, codecs="PCMU")
