"""Shared pytest plugins and fixtures for the whole test tree."""

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.servers.fixtures"]


@pytest.fixture(autouse=True)
def _remove_sparse_mic_copies(request: pytest.FixtureRequest) -> Iterator[None]:
    """The sim board's microphone copies are 64 GiB sparse files; a killed phone leaves its copy."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path")
    if isinstance(tmp_path, Path):
        for copy in tmp_path.rglob("*.mic.raw"):
            copy.unlink(missing_ok=True)
