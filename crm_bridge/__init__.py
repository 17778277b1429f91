"""CRM bridge over MQTT 5 (contract version 1): status + last will, commands in, events out.

Imports only ``firmware.events`` and ``firmware.commands`` of our own code.
"""

from .bridge import CrmBridge
from .codec import CommandRejected, decode_command, encode_event, encode_reply, encode_status
from .outbox import Outbox
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
