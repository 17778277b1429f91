"""Run ``deskphone`` with time marks at each stage of its start (for ``bench.startup_profile``).

``python [options] bench/startup_trace.py run --config X``: the phone's own command, plus a finder at
the head of ``sys.meta_path`` that wraps, as their modules load, the functions that make up a start
(config load, board, the pjsua2 calls of ``libCreate`` ... ``Account.create``, the sip thread's first
poll, the first ``onRegState``, the CRM bridge's start) and marks each module of ``IMPORTS`` when its
import begins and ends. The marks (``time.monotonic()``, comparable with the bench's own clock) are
written as JSON to ``$DESKPHONE_STARTUP_TRACE`` when the process exits. This file imports nothing
beyond what the interpreter has already loaded, so that it costs the start it measures next to nothing.
"""

from __future__ import annotations

import os
import sys

from trace_marks import MARKS, mark, run_deskphone, wrap  # this directory's module, see trace_marks

mark("interpreter ready (trace runs)")

# Modules whose import is marked at its start and end (the rest shows in -X importtime).
IMPORTS = (
    "firmware.cli",
    "firmware.daemon",
    "logging",
    "dataclasses",
    "board",
    "sip_stack",
    "firmware.config",
    "tomllib",
    "sip_stack.agent",
    "pjsua2",
    "pjsua2.pjsua2",
    "hal",
    "gpiozero",
    "firmware.core",
    "crm_bridge.bridge",
    "paho.mqtt.client",
)

# module -> (attribute path, label, only the first call)
CALLS: dict[str, list[tuple[str, str, bool]]] = {
    "firmware.daemon": [
        ("run_daemon", "run_daemon", True),
        ("Daemon._start_parts", "start parts", True),
        ("Daemon.serve", "daemon serves (READY)", True),
    ],
    "firmware.config": [("load_config", "config load", True)],
    "board": [("get_board", "board", True)],
    "sip_stack.agent": [
        ("UserAgent.start", "UserAgent.start (caller waits)", True),
        ("UserAgent._run", "sip thread", True),
        ("UserAgent._set_codecs", "codec set-up", True),
        ("UserAgent._trust_registrar_addresses", "registrar resolved", True),
        ("UserAgent._loop", "sip loop", True),
    ],
    "sip_stack.calls": [("SipAccount.onRegState", "first onRegState", True)],
    "pjsua2.pjsua2": [
        ("Endpoint.libCreate", "libCreate", True),
        ("Endpoint.libInit", "libInit", True),
        ("Endpoint.transportCreate", "transportCreate", True),
        ("Endpoint.libStart", "libStart", True),
        ("AudDevManager.setNoDev", "setNoDev", True),
        ("Account.create", "Account.create", False),
        ("Endpoint.libHandleEvents", "first libHandleEvents", True),
    ],
    "crm_bridge.bridge": [("CrmBridge.start", "CrmBridge.start", True)],
}


def _patch(module_name: str, module: object) -> None:
    for path, label, once in CALLS.get(module_name, ()):
        *owners, name = path.split(".")
        owner = module
        for part in owners:
            owner = getattr(owner, part)
        numbered = "" if once else " #{n}"
        wrap(owner, name, f"{label}{numbered} begins", f"{label}{numbered} ends", first_only=once)


class _Tracer:
    """A meta path finder that only wraps the loader of the modules named above."""

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        if name not in CALLS and name not in IMPORTS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def traced_exec(module: object) -> None:
            if name in IMPORTS:
                mark(f"import {name} begins")
            exec_module(module)
            if name in IMPORTS:
                mark(f"import {name} ends")
            _patch(name, module)
            loader.exec_module = exec_module

        loader.exec_module = traced_exec
        return spec


def _dump() -> None:
    import json

    with open(os.environ["DESKPHONE_STARTUP_TRACE"], "w", encoding="utf-8") as out:
        json.dump([(name, t) for t, name in MARKS], out)


def main() -> int:
    sys.meta_path.insert(0, _Tracer())
    import atexit

    atexit.register(_dump)
    return run_deskphone(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
