"""The store a config asks for (``[storage] backend``): SQLite by default, PostgreSQL for several
gateway instances sharing the work."""

from __future__ import annotations

from .config import StorageConfig
from .store import GatewayStore


def open_store(storage: StorageConfig) -> GatewayStore:
    if storage.backend == "postgresql":
        from .postgres_store import PostgresStore

        return PostgresStore(storage.dsn.reveal())
    from .sqlite_store import SqliteStore

    return SqliteStore(storage.dir)
