"""``python -m bench.gateway_scale``: the CRM gateway at 1,000 desks (issue 10).

1,000 simulated phones (``lab.fleet``: one MQTT connection each, the contract through
``crm_bridge.codec``, no SIP) publish call event streams through one mosquitto to the gateway and the
fake Bitrix24 portal. Figures, written to ``bench/results/gateway_scale.json``:

- card latency (``call.incoming`` published -> ``register`` at the portal), median and p99, at 1, 5
  and 20 calls/s, one instance, a portal without rate limit; CPU and memory of that instance;
- the highest rate (of 10, 20, 50, 100 calls/s) that one instance (SQLite) and two instances
  (PostgreSQL, shared subscription) sustain: every call carded within 3 s of the end of a 10 s run;
- a portal with Bitrix24's limit (50 burst, 2 requests/s): requests per second it took, 503s, and what
  the pop-up latency is when finishes go in ``batch``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.bitrix24.portal import FakePortal
from lab.servers.gateway import GatewayProcess, start_gateway
from lab.servers.mosquitto import Mosquitto
from lab.servers.postgres import Postgres

RESULTS = Path(__file__).parent / "results" / "gateway_scale.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Run:
    def __init__(self, work: Path, desks: int) -> None:
        self.work = work
        self.broker = Mosquitto(work / "mosquitto")
        self.broker.start()
        self.inventory = work / "office.csv"
        self.inventory.write_text(
            "device_id,extension,crm_user\n"
            + "".join(f"desk-{n},{1000 + n},{n}\n" for n in range(1, desks + 1))
        )
        started = time.monotonic()
        devices = [f"desk-{n}" for n in range(1, desks + 1)]
        self.devices = devices
        self.workers = [  # a few hundred phones per process (paho's select() stops at fd 1024)
            subprocess.Popen(
                [sys.executable, "-m", "lab.fleet", str(self.broker.port), ",".join(devices[i : i + 250])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(0, desks, 250)
        ]
        for worker in self.workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError("a fleet worker did not connect its phones")
        self.connect_s = time.monotonic() - started
        self.serial = 0

    def portal(self, name: str, burst: int, per_s: float) -> FakePortal:
        portal = FakePortal(self.work / name, burst=burst, drain_per_s=per_s)
        for n in range(1, len(self.devices) + 1):
            portal.add_user(n, f"Manager {n}")
        portal.start()
        return portal

    def gateways(
        self, portal: FakePortal, count: int, dsn: str = "", unlimited: bool = True
    ) -> list[GatewayProcess]:
        out = []
        for n in range(1, count + 1):
            out.append(
                start_gateway(
                    self.work / f"gw-{portal.port}-{n}",
                    mqtt_port=self.broker.port,
                    inventory=self.inventory,
                    portal=portal,
                    client_id=f"bench-gw-{n}",
                    share_group="bench" if count > 1 else "",
                    postgres_dsn=dsn,
                    log_level="WARNING",
                    bitrix24_extra=(
                        "rate_per_s = 1000\nrate_burst = 10000\n"
                        if unlimited
                        else f"rate_per_s = {portal.drain_per_s}\nrate_burst = {portal.burst}\n"
                    ),
                )
            )
            if n == 1:
                portal.install(f"{out[0].url}/bitrix24/install").raise_for_status()
        return out

    def calls(self, rate: float, seconds: float) -> dict[str, float]:
        """Calls at ``rate`` per second on random desks for ``seconds``; call id -> publish time."""
        published: dict[str, float] = {}
        start = time.monotonic()
        count = int(rate * seconds)
        for i in range(count):
            due = start + i / rate
            time.sleep(max(0.0, due - time.monotonic()))
            self.serial += 1
            index = random.randrange(len(self.devices))
            call_id = f"b-{self.serial:06d}"
            order = {"device": self.devices[index], "call_id": call_id, "number": f"+49307{self.serial:06d}"}
            published[call_id] = time.time()
            worker = self.workers[index // 250]
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(order) + "\n")
            worker.stdin.flush()
        return published

    def stop(self) -> None:
        for worker in self.workers:
            assert worker.stdin is not None
            worker.stdin.close()
        for worker in self.workers:
            worker.wait(30)
        self.broker.stop()


def carded(portal: FakePortal, published: dict[str, float]) -> tuple[dict[str, float], int]:
    """Register latency per call (s) and how many of the calls were finished."""
    latency = {}
    for record in portal.requests("telephony.externalcall.register", ok=True):
        call_id = record.params.get("EXTERNAL_CALL_ID")
        if call_id in published and call_id not in latency:
            latency[call_id] = record.at - published[call_id]
    finished = sum(1 for r in portal.finishes() if r.params.get("CALL_ID"))
    return latency, finished


def wait_carded(portal: FakePortal, published: dict[str, float], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latency, _ = carded(portal, published)
        if len(latency) == len(published):
            return latency
        time.sleep(0.1)
    return carded(portal, published)[0]


def main(argv: list[str] | None = None) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))  # 1,000 sockets
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desks", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else 10.0
    out: dict[str, Any] = {"desks": args.desks}
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        run = Run(Path(tmp), args.desks)
        out["fleet_connect_s"] = round(run.connect_s, 1)
        print(f"{args.desks} phones connected in {run.connect_s:.1f} s", flush=True)
        pg = Postgres()
        pg.start()
        try:
            fast = run.portal("fast", burst=1_000_000, per_s=1_000_000)
            (gw,) = run.gateways(fast, 1)
            assert gw.proc is not None
            out["latency"] = {}
            for rate in (1, 5, 20):
                cpu0, t0 = cpu_s(gw.proc.pid), time.monotonic()
                published = run.calls(rate, seconds)
                latency = wait_carded(fast, published, 30)
                cpu = (cpu_s(gw.proc.pid) - cpu0) / (time.monotonic() - t0)
                ms = [v * 1000 for v in latency.values()]
                row = {
                    "calls": len(published),
                    "carded": len(ms),
                    "median_ms": round(statistics.median(ms), 1),
                    "p99_ms": round(percentile(ms, 0.99), 1),
                    "cpu_percent": round(100 * cpu, 1),
                    "rss_mb": round(rss_mb(gw.proc.pid), 1),
                }
                out["latency"][f"{rate}/s"] = row
                print(f"{rate:>3} calls/s: {row}", flush=True)
            gw.stop()

            out["sustained"] = {}
            for instances in (1, 2):
                dsn = pg.create_database(f"bench_{instances}") if instances > 1 else ""
                portal = run.portal(f"sus-{instances}", burst=1_000_000, per_s=1_000_000)
                gws = run.gateways(portal, instances, dsn)
                best = 0
                for rate in (10, 20, 50, 100):
                    published = run.calls(rate, seconds)
                    latency = wait_carded(portal, published, 3.0)
                    ok = len(latency) == len(published)
                    print(
                        f"{instances} instance(s) at {rate} calls/s: {len(latency)}/{len(published)} carded "
                        f"within 3 s of the end",
                        flush=True,
                    )
                    wait_carded(portal, published, 60)
                    if not ok:
                        break
                    best = rate
                out["sustained"][f"{instances} instance(s)"] = {"highest_rate_per_s": best}
                for g in gws:
                    g.stop()
                portal.stop()

            limited = run.portal("limited", burst=50, per_s=2.0)
            (gw,) = run.gateways(limited, 1, unlimited=False)
            rate, span = 1.5, 40.0 if not args.quick else 20.0
            t0 = time.time()
            published = run.calls(rate, span)
            latency = wait_carded(limited, published, 120)
            elapsed = time.time() - t0
            _, finished = carded(limited, published)
            http = [
                r
                for r in limited.records
                if r.kind == "rest" and not (isinstance(r.answer, dict) and r.answer.get("batch"))
            ]
            ms = [v * 1000 for v in latency.values()]
            out["rate_limited_portal"] = {
                "calls": len(published),
                "calls_per_s": rate,
                "http_requests": len(http),
                "http_requests_per_s": round(len(http) / elapsed, 2),
                "batches": sum(1 for r in http if r.method == "batch"),
                "refused_503": sum(1 for r in limited.records if r.status == 503),
                "finishes": finished,
                "popup_median_ms": round(statistics.median(ms), 1),
                "popup_p99_ms": round(percentile(ms, 0.99), 1),
            }
            print(f"portal at 2 requests/s: {out['rate_limited_portal']}", flush=True)
            gw.stop()
            limited.stop()
            fast.stop()
        finally:
            pg.stop()
            run.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
