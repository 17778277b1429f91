"""Debian's PostgreSQL as a scratch server: initdb + pg_ctl in a directory of its own, 127.0.0.1 and
a free port only (no UNIX socket), trust authentication (loopback, throwaway data).

PostgreSQL refuses to run as root: as root the cluster belongs to ``nobody``, in a directory under
the system's temp dir (a pytest ``tmp_path`` is private to root). ``python -m lab.servers.postgres``
runs one until Ctrl-C (``make postgres``) and prints its DSN.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.servers.ports import LOOPBACK, free_port


def _bin(name: str) -> str:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found (apt install postgresql)")
    return found if isinstance(found, str) else found[-1]


def available() -> bool:
    try:
        _bin("initdb")
    except RuntimeError:
        return False
    return True


INITDB_ARGS = ("-U", "gateway", "--auth=trust", "-E", "UTF8", "--no-instructions", "--no-sync")


class Postgres:
    def __init__(self, scratch: Path | None = None, port: int | None = None) -> None:
        self._own_dir = scratch is None
        self.dir = Path(scratch or tempfile.mkdtemp(prefix="deskphone-pg-"))
        self.port = port or free_port()
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self._user = "nobody" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://gateway@{LOOPBACK}:{self.port}/{database}"

    def _as_owner(self, args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
        return subprocess.run(args, user=self._user, capture_output=True, text=True, check=False, **kwargs)

    def start(self, timeout: float = 60.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        if not self.data.exists():
            done = self._as_owner(
                [_bin("initdb"), *INITDB_ARGS, "-D", str(self.data)],
                cwd=self.dir,
            )
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        options = f"-c listen_addresses={LOOPBACK} -p {self.port} -c unix_socket_directories='' -c fsync=off"
        done = self._as_owner(
            [_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"],
            cwd=self.dir,
        )
        if done.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-1000:]}\n{log}")

    def create_database(self, name: str) -> str:
        import psycopg

        with (
            psycopg.connect(self.dsn, autocommit=True) as db,
            contextlib.suppress(psycopg.errors.DuplicateDatabase),
        ):
            db.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def kill(self) -> None:
        """Stop at once (immediate shutdown), as a crash would."""
        self._as_owner([_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"], cwd=self.dir)

    def stop(self) -> None:
        if self.data.exists():
            self._as_owner([_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], cwd=self.dir)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a scratch PostgreSQL for the gateway on 127.0.0.1")
    parser.add_argument("--dir", type=Path, default=None, help="keep the cluster here (default: a temp dir)")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    server = Postgres(args.dir.absolute() if args.dir else None, args.port)
    server.start()
    dsn = server.create_database("gateway")
    print(
        f'PostgreSQL on {LOOPBACK}:{server.port}; in gateway.toml:\n  [storage]\n  backend = "postgresql"\n'
        f'  dsn = "{dsn}"\nCtrl-C stops it.',
        flush=True,
    )
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop:
            time.sleep(0.2)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
