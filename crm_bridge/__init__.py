"""CRM bridge over MQTT 5 (contract version 1): status + last will, commands in, events out.

Imports only ``firmware.events`` and ``firmware.commands`` of our own code.
"""

from .codec import CommandRejected, decode_command, encode_event, encode_reply, encode_status
from .settings import MqttSettings, PhoneStatus

__all__ = [
    "CommandRejected",
    "CrmBridge",
    "MqttSettings",
    "Outbox",
    "PhoneStatus",
    "decode_command",
    "encode_event",
    "encode_reply",
    "encode_status",
]


def __getattr__(name: str) -> object:
    # paho and sqlite3 only when the bridge is used: the phone's event log (crm_bridge.codec) is
    # imported before its first REGISTER, the bridge after it.
    if name == "CrmBridge":
        from .bridge import CrmBridge

        return CrmBridge
    if name == "Outbox":
        from .outbox import Outbox

        return Outbox
    raise AttributeError(name)
