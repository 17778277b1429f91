"""Drive the `make run` far end (baresip, extension 1002) through its ctrl_tcp socket."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("run"))
    parser.add_argument("command", choices=["dial", "hangup", "accept"])
    parser.add_argument("number", nargs="?", default="1001")
    args = parser.parse_args(argv)
    lab = json.loads((args.dir / "lab.json").read_text())
    params = f"sip:{args.number}@127.0.0.1" if args.command == "dial" else ""
    if args.command == "dial":
        # the far end's registrar routes by user; baresip completes the domain from its account
        params = args.number
    request = json.dumps({"command": args.command, "params": params, "token": "lab"}).encode()
    with socket.create_connection(("127.0.0.1", lab["far_end_ctrl_port"]), timeout=5) as sock:
        sock.sendall(_netstring(request))
    print(f"far end: {args.command} {params}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
