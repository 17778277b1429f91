"""`make run`: the phone on the simulated board, between a local PBX and a local CRM broker.

Starts kamailio (registrar with digest auth) with extensions 1001 (this phone) and 1002 (a baresip far
end that answers by itself and plays a tone), mosquitto as the CRM's broker, the phone daemon, and the
CRM gateway with a fake Bitrix24 portal (HTTPS) in which it is installed as the local application.
Prints how to use the phone and how to click-to-call through the portal; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from lab.bitrix24.portal import FakePortal
from lab.servers.audio import write_sine_wav
from lab.servers.baresip import Baresip
from lab.servers.files import write_private
from lab.servers.gateway import API_TOKEN, GatewayProcess, start_gateway
from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import Mosquitto
from lab.servers.phone import phone_config_text
from lab.servers.ports import free_port

PHONE_USER, PHONE_PASSWORD = "1001", "demo-phone-secret"
FAR_USER, FAR_PASSWORD = "1002", "demo-far-secret"
DEVICE_ID = "desk-1001"
STATS_TOKEN = "demo-stats-token"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("run"))
    parser.add_argument("--no-mqtt", action="store_true", help="run the phone as a plain extension")
    args = parser.parse_args(argv)
    run_dir: Path = args.dir.absolute()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)

    kamailio = Kamailio(run_dir / "kamailio", users={PHONE_USER: PHONE_PASSWORD, FAR_USER: FAR_PASSWORD})
    kamailio.start()
    registrar = f"{kamailio.host}:{kamailio.port}"
    far_tone = write_sine_wav(run_dir / "far-end-440hz.wav", freq=440.0, seconds=60.0, rate=16000)
    far_end = Baresip(
        run_dir / "far-end", user=FAR_USER, password=FAR_PASSWORD, registrar=registrar, source_wav=far_tone
    )
    far_end.start()

    broker: Mosquitto | None = None
    if not args.no_mqtt and (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        broker = Mosquitto(run_dir / "mosquitto")
        broker.start()

    write_sine_wav(run_dir / "mic.wav", freq=1000.0, seconds=60.0, rate=16000)
    config_path = run_dir / "deskphone.toml"
    mqtt_port = broker.port if broker and not args.no_mqtt else None
    config = phone_config_text(
        run_dir,
        registrar,
        free_port(),
        device_id=DEVICE_ID,
        user=PHONE_USER,
        password=PHONE_PASSWORD,
        mqtt_port=mqtt_port,
        mic_file=run_dir / "mic.wav",
        dialplan='digit_map = "1xxx|*xx"\ninterdigit_timeout_s = 4',
        log_level="INFO",
    )
    write_private(
        config_path, "# Written by `make run` (lab/demo.py): the phone on the simulated board.\n" + config
    )
    (run_dir / "lab.json").write_text(
        json.dumps({"far_end_ctrl_port": far_end.ctrl_port, "mqtt_port": broker.port if broker else None})
    )
    deskphone = Path(sys.executable).with_name("deskphone")
    log = (run_dir / "phone.log").open("wb")
    phone = subprocess.Popen(
        [str(deskphone), "run", "--config", str(config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=run_dir,
    )
    portal, gateway = _start_gateway(run_dir, broker) if broker else (None, None)
    _print_instructions(run_dir, deskphone, broker)
    if portal and gateway:
        _print_gateway_instructions(run_dir, portal, gateway)
    print("Ctrl-C stops the phone, the far end, the broker and the registrar.", flush=True)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop and phone.poll() is None:
            time.sleep(0.2)
    finally:
        if gateway:
            gateway.stop()
        if portal:
            portal.stop()
        if phone.poll() is None:
            phone.terminate()
            phone.wait(15)
        far_end.stop()
        if broker:
            broker.stop()
        kamailio.stop()
    return phone.returncode or 0


def _print_instructions(run_dir: Path, deskphone: Path, broker: Mosquitto | None) -> None:
    sock = run_dir / "sim.sock"
    rel = os.path.relpath(deskphone)
    print(
        f"""
The phone (extension {PHONE_USER}, device {DEVICE_ID}) runs on the simulated board; its log is
{run_dir}/phone.log. In another terminal:

  export DESKPHONE_SIM_SOCKET={sock}
  {rel} sim state              # what the phone shows
  {rel} sim hook up            # lift the handset: dial tone
  {rel} sim keys 1002#         # call the far end (extension {FAR_USER}, answers and plays 440 Hz)
  {rel} sim hook down          # hang up
  {rel} sim console            # or play interactively

The earpiece is recorded to {run_dir}/earpiece.raw (raw S16_LE mono 16 kHz; play it with
`aplay -f S16_LE -r 16000 -c 1 {run_dir}/earpiece.raw`); the microphone plays {run_dir}/mic.wav (1 kHz).

To call the phone from the far end:   {sys.executable} -m lab.farend --dir {run_dir} dial {PHONE_USER}
and to hang up the far end:           {sys.executable} -m lab.farend --dir {run_dir} hangup
"""
    )
    if broker:
        print(
            f"""Click-to-call from the CRM side (MQTT broker on 127.0.0.1:{broker.port}):
  {rel} crm dial --port {broker.port} --device {DEVICE_ID} 1002     # alerts; then lift the handset
  {rel} crm watch --port {broker.port} --device {DEVICE_ID}         # every event of the phone
"""
        )


def _start_gateway(run_dir: Path, broker: Mosquitto) -> tuple[FakePortal, GatewayProcess]:
    """The fake portal (manager 7 sits at this desk; contact ACME GmbH has number 1002) and the
    gateway, installed in it as the local application."""
    portal = FakePortal(run_dir / "bitrix24")
    portal.add_user(7, "Demo Manager")
    portal.add_contact(42, "ACME GmbH", FAR_USER, 7)
    portal.start()
    inventory = run_dir / "office.csv"
    inventory.write_text(f"device_id,extension,name,crm_user\n{DEVICE_ID},{PHONE_USER},Demo desk,7\n")
    _sample_last_month(run_dir / "gateway" / "state")
    gateway = start_gateway(
        run_dir / "gateway",
        mqtt_port=broker.port,
        inventory=inventory,
        portal=portal,
        log_level="INFO",
        extra=f'[stats]\ntime_zone = "Europe/Berlin"\naccountants = "apart"\ntoken = "{STATS_TOKEN}"\n',
    )
    answer = portal.install(f"{gateway.url}/bitrix24/install")
    if answer.status_code != 200:
        print(f"the gateway refused the portal's ONAPPINSTALL: {answer.text}", file=sys.stderr)
    return portal, gateway


def _sample_last_month(state_dir: Path) -> None:
    """Last month's calls of five sample managers in the gateway's store, so /stats has figures before
    the demo's own calls come in (this month)."""
    from datetime import date

    from gateway.sqlite_store import SqliteStore
    from lab.stats_month import fill_store, month_of_calls

    last = date.today().replace(day=1) - timedelta(days=1)
    store = SqliteStore(state_dir)
    fill_store(store, month_of_calls(last.year, last.month)[1])
    store.close()


def _print_gateway_instructions(run_dir: Path, portal: FakePortal, gateway: GatewayProcess) -> None:
    print(
        f"""The CRM gateway (log {run_dir}/gateway/gateway.log) is installed in a fake Bitrix24 portal at
{portal.url} (records in memory, CA {portal.ca_file}). Click-to-call as manager 7 clicking
ACME GmbH's number in a CRM card (the phone alerts with "ACME GmbH"; lift the handset to call):

  curl --cacert {portal.ca_file} -X POST {portal.url}/_lab/click \\
       -H 'Content-Type: application/json' -d '{{"user_id": 7, "phone_number": "{FAR_USER}"}}'

or as any CRM through the gateway's own API:

  curl -X POST {gateway.url}/v1/calls -H 'Authorization: Bearer {API_TOKEN}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"desk": "{DEVICE_ID}", "number": "{FAR_USER}", "display": "ACME"}}'

Calls from the far end (lab.farend dial {PHONE_USER}) pop a card at the portal and show "ACME GmbH" on the
phone while it rings; the gateway's state: curl {gateway.url}/healthz

Call statistics per manager (this month: the demo's calls; "Last month": five sample managers):
  {gateway.url}/stats#token={STATS_TOKEN}
"""
    )


if __name__ == "__main__":
    sys.exit(main())
