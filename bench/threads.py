"""Per-thread CPU and wake-ups of our phone, idle registered and in a G.722 call.

    .venv/bin/python -m bench.threads --window-s 60 --reps 3 [--checkout DIR ...]

For every thread of the phone process (``/proc/PID/task/*``) it prints CPU seconds per minute and
wake-ups per second (voluntary context switches: each is the thread going to sleep, so each is one
more wake-up), idle registered and in a call answered from the handset. Python threads all show as
the interpreter's name (CPython 3.11 gives them no OS name): tell them apart with
``strace -f -p PID`` and the table in docs/SIP.md "Threads".

``--checkout DIR`` (repeatable) runs the phone from another source tree (e.g. ``git archive`` of
main) through ``PYTHONPATH``; several checkouts alternate, A, B, A, B, ``--reps`` times each, in
one lab, so a before/after comparison sees the same load. The current tree is ``.``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import measure
from bench.lab import Lab
from lab.servers.phone import ALLOCATOR_ENV


@dataclass(frozen=True)
class ThreadSample:
    name: str
    cpu_s: float
    wakeups: int


def thread_samples(pid: int) -> dict[int, ThreadSample]:
    """CPU seconds and voluntary context switches of every thread of ``pid``, by thread id."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, ThreadSample] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat.split("(", 1)[1].rsplit(")", 1)[0]
        fields = stat.rsplit(")", 1)[1].split()
        switches = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("voluntary_ctxt")
        )
        out[int(task.name)] = ThreadSample(name, (int(fields[11]) + int(fields[12])) / ticks, switches)
    return out


def window(pid: int, seconds: float) -> dict[int, tuple[str, float, float]]:
    """Per thread over ``seconds``: (name, CPU s/min, wake-ups/s); threads alive at both ends."""
    before = thread_samples(pid)
    time.sleep(seconds)
    after = thread_samples(pid)
    rows = {}
    for tid, a in after.items():
        if tid in before:
            b = before[tid]
            rows[tid] = (a.name, (a.cpu_s - b.cpu_s) * 60 / seconds, (a.wakeups - b.wakeups) / seconds)
    return rows


def render(title: str, rows: dict[int, tuple[str, float, float]]) -> str:
    lines = [title, f"{'tid':>8}  {'thread':<16}{'CPU s/min':>10}{'wake/s':>9}"]
    for tid, (name, cpu, wake) in sorted(rows.items()):
        lines.append(f"{tid:>8}  {name:<16}{cpu:>10.3f}{wake:>9.1f}")
    total_cpu = sum(r[1] for r in rows.values())
    total_wake = sum(r[2] for r in rows.values())
    lines.append(f"{'':>8}  {'total':<16}{total_cpu:>10.3f}{total_wake:>9.1f}")
    return "\n".join(lines)


def run_checkout(lab: Lab, checkout: str, window_s: float) -> tuple[float, float]:
    """Start a phone from ``checkout``, print its threads idle and in a call; (idle, call) CPU s/min."""
    env = dict(ALLOCATOR_ENV)
    if checkout != ".":
        env["PYTHONPATH"] = str(Path(checkout).absolute())
    lab.start_ours(env=env)
    try:
        lab.wait_ours_registered()
        assert lab.ours is not None and lab.ours.proc is not None
        pid = lab.ours.proc.pid
        time.sleep(2.0)
        idle = window(pid, window_s)
        print(render(f"{checkout}: idle registered, {window_s:.0f} s, load {os.getloadavg()[0]:.2f}", idle))
        measure._call_up(lab, "ours")
        time.sleep(1.0)
        call = window(pid, window_s)
        print(render(f"{checkout}: G.722 call, {window_s:.0f} s, load {os.getloadavg()[0]:.2f}", call))
        measure._call_down(lab, "ours")
        return sum(r[1] for r in idle.values()), sum(r[1] for r in call.values())
    finally:
        lab.stop_ours()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--checkout", action="append", help="source tree to run the phone from (default .)")
    args = parser.parse_args(argv)
    checkouts = args.checkout or ["."]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s bench: %(message)s")
    scratch = Path(tempfile.mkdtemp(prefix="deskphone-bench-threads-"))
    lab = Lab(scratch, mic_seconds=args.window_s * 2 + 30)
    results: dict[str, list[tuple[float, float]]] = {c: [] for c in checkouts}
    try:
        lab.start()
        for _ in range(args.reps):
            for checkout in checkouts:
                results[checkout].append(run_checkout(lab, checkout, args.window_s))
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    for checkout, runs in results.items():
        idle = statistics.median(r[0] for r in runs)
        call = statistics.median(r[1] for r in runs)
        print(f"{checkout}: median of {len(runs)}: idle {idle:.3f} CPU-s/min, call {call:.3f} CPU-s/min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
