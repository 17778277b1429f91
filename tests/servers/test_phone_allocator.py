"""The lab's phone runs with the allocator settings of the installed service (docs/SIP.md "Memory")."""

from __future__ import annotations

import shlex
from pathlib import Path

from lab.servers.phone import ALLOCATOR_ENV

SERVICE = Path(__file__).resolve().parents[2] / "deploy" / "deskphone.service"


def _service_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in SERVICE.read_text().splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.removeprefix("Environment=")):
                key, _, value = assignment.partition("=")
                env[key] = value
    return env


def test_the_lab_launcher_sets_what_the_service_sets() -> None:
    service = _service_environment()
    service_allocator = {key: value for key, value in service.items() if key.startswith("MALLOC_")}
    assert service_allocator == ALLOCATOR_ENV
