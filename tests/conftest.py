"""Shared pytest plugins and fixtures for the whole test tree."""

pytest_plugins = ["tests.servers.fixtures"]
