"""An ASGI app served by uvicorn on a thread of its own, for the lab's fake CRMs.

Thread: one per server, named by the caller; it runs uvicorn's event loop until ``stop``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from lab.servers.ports import LOOPBACK


class ThreadedServer:
    def __init__(self, app: Any, port: int, name: str, **options: Any) -> None:
        self._config = uvicorn.Config(
            app, host=LOOPBACK, port=port, log_level="warning", access_log=False, lifespan="off", **options
        )
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._name} did not start on port {self._config.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None
