"""The phone's RSS over a soak of calls, under each allocator variant named on the command line.

    .venv/bin/python -m bench.memory --calls 300 service glibc-defaults
    .venv/bin/python -m bench.memory --traffic 100 --calls 50 service

Each variant is a phone of its own in one lab (MQTT on, log level INFO, as in ``bench.run``), started
with the variant's environment; they soak one after the other against the lab's far end. With
``--traffic N`` the phone first takes what ``bench.run``'s latency steps give it: N screen-pop cycles
(one every ~0.5 s) and N click-to-calls. Printed per variant: RSS (MiB) at registration, after the
traffic, after 1, 50 and ``--calls`` calls and ``--settle-s`` after the last one (idle again: past
sip_stack's heap trim), and the split of RSS into anonymous memory (heaps, stacks) and file pages (the
interpreter, pjsua2's and OpenSSL's libraries) at registration, after the traffic and settled.
docs/SIP.md "Memory" has the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

from bench import measure
from bench.lab import Lab, proc_stat, rss_split
from lab.servers.phone import ALLOCATOR_ENV

VARIANTS: dict[str, dict[str, str]] = {
    "service": dict(ALLOCATOR_ENV),  # deploy/deskphone.service
    "glibc-defaults": {},
    "arena2": {"MALLOC_ARENA_MAX": "2"},
    "arena1": {"MALLOC_ARENA_MAX": "1"},
    # tried and not deployed (docs/SIP.md "Memory"): less idle, more after a flood
    "arena2-fixed": {
        "MALLOC_ARENA_MAX": "2",
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "MALLOC_TRIM_THRESHOLD_": "131072",
    },
}


def run_variant(
    lab: Lab, name: str, calls: int, traffic: int = 0, settle_s: float = 45.0
) -> dict[str, float]:
    phone = lab.start_ours(env=VARIANTS[name])
    try:
        lab.wait_ours_registered()
        assert phone.proc is not None
        pid = phone.proc.pid

        def sample(label: str) -> dict[str, float]:
            figures = {label: round(proc_stat(pid)[1] / 1024, 1)}
            return figures | {f"{label} {k}": v for k, v in rss_split(pid).items()}

        figures = sample("registered")
        if traffic:
            measure.incoming_cycles(lab, "ours", traffic)
            measure.click_to_call(lab, "ours", traffic)
            figures |= sample(f"after {traffic} screen pops + {traffic} click-to-calls")
        result = measure.soak(lab, "ours", calls, checkpoints={1, min(50, calls), calls}, settle_s=settle_s)
        figures |= {f"after {k} calls": round(v / 1024, 1) for k, v in result["rss_kib"].items()}
        if settle_s:
            label = f"{settle_s:g} s after the last call"
            figures[label] = result["rss_settled_mib"]
            figures |= {f"{label} {k}": result[f"rss_settled_{k}"] for k in ("RssAnon", "RssFile")}
        return figures
    finally:
        lab.stop_ours()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--traffic", type=int, default=0, help="screen pops and click-to-calls before")
    parser.add_argument("--settle-s", type=float, default=45.0, help="RSS once more this long after")
    parser.add_argument(
        "variants", nargs="*", default=["service", "glibc-defaults"], choices=sorted(VARIANTS)
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s")
    scratch = Path(tempfile.mkdtemp(prefix="deskphone-bench-memory-"))
    lab = Lab(scratch, mic_seconds=240.0)  # as long as bench.run --quick's
    try:
        lab.start()
        for name in args.variants:
            print(
                name, json.dumps(run_variant(lab, name, args.calls, args.traffic, args.settle_s)), flush=True
            )
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
