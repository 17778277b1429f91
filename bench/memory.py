"""The phone's RSS over a soak of calls, under each allocator variant named on the command line.

    .venv/bin/python -m bench.memory --calls 300 service glibc-defaults

Each variant is a phone of its own in one lab (MQTT on, log level INFO, as in ``bench.run``), started
with the variant's environment; they soak one after the other against the lab's far end. Printed per
variant: RSS (MiB) at registration and after 1, 50 and ``--calls`` calls, and the split of RSS into
anonymous memory (heaps, stacks) and file pages (the interpreter, pjsua2's and OpenSSL's libraries),
at registration and at the end. docs/SIP.md "Memory" has the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

from bench import measure
from bench.lab import Lab, proc_stat
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


def rss_split(pid: int) -> dict[str, float]:
    """RssAnon and RssFile (MiB) of a process."""
    split = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            split[key] = round(int(value.split()[0]) / 1024, 1)
    return split


def run_variant(lab: Lab, name: str, calls: int) -> dict[str, float]:
    phone = lab.start_ours(env=VARIANTS[name])
    try:
        lab.wait_ours_registered()
        assert phone.proc is not None
        figures = {"registered": round(proc_stat(phone.proc.pid)[1] / 1024, 1)}
        figures |= {f"registered {k}": v for k, v in rss_split(phone.proc.pid).items()}
        result = measure.soak(lab, "ours", calls, checkpoints={1, min(50, calls), calls})
        figures |= {f"after {k} calls": round(v / 1024, 1) for k, v in result["rss_kib"].items()}
        figures |= {f"after {calls} calls {k}": v for k, v in rss_split(phone.proc.pid).items()}
        return figures
    finally:
        lab.stop_ours()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "variants", nargs="*", default=["service", "glibc-defaults"], choices=sorted(VARIANTS)
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s")
    scratch = Path(tempfile.mkdtemp(prefix="deskphone-bench-memory-"))
    lab = Lab(scratch, mic_seconds=60.0)
    try:
        lab.start()
        for name in args.variants:
            print(name, json.dumps(run_variant(lab, name, args.calls)), flush=True)
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
