"""The CRM gateway: the office's phones on one side (MQTT contract v1), the CRMs on the other.

It turns CRM clicks (Bitrix24's ``ONEXTERNALCALLSTART``, ``POST /v1/calls``) into ``cmd/dial`` and
the phones' events into each CRM's call cards, through a durable outbox per CRM. Layout:

- ``calls``: the vocabulary (``CallState``, ``CallFact``, ``CrmRequest``); ``step``: the pure table
  "which CRM requests does this event cause";
- ``store``: the one storage interface; ``sqlite_store``: its default implementation;
- ``adapters``: one per CRM behind ``adapters.base.CrmAdapter``; the CRM libraries stay inside;
- ``desks``: desk <-> CRM user from the office inventory (``office.csv``);
- ``mqtt``, ``http_api``: the two faces; ``pump``: outbox -> adapter; ``service``: the wiring;
- ``config``, ``cli``: ``deskphone-gateway run|check-config``.

It imports the contract's codec (``crm_bridge.codec``) and vocabulary (``firmware.events``,
``firmware.commands``) and nothing else of the phone's code.
"""
