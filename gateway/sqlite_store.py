"""``GatewayStore`` on SQLite (WAL, synchronous FULL): the default, one file in ``[storage] dir``.

The SQL is ``gateway.sql_store``'s, shared with the PostgreSQL store."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from .sql_store import SqlStore, schema

FILE_NAME = "gateway.sqlite3"


class SqliteStore(SqlStore):
    """The store in ``<dir>/gateway.sqlite3``; the file is created 0600 (it holds OAuth tokens)."""

    paramstyle = sqlite3.paramstyle  # qmark

    def __init__(self, directory: str | Path) -> None:
        super().__init__()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE_NAME
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(schema("sqlite"))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _time(self, value: datetime) -> str:
        return value.isoformat()
