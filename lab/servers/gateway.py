"""``deskphone-gateway run`` as a subprocess a test can start, SIGKILL and restart on the same state."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lab.servers import process
from lab.servers.files import read_log, write_private
from lab.servers.ports import LOOPBACK, free_port

WEBHOOK_SECRET = "lab-webhook-secret-31f"
API_TOKEN = "lab-api-token-9c2"


def gateway_config_text(
    workdir: Path,
    *,
    mqtt_port: int,
    inventory: Path,
    http_port: int,
    portal: Any | None = None,
    webhook_url: str = "",
    webhook_steps: bool = False,
    log_level: str = "DEBUG",
    bitrix24_extra: str = "",
    extra: str = "",
    client_id: str = "deskphone-gateway-lab",
    share_group: str = "",
    postgres_dsn: str = "",
) -> str:
    """A ``gateway.toml`` for the lab: the broker, the inventory, a fake portal and/or a webhook."""
    text = f"""[mqtt]
host = "{LOOPBACK}"
port = {mqtt_port}
username = "crm"
client_id = "{client_id}"
share_group = "{share_group}"

[inventory]
file = "{inventory}"

[storage]
dir = "{workdir}/state"
backend = "{"postgresql" if postgres_dsn else "sqlite"}"
dsn = "{postgres_dsn}"

[http]
listen = "{LOOPBACK}:{http_port}"
public_url = "http://{LOOPBACK}:{http_port}"

[api]
tokens = {{ lab = "{API_TOKEN}" }}
reply_timeout_s = 10

[outbox]
retry_min_s = 0.2
retry_max_s = 2

[log]
level = "{log_level}"
"""
    if portal is not None:
        text += f"""
[bitrix24]
enabled = true
domain = "{portal.domain}"
client_id = "{portal.client_id}"
client_secret = "{portal.client_secret}"
oauth_server = "{portal.url}"
ca_file = "{portal.ca_file}"
line_number = "+4930555000"
{bitrix24_extra}"""
    if webhook_url:
        text += f"""
[webhook]
enabled = true
url = "{webhook_url}"
secret = "{WEBHOOK_SECRET}"
steps = {"true" if webhook_steps else "false"}
"""
    if extra:
        text += "\n" + extra
    return text


@dataclass
class GatewayProcess:
    workdir: Path
    config_text: str
    http_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "gateway.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "gateway.log"

    def start(self, timeout: float = 20.0, broker: bool = True) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_private(self.config_path, self.config_text)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                health = httpx.get(f"{self.url}/healthz", timeout=1.0).json()
                if health["broker"] or not broker:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway did not come up:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return read_log(self.log_path)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        return process.terminate(self.proc, timeout)

    def kill(self) -> None:
        process.kill(self.proc)


def start_gateway(workdir: Path, **config: Any) -> GatewayProcess:
    http_port = free_port()
    gateway = GatewayProcess(workdir, gateway_config_text(workdir, http_port=http_port, **config), http_port)
    gateway.start()
    return gateway
