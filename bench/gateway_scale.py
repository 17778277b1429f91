"""``python -m bench.gateway_scale [--quick]`` (``make bench-gateway``): the CRM gateway at 1,000 desks.

1,000 simulated phones (``lab.fleet``: one MQTT connection each, the contract through
``crm_bridge.codec``, no SIP) and 3 real phone daemons (``deskphone run`` on the sim board,
registered at kamailio, rung by baresip callers) publish through one mosquitto to the gateway and the
fake Bitrix24 portal. Every call is a call.incoming (pop-up, caller look-up) and a call.ended
(finish). Latency = the call's first event seen at the broker (an observer subscribed to every
phone's events) -> the ``register`` at the portal. Figures, printed and written to
``bench/results/gateway_scale.json`` and ``.md``:

- with the portal's own limit (50 burst, 2 requests/s), one instance (SQLite), at 1, 5 and 20
  calls/s, ``batch`` on and off: pop-up latency median / p99 (fleet and real phones apart), the
  portal's requests per second, 503s, the gateway's CPU and RSS;
- the highest rate (of 10, 20, 50, 100, 200 calls/s) that one instance (SQLite) and two instances
  (PostgreSQL, shared subscription) sustain, against a portal without limit: every call carded within
  3 s of the end of the run and the outbox empty 10 s after it.
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
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lab.bitrix24.portal import FakePortal
from lab.servers.audio import write_sine_wav
from lab.servers.baresip import Baresip
from lab.servers.gateway import GatewayProcess, start_gateway
from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import Mosquitto
from lab.servers.phone import PhoneProcess, events_of, phone_config_text
from lab.servers.ports import free_port
from lab.servers.postgres import Postgres

RESULTS = Path(__file__).parent / "results" / "gateway_scale.json"
FLEET_PER_WORKER = 250  # paho waits with select(), which cannot watch descriptors past 1024
REAL_PHONES = 3
REAL_CALL_EVERY_S = 0.0  # per real phone; 0: rung again as soon as it is idle (~0.7 calls/s each)
LIMIT = {"burst": 50, "per_s": 2.0}


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


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Observer:
    """Sees every phone's events at the broker: when each call's first event was published."""

    def __init__(self, port: int) -> None:
        self.first_seen: dict[str, float] = {}
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-observer", protocol=mqtt.MQTTv5
        )
        self.client.on_connect = lambda c, *_: (c.subscribe("deskphone/+/events", qos=0), self._ready.set())
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(20):
            raise RuntimeError("the observer did not connect")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        at = time.time()
        try:
            event = json.loads(msg.payload)
            if event.get("type") in ("call.incoming", "call.outgoing"):
                self.first_seen.setdefault(str(event["call"]["call_id"]), at)
        except (ValueError, KeyError, TypeError):
            pass

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class RealPhones:
    """Phone daemons at kamailio, each rung by its own baresip, who hangs up once it rings (missed)."""

    def __init__(self, work: Path, broker_port: int, count: int) -> None:
        self.phones: list[PhoneProcess] = []
        self.callers: list[Baresip] = []
        self.kamailio = Kamailio(work / "kamailio")
        self.kamailio.start()
        try:
            self._start(work, broker_port, count)
        except BaseException:
            self.stop()
            raise
        self.call_ids: list[str] = []
        self.misses = 0  # dials that never rang the phone (seen under load; the bench goes on)
        self._lock = threading.Lock()

    def _start(self, work: Path, broker_port: int, count: int) -> None:
        registrar = f"{self.kamailio.host}:{self.kamailio.port}"
        tone = write_sine_wav(work / "tone.wav", freq=440.0, seconds=5.0, rate=16000)
        self.devices = [f"real-{n}" for n in range(1, count + 1)]
        self.uris: list[str] = []
        for n, device in enumerate(self.devices, start=1):
            user, caller = f"{2000 + n}", f"{3000 + n}"
            self.kamailio.add_user(user, f"pw-{user}")
            self.kamailio.add_user(caller, f"pw-{caller}")
            sip_port = free_port()
            text = phone_config_text(
                work / device, registrar, sip_port, device_id=device, user=user, password=f"pw-{user}",
                mqtt_port=broker_port, log_level="WARNING",
            )  # fmt: skip
            phone = PhoneProcess(work / device, text, sip_port)
            self.phones.append(phone)
            phone.start()
            far = Baresip(work / f"caller-{n}", user=caller, password=f"pw-{caller}", registrar=registrar,
                          auto_answer=False, source_wav=tone)  # fmt: skip
            self.callers.append(far)
            far.start()
            self.uris.append(f"sip:{user}@{registrar}")
        for phone in self.phones:
            phone.wait_for(lambda s: s["registered"] and s["mqtt"] and s["mqtt"]["connected"], 60, "phone up")

    def ring_while(self, running: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._ring, args=(i, running), name=f"bench-real-{i}", daemon=True)
            for i in range(len(self.phones))
        ]
        for thread in threads:
            thread.start()
        return threads

    def _ring(self, i: int, running: threading.Event) -> None:
        phone, far = self.phones[i], self.callers[i]
        while running.is_set():
            started = time.monotonic()
            try:
                known = {e["call"]["call_id"] for e in events_of(phone.state(), "call.incoming")}
                far.dial(self.uris[i])
                state = phone.wait_for(
                    lambda s, k=known: any(
                        e["call"]["call_id"] not in k for e in events_of(s, "call.incoming")
                    ),
                    15,
                    "a new call.incoming",
                )
                new = [e for e in events_of(state, "call.incoming") if e["call"]["call_id"] not in known]
                with self._lock:
                    self.call_ids.append(str(new[-1]["call"]["call_id"]))
            except (TimeoutError, RuntimeError, OSError) as error:
                self.misses += 1
                print(f"  real phone {i + 1}: {str(error)[:80]}", flush=True)
            try:
                far.hangup()
                far.wait_for_event("CALL_CLOSED", 10)  # a dial before baresip has closed the last one is lost
                phone.wait_mode("idle", 15)
            except (TimeoutError, RuntimeError, OSError) as error:
                print(f"  real phone {i + 1}: {str(error)[:120]}", flush=True)
            while running.is_set() and time.monotonic() - started < REAL_CALL_EVERY_S:
                time.sleep(0.1)

    def stop(self) -> None:
        for part in [*self.callers, *self.phones, self.kamailio]:
            try:
                part.stop()
            except Exception as error:  # keep stopping the rest
                print(f"stopping {type(part).__name__}: {error}", flush=True)


class Fleet:
    """The simulated phones, in worker processes of a few hundred each."""

    def __init__(self, port: int, desks: int) -> None:
        self.devices = [f"desk-{n}" for n in range(1, desks + 1)]
        started = time.monotonic()
        self.workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lab.fleet",
                    str(port),
                    ",".join(self.devices[i : i + FLEET_PER_WORKER]),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(0, desks, FLEET_PER_WORKER)
        ]
        for worker in self.workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError("a fleet worker did not connect its phones")
        self.connect_s = time.monotonic() - started
        self.serial = 0

    def calls(self, rate: float, seconds: float) -> dict[str, float]:
        """Calls at ``rate`` per second on random desks for ``seconds``; call id -> when ordered."""
        ordered: dict[str, float] = {}
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            self.serial += 1
            index = random.randrange(len(self.devices))
            call_id = f"b-{self.serial:06d}"
            order = {"device": self.devices[index], "call_id": call_id, "number": f"+49307{self.serial:06d}"}
            ordered[call_id] = time.time()
            worker = self.workers[index // FLEET_PER_WORKER]
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(order) + "\n")
            worker.stdin.flush()
        return ordered

    def stop(self) -> None:
        for worker in self.workers:
            assert worker.stdin is not None
            worker.stdin.close()
        for worker in self.workers:
            worker.wait(60)


class Bench:
    def __init__(self, work: Path, desks: int, real: int) -> None:
        self.work = work
        self.observer: Observer | None = None
        self.fleet: Fleet | None = None
        self.real: RealPhones | None = None
        self.broker = Mosquitto(work / "mosquitto")
        self.broker.start()
        try:
            self.observer = Observer(self.broker.port)
            self.fleet = Fleet(self.broker.port, desks)
            self.real = RealPhones(work, self.broker.port, real) if real else None
        except BaseException:
            self.stop()
            raise
        real_devices = self.real.devices if self.real else []
        self.inventory = work / "office.csv"
        rows = [f"{d},{1000 + n},{n}\n" for n, d in enumerate(self.fleet.devices, start=1)]
        rows += [f"{d},{2000 + n},{5000 + n}\n" for n, d in enumerate(real_devices, start=1)]
        self.inventory.write_text("device_id,extension,crm_user\n" + "".join(rows))
        self.users = list(range(1, desks + 1)) + [5000 + n for n in range(1, len(real_devices) + 1)]
        self.portals = 0

    def portal(self, burst: int, per_s: float) -> FakePortal:
        self.portals += 1
        portal = FakePortal(self.work / f"portal-{self.portals}", burst=burst, drain_per_s=per_s)
        for user in self.users:
            portal.add_user(user, f"Manager {user}")
        portal.start()
        return portal

    def gateways(
        self, portal: FakePortal, count: int = 1, dsn: str = "", limited: bool = False, batch: bool = True
    ) -> list[GatewayProcess]:
        rate = f"rate_per_s = {portal.drain_per_s}\nrate_burst = {portal.burst}\n" if limited else (
            "rate_per_s = 1000\nrate_burst = 10000\n"
        )  # fmt: skip
        out = []
        for n in range(1, count + 1):
            out.append(
                start_gateway(
                    self.work / f"gw-{self.portals}-{n}",
                    mqtt_port=self.broker.port,
                    inventory=self.inventory,
                    portal=portal,
                    client_id=f"bench-gw-{n}",
                    share_group="bench" if count > 1 else "",
                    postgres_dsn=dsn,
                    log_level="WARNING",
                    bitrix24_extra=rate + f"batch = {'true' if batch else 'false'}\n",
                )
            )
            if n == 1:
                portal.install(f"{out[0].url}/bitrix24/install").raise_for_status()
        return out

    def stop(self) -> None:
        for part in (self.real, self.fleet, self.observer, self.broker):
            if part is not None:
                try:
                    part.stop()
                except Exception as error:  # keep stopping the rest
                    print(f"stopping {type(part).__name__}: {error}", flush=True)


def pending(gateways: list[GatewayProcess]) -> int:
    total = 0
    for gateway in gateways:
        try:
            total += sum(httpx.get(f"{gateway.url}/healthz", timeout=10).json()["pending"].values())
        except (httpx.HTTPError, ValueError):
            return -1
    return total


def registered_at(portal: FakePortal) -> dict[str, float]:
    out: dict[str, float] = {}
    for record in portal.requests("telephony.externalcall.register", ok=True):
        out.setdefault(str(record.params.get("EXTERNAL_CALL_ID")), record.at)
    return out


def wait_carded(portal: FakePortal, calls: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        carded = {c: t for c, t in registered_at(portal).items() if c in calls}
        if len(carded) == len(calls) or time.monotonic() > deadline:
            return carded
        time.sleep(0.2)


def settle(portal: FakePortal, gateways: list[GatewayProcess], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pending(gateways) == 0:
            return True
        time.sleep(0.5)
    return False


def figures(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
    }


def latency_step(
    bench: Bench, portal: FakePortal, gateway: GatewayProcess, rate: float, seconds: float
) -> dict[str, Any]:
    assert gateway.proc is not None
    pid = gateway.proc.pid
    before, records_before = len(portal.http_requests()), len(portal.records)
    cpu0, t0, wall0 = cpu_s(pid), time.monotonic(), time.time()
    running = threading.Event()
    running.set()
    real_before = len(bench.real.call_ids) if bench.real else 0
    misses_before = bench.real.misses if bench.real else 0
    ringers = bench.real.ring_while(running) if bench.real else []
    ordered = bench.fleet.calls(rate, seconds)
    running.clear()
    for thread in ringers:
        thread.join(30)
    real_calls = set(bench.real.call_ids[real_before:]) if bench.real else set()
    carded = wait_carded(portal, set(ordered) | real_calls, 300)
    settled = settle(portal, [gateway], 300)
    elapsed = time.monotonic() - t0
    cpu = (cpu_s(pid) - cpu0) / elapsed
    seen = bench.observer.first_seen
    fleet_ms = [(carded[c] - seen.get(c, ordered[c])) * 1000 for c in ordered if c in carded]
    real_ms = [(carded[c] - seen[c]) * 1000 for c in real_calls if c in carded and c in seen]
    http = portal.http_requests()[before:]
    since = [r for r in portal.records[records_before:] if r.kind == "rest"]
    commands = sum(1 for r in since if r.in_batch) + sum(
        1 for r in since if not r.in_batch and r.method != "batch"
    )
    busy_s = max(1e-3, max((r.at for r in http), default=wall0) - wall0)  # the run and its drain
    return {
        "calls": len(ordered) + len(real_calls),
        "carded": len(carded),
        "settled": settled,
        "popup_fleet": figures(fleet_ms),
        "popup_real_phones": figures(real_ms),
        "real_phone_dials_lost": (bench.real.misses - misses_before) if bench.real else 0,
        "portal_requests": len(http),
        "portal_busy_s": round(busy_s, 1),
        "portal_requests_per_s": round(len(http) / busy_s, 2),
        "commands_per_request": round(commands / max(1, len(http)), 1),
        "batches": sum(1 for r in http if r.method == "batch"),
        "refused_503": sum(1 for r in http if r.status == 503),
        "gateway_cpu_percent": round(100 * cpu, 1),
        "gateway_rss_mb": round(rss_mb(pid), 1),
        "load_average": load_average(),
    }


def limited_runs(bench: Bench, batch: bool, rates: tuple[float, ...], seconds: float) -> dict[str, Any]:
    portal = bench.portal(LIMIT["burst"], LIMIT["per_s"])
    (gateway,) = bench.gateways(portal, limited=True, batch=batch)
    out = {}
    try:
        for rate in rates:
            row = latency_step(bench, portal, gateway, rate, seconds)
            out[f"{rate:g}/s"] = row
            print(f"  batch {'on ' if batch else 'off'} {rate:>4g} calls/s: {row}", flush=True)
            time.sleep(max(0.0, portal.bucket_level() / portal.drain_per_s))  # the next starts fresh
    finally:
        gateway.stop()
        portal.stop()
    return out


def sustained(bench: Bench, pg: Postgres | None, instances: int, seconds: float) -> dict[str, Any]:
    dsn = pg.create_database(f"bench_{instances}") if pg is not None else ""
    portal = bench.portal(1_000_000, 1_000_000)
    gateways = bench.gateways(portal, instances, dsn)
    best, tried = 0, {}
    try:
        for rate in (10, 20, 50, 100, 200):
            ordered = bench.fleet.calls(rate, seconds)
            carded = wait_carded(portal, set(ordered), 3.0)
            drained = settle(portal, gateways, 10.0)
            ok = len(carded) == len(ordered) and drained
            tried[f"{rate}/s"] = {
                "carded_within_3_s": f"{len(carded)}/{len(ordered)}",
                "outbox_empty_10_s_after": drained,
            }
            print(f"  {instances} instance(s) at {rate} calls/s: {tried[f'{rate}/s']}", flush=True)
            wait_carded(portal, set(ordered), 120)
            settle(portal, gateways, 120)
            if not ok:
                break
            best = rate
    finally:
        for gateway in gateways:
            gateway.stop()
        portal.stop()
    return {"highest_rate_per_s": best, "runs": tried}


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Gateway at 1,000 desks (`make bench-gateway`)",
        "",
        f"{out['desks']} simulated phones + {out['real_phones']} real phone daemons, one mosquitto,"
        f" one gateway (SQLite), the fake portal with Bitrix24's limit ({LIMIT['burst']} burst,"
        f" {LIMIT['per_s']:g}/s)."
        f" Machine: {out['machine']}.",
        "",
        "| batch | fleet calls/s | all calls/s | pop-up median / p99 (fleet) | real phones median / p99 |"
        " portal req/s | commands/req | 503 | gateway CPU | RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("batch_on", "batch_off"):
        for rate, row in out["rate_limited_portal"][mode].items():
            fleet, real = row["popup_fleet"], row["popup_real_phones"]
            real_text = f"{real['median_ms']:.0f} / {real['p99_ms']:.0f} ms" if real.get("n") else "-"
            fleet_text = f"{fleet.get('median_ms', 0):.0f} / {fleet.get('p99_ms', 0):.0f} ms"
            lines.append(
                f"| {mode[6:]} | {rate} | {row['calls'] / out['limited_seconds']:.1f} | {fleet_text} | "
                f"{real_text} | {row['portal_requests_per_s']} | {row['commands_per_request']} | "
                f"{row['refused_503']} | "
                f"{row['gateway_cpu_percent']}% | {row['gateway_rss_mb']} MB |"
            )
    lines += ["", "Highest rate without a growing backlog (portal without limit):", ""]
    for name, row in out["sustained"].items():
        lines.append(f"- {name}: {row['highest_rate_per_s']} calls/s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))  # 1,000 sockets
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desks", type=int, default=1000)
    parser.add_argument("--real", type=int, default=REAL_PHONES, help="real phone daemons")
    parser.add_argument("--quick", action="store_true", help="100 desks, 1 real phone, short runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.desks, args.real = min(args.desks, 100), min(args.real, 1)
    seconds = 4.0 if args.quick else 10.0  # the unlimited portal's runs; the limited ones twice as long
    out: dict[str, Any] = {"desks": args.desks, "real_phones": args.real, "seconds_per_run": seconds}
    out["limited_seconds"] = 2 * seconds
    out["machine"] = f"{os.cpu_count()} cores, load average {load_average()} at the start (shared, loaded)"
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        bench = Bench(Path(tmp), args.desks, args.real)
        out["fleet_connect_s"] = round(bench.fleet.connect_s, 1)
        print(f"{args.desks} phones connected in {bench.fleet.connect_s:.1f} s, {args.real} real", flush=True)
        pg = Postgres()
        try:
            pg.start()
            out["rate_limited_portal"] = {
                "batch_on": limited_runs(bench, True, (1, 5, 20), 2 * seconds),
                # Off, 20 calls/s would queue 1,200 requests for a portal draining 2/s: not run.
                "batch_off": limited_runs(bench, False, (1, 5), 2 * seconds),
            }
            out["sustained"] = {
                "1 instance (SQLite)": sustained(bench, None, 1, seconds),
                "2 instances (PostgreSQL)": sustained(bench, pg, 2, seconds),
            }
        finally:
            pg.stop()
            bench.stop()
    out["load_average_at_end"] = load_average()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    text = markdown(out)
    RESULTS.with_suffix(".md").write_text(text)
    print(text)
    print(f"written to {RESULTS} and {RESULTS.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
