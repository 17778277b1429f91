#!/usr/bin/env python3
"""flash.py: prepare desk phones for an office, from a stock Raspberry Pi OS image to first boot.

Subcommands (each has --help):
  provision  one phone onto an image file or an SD card
  bulk       every phone of an inventory CSV: one image each, or one card after another
  broker     mosquitto password file and ACL for the inventory
  verify     read an image or card back and check it
  sidecar    install a busy light (MicroPython board) over USB with mpremote

Exit status: 0 done, 1 refused or failed (every reason printed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tomllib
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.provisioning import broker, firstboot, sidecar
from tools.provisioning.device import Device, Site, check_device
from tools.provisioning.errors import InvalidDevice, ProvisioningError, VerifyFailed
from tools.provisioning.image import check_target_file
from tools.provisioning.inventory import (
    Row,
    SecretsStore,
    check_against_site,
    load_inventory,
    write_private,
)
from tools.provisioning.provision import Result, check_target, provision
from tools.provisioning.verify import verify_target

HIDDEN = "(hidden)"
BUNDLE_HELP = "dir with the deskphone wheel and wheelhouse/ (make dist)"
BOOT_MOUNT_HELP = (
    "where the phone's OS mounts the boot partition, where the first boot looks for deskphone/ "
    f"(default {firstboot.BOOT_MOUNT}, Raspberry Pi OS 12 and later; /boot on older images)"
)
BROKER_FILES = "/etc/mosquitto/deskphone"
BROKER_CERT = "/etc/mosquitto/certs/deskphone-broker.crt"
BROKER_KEY = "/etc/mosquitto/certs/deskphone-broker.key"


def _err(message: str) -> None:
    print(f"flash: {message}", file=sys.stderr)


def _add_site_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("office settings (a --site TOML file, overridden by these options)")
    g.add_argument(
        "--site", type=Path, help="site TOML: [sip] registrar/transport/trusted_pbx, [mqtt] host/..."
    )
    g.add_argument("--registrar", help="SIP registrar host (PBX)")
    g.add_argument(
        "--transport", choices=["udp", "tcp", "tls"], help="SIP transport to the PBX (default udp)"
    )
    g.add_argument("--trusted-pbx", action="append", help="host allowed to auto-answer (repeatable)")
    g.add_argument("--broker-host", help="MQTT broker host")
    g.add_argument("--broker-port", type=int, help="MQTT broker port (default 1883; 8883 with tls in --site)")
    g.add_argument("--broker-tls", action="store_true", default=None, help="connect to the broker with TLS")
    g.add_argument("--no-mqtt", action="store_true", help="plain extensions without a CRM broker")
    g.add_argument("--topic-prefix", help="MQTT topic prefix (default deskphone)")
    g.add_argument(
        "--crm-account",
        "--crm-user",  # its old name, easily taken for the inventory's crm_user column
        dest="crm_account",
        help="the CRM's own broker account (default crm; site.toml mqtt.crm_username)",
    )


def _site(args: argparse.Namespace) -> Site:
    site = Site.from_toml(args.site) if args.site else Site()
    return site.with_overrides(
        sip_registrar=args.registrar,
        sip_transport=args.transport,
        trusted_pbx=tuple(args.trusted_pbx) if args.trusted_pbx else None,
        mqtt_enabled=False if args.no_mqtt else None,
        mqtt_host=args.broker_host,
        mqtt_port=args.broker_port,
        mqtt_tls=args.broker_tls,
        topic_prefix=args.topic_prefix,
        crm_username=args.crm_account,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flash.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("provision", help="write one phone onto an image or SD card")
    p.add_argument("--target", type=Path, required=True, help="image file (.img) or block device (/dev/sdX)")
    p.add_argument(
        "--base",
        type=Path,
        help="stock Raspberry Pi OS image (.img or .img.xz) written onto the target first",
    )
    p.add_argument("--bundle", type=Path, required=True, help=BUNDLE_HELP)
    p.add_argument("--device", type=Path, help="device TOML: [device] id, extension, name, board, crm_user")
    p.add_argument("--device-id")
    p.add_argument("--extension", help="SIP user (extension)")
    p.add_argument("--name", help="display name of the phone")
    p.add_argument("--board", choices=["rpi-v1", "sim"])
    p.add_argument("--sip-password-file", type=Path, help="file holding the SIP password (default: generate)")
    p.add_argument(
        "--secrets", type=Path, help="secrets store CSV (0600) shared with 'broker'; created if absent"
    )
    p.add_argument("--boot-mount", default=firstboot.BOOT_MOUNT, help=BOOT_MOUNT_HELP)
    p.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    _add_site_options(p)
    p.set_defaults(handler=cmd_provision)

    b = sub.add_parser("bulk", help="provision every phone of an inventory CSV")
    b.add_argument(
        "--inventory",
        type=Path,
        required=True,
        help="CSV: device_id,extension[,name,board,crm_user,sip_password]; crm_user is the CRM user at "
        "that desk (for the CRM gateway), empty for a plain extension",
    )
    b.add_argument(
        "--secrets",
        type=Path,
        required=True,
        help="secrets store CSV (0600) of account,sip_password,mqtt_password (one row per phone and one "
        "for the CRM's broker account); generated passwords go here",
    )
    b.add_argument("--bundle", type=Path, required=True, help=BUNDLE_HELP)
    b.add_argument("--base", type=Path, required=True, help="stock Raspberry Pi OS image (.img or .img.xz)")
    where = b.add_mutually_exclusive_group(required=True)
    where.add_argument("--out-dir", type=Path, help="write one image per phone: OUT_DIR/<device_id>.img")
    where.add_argument("--card", type=Path, help="SD card device: prompt for each phone's card in turn")
    b.add_argument(
        "--summary", type=Path, help="summary sheet CSV (default OUT_DIR/summary.csv or ./summary.csv)"
    )
    b.add_argument(
        "--show-secrets", action="store_true", help="put the passwords on the summary sheet (0600)"
    )
    b.add_argument("--boot-mount", default=firstboot.BOOT_MOUNT, help=BOOT_MOUNT_HELP)
    b.add_argument(
        "--dry-run",
        action="store_true",
        help="check the inventory, the site, the bundle and the base image; write nothing",
    )
    _add_site_options(b)
    b.set_defaults(handler=cmd_bulk)

    k = sub.add_parser("broker", help="write mosquitto's password file and ACL for the inventory")
    k.add_argument("--inventory", type=Path, required=True)
    k.add_argument("--secrets", type=Path, required=True, help="secrets store CSV (0600) shared with 'bulk'")
    k.add_argument(
        "--out-dir", type=Path, required=True, help="writes passwd (0600), acl, mosquitto-deskphone.conf"
    )
    k.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    k.add_argument(
        "--listen-address", default="", help="address the phones' listener binds (default: every interface)"
    )
    k.add_argument(
        "--certfile",
        default=BROKER_CERT,
        help=f"with TLS: the broker's certificate on the broker's host (default {BROKER_CERT})",
    )
    k.add_argument(
        "--keyfile",
        default=BROKER_KEY,
        help=f"with TLS: the certificate's private key on the broker's host (default {BROKER_KEY})",
    )
    sidecar.add_broker_options(k)
    _add_site_options(k)
    k.set_defaults(handler=cmd_broker)

    v = sub.add_parser("verify", help="read an image or card back and check it")
    v.add_argument("--target", type=Path, required=True)
    v.add_argument("--inventory", type=Path, help="check the card against this inventory")
    v.add_argument("--secrets", type=Path, help="check the secrets on the card against this store")
    v.add_argument("--boot-mount", default=firstboot.BOOT_MOUNT)
    v.add_argument("--dry-run", action="store_true", help="verify only reads; accepted for symmetry")
    _add_site_options(v)
    v.set_defaults(handler=cmd_verify)

    sidecar.add_parser(sub)
    return parser


def _device_from_args(args: argparse.Namespace) -> Device:
    values: dict[str, str] = {}
    if args.device:
        try:
            data = tomllib.loads(args.device.read_text(encoding="utf-8")).get("device", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidDevice([f"--device {args.device}: {exc}"]) from exc
        unknown = set(data) - {"id", "extension", "name", "board", "crm_user"}
        if unknown:
            raise InvalidDevice([f"--device {args.device}: unknown key(s) {', '.join(sorted(unknown))}"])
        values = {k: str(v) for k, v in data.items()}
    for key, arg in (("id", "device_id"), ("extension", "extension"), ("name", "name"), ("board", "board")):
        if getattr(args, arg):
            values[key] = getattr(args, arg)
    password = ""
    if args.sip_password_file:
        password = args.sip_password_file.read_text(encoding="utf-8").strip()
    missing = [f"--{k.replace('id', 'device-id')}" for k in ("id", "extension") if not values.get(k)]
    if missing:
        raise InvalidDevice([f"missing {m} (or in --device FILE)" for m in missing])
    return Device(
        device_id=values["id"],
        extension=values["extension"],
        name=values.get("name", ""),
        board=values.get("board", "rpi-v1"),
        owner=values.get("crm_user", ""),
        sip_password=password,
    )


def cmd_provision(args: argparse.Namespace) -> int:
    site = _site(args)
    device = _device_from_args(args)
    store = SecretsStore(args.secrets)
    errors = check_device(device.with_passwords(site.mqtt_enabled), site)
    if errors:
        raise InvalidDevice(errors)
    device = store.complete(device, site)
    result = provision(
        args.target,
        device,
        site,
        args.bundle,
        base=args.base,
        boot_mount=args.boot_mount,
        dry_run=args.dry_run,
    )
    if not args.dry_run:
        store.save()
        if args.secrets is None:
            print(
                "passwords were generated and are on the card only; use --secrets to keep them for 'broker'"
            )
    print(
        f"{'dry run: ' if args.dry_run else ''}{result.device_id}: "
        f"{len(result.files)} files, first boot: {result.mode}"
    )
    return 0


def _check_inventory(rows: list[Row], site: Site) -> list[str]:
    """Every problem of every row, with row numbers, before anything is written."""
    errors = [f"site: {e}" for e in site.problems()]
    if errors:
        return errors
    errors += check_against_site([r.device for r in rows], site)
    for row in rows:
        errors += [
            f"row {row.number}: {e}" for e in check_device(row.device.with_passwords(site.mqtt_enabled), site)
        ]
    return errors


def _summary(results: list[tuple[Device, Result | None, str]], show_secrets: bool) -> str:
    buf = io.StringIO()
    fields = [
        "device_id",
        "name",
        "extension",
        "crm_user",
        "board",
        "target",
        "first_boot",
        "files",
        "status",
    ]
    fields += ["sip_password", "mqtt_password"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for device, result, status in results:
        writer.writerow(
            {
                "device_id": device.device_id,
                "name": device.name or device.device_id,
                "extension": device.extension,
                "crm_user": device.owner,
                "board": device.board,
                "target": str(result.target) if result else "",
                "first_boot": result.mode if result else "",
                "files": len(result.files) if result else 0,
                "status": status,
                "sip_password": device.sip_password if show_secrets else HIDDEN,
                "mqtt_password": (device.mqtt_password or "") if show_secrets else HIDDEN,
            }
        )
    return buf.getvalue()


def cmd_bulk(args: argparse.Namespace) -> int:
    site = _site(args)
    rows = load_inventory(args.inventory)
    errors = _check_inventory(rows, site)
    if errors:
        raise InvalidDevice(errors)
    if args.out_dir is not None:
        check_target_file(args.base)
    else:
        check_target(args.card, args.base)
    store = SecretsStore(args.secrets)
    devices = [store.complete(r.device, site) for r in rows]
    results: list[tuple[Device, Result | None, str]] = []
    if not args.dry_run:
        store.save()  # before writing: every image written has its passwords in the store
        if args.out_dir:
            args.out_dir.mkdir(parents=True, exist_ok=True)
    for number, device in enumerate(devices, 1):
        print(f"[{number}/{len(devices)}] {device.device_id} (extension {device.extension})")
        if args.out_dir is not None:
            target = args.out_dir / f"{device.device_id}.img"
        else:
            target = args.card
            if not args.dry_run:
                try:
                    answer = input(
                        f"  insert the card for {device.device_id} into {target}, Enter to write, s to skip: "
                    )
                except EOFError:
                    _err("no answer on standard input; stopping")
                    results += [(d, None, "not written") for d in devices[number - 1 :]]
                    break
                if answer.strip().lower().startswith("s"):
                    results.append((device, None, "skipped"))
                    continue
        try:
            result = provision(
                target,
                device,
                site,
                args.bundle,
                base=args.base,
                boot_mount=args.boot_mount,
                dry_run=args.dry_run,
            )
        except ProvisioningError as exc:
            results.append((device, None, f"FAILED: {exc}"))
            _err(f"{device.device_id}: {exc}")
            break
        results.append((device, result, "dry run" if args.dry_run else "written"))
    summary = _summary(results, args.show_secrets)
    summary_path = args.summary or ((args.out_dir or Path(".")) / "summary.csv")
    if args.dry_run:
        print(_summary(results, show_secrets=False), end="")
    elif args.show_secrets:
        write_private(summary_path, summary)
    else:
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(summary, encoding="utf-8")
    if not args.dry_run:
        print(f"summary sheet: {summary_path}")
    failed = [d.device_id for d, _, status in results if status.startswith("FAILED")]
    return 1 if failed or len(results) < len(devices) else 0


def cmd_broker(args: argparse.Namespace) -> int:
    site = _site(args)
    rows = load_inventory(args.inventory)
    errors = [f"site: {e}" for e in site.problems()] + check_against_site([r.device for r in rows], site)
    if not site.mqtt_enabled:
        errors.append("mqtt is disabled for this site: there is no broker to configure")
    if errors:
        raise InvalidDevice(errors)
    store = SecretsStore(args.secrets)
    devices = [store.complete(r.device, site) for r in rows]
    accounts = [(site.crm_username, store.crm_password(site))] + [
        (d.device_id, d.mqtt_password) for d in devices
    ]
    sidecar_accounts, sidecar_acl = sidecar.broker_part(args, devices, store, site)
    accounts += sidecar_accounts
    out = args.out_dir
    listener = broker.Listener(
        site.mqtt_port,
        args.listen_address,
        args.certfile if site.mqtt_tls else None,
        args.keyfile if site.mqtt_tls else None,
    )
    if args.dry_run:
        print(
            f"would write {out / 'passwd'} ({len(accounts)} accounts), "
            f"{out / 'acl'}, {out / 'mosquitto-deskphone.conf'}"
        )
        print(f"listener: {listener.describe()}")
        return 0
    store.save()
    out.mkdir(parents=True, exist_ok=True)
    write_private(out / "passwd", broker.password_file(accounts))
    (out / "acl").write_text(broker.acl_file(devices, site, sidecar_acl), encoding="utf-8")
    snippet = broker.mosquitto_snippet(f"{BROKER_FILES}/passwd", f"{BROKER_FILES}/acl", listener)
    (out / "mosquitto-deskphone.conf").write_text(snippet, encoding="utf-8")
    print(
        f"wrote {out / 'passwd'} ({len(accounts)} accounts, 0600), "
        f"{out / 'acl'}, {out / 'mosquitto-deskphone.conf'}"
    )
    print(f"listener: {listener.describe()}")
    print(f"CRM account: {site.crm_username} (password in {args.secrets})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    devices = None
    site = _site(args) if (args.site or args.registrar) else None
    if args.inventory:
        store = SecretsStore(args.secrets) if args.secrets else None
        devices = [r.device for r in load_inventory(args.inventory)]
        if store is not None:
            devices = [
                Device(**{**d.__dict__, **_stored(store, d.device_id)})  # passwords from the store, if any
                for d in devices
            ]
    found = verify_target(args.target, devices, site, boot_mount=args.boot_mount)
    print(f"{args.target}: {found.device_id} OK ({found.files} files, first boot via {found.mode})")
    return 0


def _stored(store: SecretsStore, device_id: str) -> dict[str, str]:
    entry = store.entries.get(device_id, {})
    return {k: v for k, v in entry.items() if v}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result: int = args.handler(args)
    except InvalidDevice as exc:
        _err(f"refused, nothing written ({len(exc.errors)} problem{'s' if len(exc.errors) != 1 else ''}):")
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except VerifyFailed as exc:
        _err(f"verify failed ({len(exc.problems)} problems):")
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except ProvisioningError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err(
            "interrupted: an image file being written was removed; a card being written is "
            "half-written: provision it again"
        )
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
