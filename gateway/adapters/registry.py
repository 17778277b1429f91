"""The adapters a config enables, in a fixed order."""

from __future__ import annotations

from ..config import Config
from ..store import GatewayStore
from .base import CrmAdapter


def build_adapters(config: Config, store: GatewayStore) -> list[CrmAdapter]:
    adapters: list[CrmAdapter] = []
    if config.bitrix24.enabled:
        from .bitrix24 import Bitrix24Adapter

        adapters.append(Bitrix24Adapter(config.bitrix24, config.http.public_url, store))
    if config.webhook.enabled:
        from .webhook import WebhookAdapter

        adapters.append(WebhookAdapter(config.webhook))
    return adapters
