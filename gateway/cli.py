"""``deskphone-gateway``: ``run``, ``check-config`` and ``report``, each with ``--config gateway.toml``.

``report --from 2026-05-01 --to 2026-05-31 --format csv|json [--group total|day|week|month]`` prints
the call statistics per manager (the figures of the ``/stats`` page) from the gateway's store.

Exit status: 0 fine, 1 the config or the inventory is invalid (every problem printed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import signal
import sys
import threading
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .config import ConfigError, load_config, render_config
from .desks import Desks, InventoryError
from .stats.figures import GROUPINGS

logger = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deskphone-gateway", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway")
    run.add_argument("--config", type=Path, required=True)
    check = sub.add_parser("check-config", help="check the config and the inventory, report every error")
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--show", action="store_true", help="print the config back (secrets masked)")
    report = sub.add_parser("report", help="print call statistics per manager")
    report.add_argument("--config", type=Path, required=True)
    report.add_argument(
        "--from", dest="start", type=_day, help="first day (default: the 1st of --to's month)"
    )
    report.add_argument("--to", dest="end", type=_day, help="last day, inclusive (default: today)")
    report.add_argument("--format", choices=("csv", "json"), default="csv")
    report.add_argument("--group", choices=GROUPINGS, default="total", help="one row per manager and ...")
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return _check(args.config, args.show)
    if args.command == "report":
        return _report(args)
    return _run(args.config)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def _report(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    end = args.end or datetime.now(ZoneInfo(config.stats.time_zone)).date()
    start = args.start or end.replace(day=1)
    if start > end:
        print(f"deskphone-gateway: --from {start} is after --to {end}", file=sys.stderr)
        return 2
    from .stats import to_csv, to_json
    from .stats.source import report_from_store
    from .stores import open_store

    store = open_store(config.storage)
    try:
        report = report_from_store(
            store, Desks.load(config.inventory.file), config.stats, start, end, args.group
        )
    finally:
        store.close()
    print(to_csv(report) if args.format == "csv" else json.dumps(to_json(report), indent=1), end="")
    if args.format == "json":
        print()
    return 0


def _load(path: Path):  # type: ignore[no-untyped-def]
    """The config and the inventory, or None after printing every problem of both."""
    errors: list[str] = []
    config = None
    try:
        config = load_config(path)
    except ConfigError as error:
        errors.extend(error.errors)
    if config is not None:
        try:
            desks = Desks.load(config.inventory.file)
        except InventoryError as error:
            errors.extend(f"inventory.file: {e}" for e in error.errors)
        else:
            if config.bitrix24.enabled:
                errors.extend(
                    f"inventory.file: desk {d.device_id}: crm_user {d.crm_user!r} is not a Bitrix24 user id"
                    for d in desks.desks
                    if d.crm_user and not d.crm_user.isdigit()
                )
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return None
    return config


def _check(path: Path, show: bool) -> int:
    config = _load(path)
    if config is None:
        return 1
    print(f"{path}: OK")
    if show:
        print(render_config(config), end="")
    return 0


def _run(path: Path) -> int:
    config = _load(path)
    if config is None:
        return 1
    logging.basicConfig(
        level=config.log.level,
        format="%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Their debug lines carry request URLs, and an OAuth refresh URL carries the client secret.
    for noisy in ("urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
    from .service import Gateway

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` prints every thread's stack
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        gateway = Gateway(config)
    except Exception as error:  # one clear line, exit 1 (mopidy's rule)
        print(f"deskphone-gateway: cannot start: {error}", file=sys.stderr)
        return 1
    try:
        gateway.start()
        stop.wait()
    except Exception as error:
        logger.error("cannot run: %s", error)
        return 1
    finally:
        gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
