"""The ``deskphone`` command: run the daemon, check a config, drive the simulator, talk to the CRM side."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

DEFAULT_SIM_SOCKET = "run/sim.sock"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `deskphone run --config FILE`, as deploy/deskphone.service and the lab start the phone, goes
    # straight to the daemon: argparse's import and parser (gettext looks up a catalogue at every
    # message) cost 12.7 ms before the REGISTER. Every other command line, other forms of `run` included
    # (--config=FILE, -h, a FILE argparse would take for an option), is parsed by argparse.
    if len(argv) == 3 and argv[:2] == ["run", "--config"] and not argv[2].startswith("-"):
        return _run_daemon(Path(argv[2]))
    # The daemon's REGISTER waits for every import before it: the crm commands' parser would bring in
    # paho, ssl and the event vocabulary (~110 ms before the REGISTER), which `run` does not need.
    parser = _build_parser(with_crm=argv[:1] != ["run"])
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    result: int = args.handler(args)
    return result


def _build_parser(with_crm: bool = True) -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(prog="deskphone", description="SIP desk phone firmware")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the phone daemon")
    run.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    run.set_defaults(handler=_run)

    check = sub.add_parser("check-config", help="validate a configuration file, report every error")
    check.add_argument("config", type=Path)
    check.add_argument("--show", action="store_true", help="print the effective config, secrets masked")
    check.set_defaults(handler=_check_config)

    sim = sub.add_parser("sim", help="act on the simulated board through its control socket")
    sim.add_argument(
        "--socket", help=f"control socket (default $DESKPHONE_SIM_SOCKET or {DEFAULT_SIM_SOCKET})"
    )
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    hook = sim_sub.add_parser("hook", help="lift (up) or replace (down) the handset")
    hook.add_argument("position", choices=["up", "down"])
    hook.set_defaults(handler=_sim_hook)
    flash = sim_sub.add_parser("flash", help="hook flash: hold the call, or go back to the held call")
    flash.set_defaults(handler=_sim_flash)
    keys = sim_sub.add_parser("keys", help="press keys, e.g. 1002#")
    keys.add_argument("keys")
    keys.set_defaults(handler=_sim_keys)
    state = sim_sub.add_parser("state", help="print the phone's state as JSON")
    state.add_argument(
        "--follow", action="store_true", help="then print a state line at every change, until Ctrl-C"
    )
    state.set_defaults(handler=_sim_state)
    console = sim_sub.add_parser("console", help="play with the phone from the terminal")
    console.set_defaults(handler=_sim_console)

    if with_crm:
        from crm_bridge.cli import add_crm_subcommands, run_crm

        add_crm_subcommands(sub).set_defaults(handler=run_crm)
    return parser


def _run(args: argparse.Namespace) -> int:
    return _run_daemon(args.config)


def _run_daemon(config: Path) -> int:
    import gc

    # Start-up without the cyclic collector (its passes over the imports' objects took ~20 ms before
    # the REGISTER): Daemon.start collects once, freezes what start-up made, and turns it back on.
    gc.disable()
    from firmware.daemon import run_daemon

    return run_daemon(config)


def _check_config(args: argparse.Namespace) -> int:
    from firmware.config import config_warnings, load_config_or_report, render_config

    config = load_config_or_report(args.config)
    if config is None:
        return 1
    print(f"{args.config}: OK")
    for warning in config_warnings(config):
        print(f"  warning: {warning}")
    if args.show:
        print(render_config(config))
    return 0


def _sim_client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from firmware.sim_control import SimClient

    path = args.socket or os.environ.get("DESKPHONE_SIM_SOCKET") or DEFAULT_SIM_SOCKET
    try:
        return SimClient(path)
    except OSError as exc:
        raise SystemExit(f"cannot reach the simulator at {path}: {exc.strerror or exc}") from exc


def _sim_hook(args: argparse.Namespace) -> int:
    with _sim_client(args) as client:
        client.hook(args.position == "up")
    return 0


def _sim_flash(args: argparse.Namespace) -> int:
    with _sim_client(args) as client:
        client.flash()
    return 0


def _sim_keys(args: argparse.Namespace) -> int:
    from firmware.sim_control import ControlError

    with _sim_client(args) as client:
        try:
            client.keys(args.keys)
        except ControlError as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


def _sim_state(args: argparse.Namespace) -> int:
    import json
    import threading

    from firmware.sim_console import follow, summary

    with _sim_client(args) as client:
        state = client.state()
        state.pop("ok", None)
        print(json.dumps(state, indent=2, sort_keys=True), flush=True)
        if args.follow:
            with contextlib.suppress(KeyboardInterrupt):
                follow(client, lambda s: print(summary(s), flush=True), state["version"], threading.Event())
    return 0


def _sim_console(args: argparse.Namespace) -> int:
    from firmware.sim_console import run_console

    with _sim_client(args) as client, _sim_client(args) as watcher:
        return run_console(client, watcher)


if __name__ == "__main__":
    sys.exit(main())
