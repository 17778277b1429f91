"""A pjsip module that answers refused INVITEs statelessly, before any transaction, dialog or media.

pjsua2 has no hook before pjsua creates a call: an INVITE it answers even with 403 keeps a transaction,
a dialog and ~40 KB of pools for Timer H (32 s) waiting for the ACK a scanner never sends, and
retransmits the answer about ten times meanwhile. A flood of 500 INVITEs/s grew the phone by 450 MB
that way and made it an amplifier. This module sits between pjsip's transaction layer and its dialog
layer (priority 31) and asks ``decide(source, message_text)`` about every INVITE outside a
dialog; a status code is sent back at once with ``pjsip_endpt_respond_stateless``, and the INVITE
goes no further. pjsip's C API is reached through ctypes (``pjsip_endpt_register_module``,
``pjsip_endpt_respond_stateless``); the fields of ``pjsip_rx_data`` read here (``pkt_info.src_name``,
``src_port``, ``msg_info.msg_buf``, ``len``) are laid out as in pjproject 2.15's headers, and every
request checks them against each other (the message lies inside the received packet, the source is
an address) before trusting them: on a mismatch the module logs one error and lets every request through, and
the user agent's slower refusal in ``onSelectAccount`` still applies.

It runs on the thread that polls pjsip's ioqueue: the ``sip`` thread (``threadCnt=0``).
"""

from __future__ import annotations

import ctypes
import importlib
import ipaddress
import logging
from collections.abc import Callable
from types import ModuleType

import pjsua2  # noqa: F401  (loads the library whose symbols are used below)

logger = logging.getLogger(__name__)

PRIORITY = 31  # after the transaction layer (16), before the dialog layer (32) and pjsua (64)
PJSIP_MAX_PKT_LEN = 4000  # pjsip's default, which tools/pjsua2/config_site.h keeps
PJ_INET6_ADDRSTRLEN = 46

Decide = Callable[[str, str], int | None]


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


class _OpKey(ctypes.Structure):  # pj_ioqueue_op_key_t
    _fields_ = [("internal", ctypes.c_void_p * 32), ("activesock_data", ctypes.c_void_p),
                ("user_data", ctypes.c_void_p)]  # fmt: skip


class _TpInfo(ctypes.Structure):
    _fields_ = [("pool", ctypes.c_void_p), ("transport", ctypes.c_void_p), ("tp_data", ctypes.c_void_p),
                ("op_key", _OpKey), ("op_key_rdata", ctypes.c_void_p)]  # fmt: skip


class _PktInfo(ctypes.Structure):
    _fields_ = [
        ("timestamp", ctypes.c_long * 2),
        ("packet", ctypes.c_char * PJSIP_MAX_PKT_LEN),
        ("zero", ctypes.c_uint32),
        ("len", ctypes.c_ssize_t),
        ("src_addr", ctypes.c_uint32 * 7),  # pj_sockaddr: the size of sockaddr_in6, 4-byte aligned
        ("src_addr_len", ctypes.c_int),
        ("src_name", ctypes.c_char * PJ_INET6_ADDRSTRLEN),
        ("src_port", ctypes.c_int),
    ]


class _MsgInfo(ctypes.Structure):
    _fields_ = [("msg_buf", ctypes.c_void_p), ("len", ctypes.c_int)]


class _RxData(ctypes.Structure):
    _fields_ = [("tp_info", _TpInfo), ("pkt_info", _PktInfo), ("msg_info", _MsgInfo)]


_ON_RX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_VOID_FN = ctypes.c_void_p  # callbacks we leave NULL


class _Module(ctypes.Structure):  # pjsip_module
    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("name", _PjStr),
        ("id", ctypes.c_int),
        ("priority", ctypes.c_int),
        ("load", _VOID_FN),
        ("start", _VOID_FN),
        ("stop", _VOID_FN),
        ("unload", _VOID_FN),
        ("on_rx_request", _ON_RX),
        ("on_rx_response", _VOID_FN),
        ("on_tx_request", _VOID_FN),
        ("on_tx_response", _VOID_FN),
        ("on_tsx_state", _VOID_FN),
    ]


def _native_module() -> ModuleType:
    """The SWIG extension that carries pjproject: inside the package in PyPI's x86_64 wheel,
    top-level beside ``pjsua2.py`` in upstream's layout (our aarch64 wheel)."""
    for name in ("pjsua2._pjsua2", "_pjsua2"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise OSError("the pjsua2 binding's native module _pjsua2 was not found")


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(_native_module().__file__)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Module)]
    lib.pjsip_endpt_unregister_module.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Module)]
    pointer = ctypes.c_void_p
    lib.pjsip_endpt_respond_stateless.argtypes = [pointer, pointer, ctypes.c_int, pointer, pointer, pointer]
    return lib


class PreFilter:
    """Registered on the endpoint between ``libStart`` and ``libDestroy`` (``register``/``unregister``)."""

    def __init__(self, decide: Decide) -> None:
        self._decide = decide
        self._lib: ctypes.CDLL | None = None
        self._endpt: int | None = None
        self._name = ctypes.create_string_buffer(b"mod-deskphone-admission")
        self._module = _Module()
        self._module.name = _PjStr(ctypes.cast(self._name, ctypes.c_char_p), len(self._name.value))
        self._module.id = -1
        self._module.priority = PRIORITY
        self._callback = _ON_RX(self._on_rx_request)  # kept alive as long as the module
        self._module.on_rx_request = self._callback
        self.enabled = False
        self.refused = 0

    def register(self) -> bool:
        try:
            self._lib = _library()
            self._endpt = self._lib.pjsua_get_pjsip_endpt()
            status = self._lib.pjsip_endpt_register_module(self._endpt, ctypes.byref(self._module))
        except (OSError, AttributeError) as exc:
            logger.error("stateless INVITE filter not available: %s", exc)
            return False
        if status != 0:
            logger.error("stateless INVITE filter not registered: pj_status %d", status)
            return False
        self.enabled = True
        return True

    def unregister(self) -> None:
        if self._lib is not None and self._endpt and self._module.id >= 0:
            self._lib.pjsip_endpt_unregister_module(self._endpt, ctypes.byref(self._module))
        self.enabled = False

    def _on_rx_request(self, rdata_ptr: int | None) -> int:
        if not self.enabled or not rdata_ptr:
            return 0
        try:
            message = _read(rdata_ptr)
            if message is None:
                return 0
            source, text = message
            code = self._decide(source, text)
            if code is None:
                return 0
            assert self._lib is not None
            self._lib.pjsip_endpt_respond_stateless(self._endpt, rdata_ptr, code, None, None, None)
            self.refused += 1
            return 1
        except _LayoutMismatch as exc:
            self.enabled = False
            logger.error("pjsip_rx_data is not laid out as expected (%s); stateless filter off", exc)
        except Exception:
            logger.exception("stateless INVITE filter failed; request passed on")
        return 0


class _LayoutMismatch(Exception):
    pass


def _read(rdata_ptr: int) -> tuple[str, str] | None:
    """(source ``host:port``, message text) of an INVITE, None for any other request."""
    rdata = _RxData.from_address(rdata_ptr)
    packet_at = rdata_ptr + _RxData.pkt_info.offset + _PktInfo.packet.offset
    packet_len = rdata.pkt_info.len
    msg_at, msg_len = rdata.msg_info.msg_buf or 0, rdata.msg_info.len
    if not (0 < packet_len <= PJSIP_MAX_PKT_LEN and 0 < msg_len <= packet_len):
        raise _LayoutMismatch(f"lengths {packet_len}/{msg_len}")
    if not packet_at <= msg_at <= packet_at + packet_len - msg_len:
        raise _LayoutMismatch("message outside its packet")
    host = rdata.pkt_info.src_name.decode("ascii", "replace")
    port = rdata.pkt_info.src_port
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise _LayoutMismatch(f"source {host!r} is not an address") from None
    if not 0 < port < 65536:
        raise _LayoutMismatch(f"source port {port}")
    source = f"[{host}]:{port}" if address.version == 6 else f"{host}:{port}"
    head = ctypes.string_at(msg_at, min(msg_len, 7))
    if head != b"INVITE ":
        return None
    text = ctypes.string_at(msg_at, msg_len).decode("utf-8", "replace")
    return source, text
