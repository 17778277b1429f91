"""A pjsip module that leaves a 302 we send with only the Contact we gave it: the forwarding target.

pjsua2 redirects a ringing call with ``Call.answer`` (302 and a ``Contact`` in ``txOption.headers``),
but pjsip's dialog adds its own Contact to every 3xx before the application's headers are appended
(``dlg_beautify_response``), so the 302 would name two alternatives, the forwarding target and the
phone itself, and a PBX that follows it (kamailio's ``get_redirects``, Asterisk's ``follow_forward``)
would ring the phone again. This module's ``on_tx_response`` sees each response before the transport
layer prints it (priority 32 is called before 8) and, in a ``302`` to an INVITE that carries a second
Contact (ours, a generic header), removes the dialog's. It reads one field of ``pjsip_tx_data``
(``msg``, laid out as in pjproject 2.15) and checks it against ``pjsip_tx_data_get_info`` before
touching anything; on a mismatch it logs one error and goes quiet (the 302 then keeps both Contacts).

It runs on the thread that sends: the ``sip`` thread.
"""

from __future__ import annotations

import ctypes
import logging

from sip_stack.prefilter import _library, _Module, _OpKey, _PjStr

logger = logging.getLogger(__name__)

PRIORITY = 33  # any number above the transport layer's 8 runs before the message is printed
PJSIP_H_CONTACT = 9  # pjsip_hdr_e
PJSIP_RESPONSE_MSG = 1
PJ_MAX_OBJ_NAME = 32
MOVED_TEMPORARILY = 302

_ON_TX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _TxData(ctypes.Structure):  # the head of pjsip_tx_data, up to ``msg``
    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("pool", ctypes.c_void_p),
        ("obj_name", ctypes.c_char * PJ_MAX_OBJ_NAME),
        ("info", ctypes.c_char_p),
        ("rx_timestamp", ctypes.c_long * 2),
        ("mgr", ctypes.c_void_p),
        ("op_key", _OpKey),
        ("op_key_tdata", ctypes.c_void_p),
        ("op_key_token", ctypes.c_void_p),
        ("op_key_callback", ctypes.c_void_p),
        ("lock", ctypes.c_void_p),
        ("msg", ctypes.c_void_p),
    ]


class _MsgHead(ctypes.Structure):  # pjsip_msg: type, then line.status.code
    _fields_ = [("type", ctypes.c_int), ("pad", ctypes.c_int), ("code", ctypes.c_int)]


class RedirectContactFix:
    """Registered on the endpoint between ``libStart`` and ``libDestroy`` (``register``/``unregister``)."""

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self._endpt: int | None = None
        self._name = ctypes.create_string_buffer(b"mod-deskphone-redirect")
        self._contact = _PjStr(b"Contact", 7)
        self._module = _Module()
        self._module.name = _PjStr(ctypes.cast(self._name, ctypes.c_char_p), len(self._name.value))
        self._module.id = -1
        self._module.priority = PRIORITY
        self._callback = _ON_TX(self._on_tx_response)  # kept alive as long as the module
        self._module.on_tx_response = ctypes.cast(self._callback, ctypes.c_void_p).value
        self.enabled = False
        self.fixed = 0

    def register(self) -> bool:
        try:
            lib = _library()
            pointer = ctypes.c_void_p
            lib.pjsip_tx_data_get_info.argtypes = [pointer]
            lib.pjsip_tx_data_get_info.restype = ctypes.c_char_p
            lib.pjsip_msg_find_hdr.argtypes = [pointer, ctypes.c_int, pointer]
            lib.pjsip_msg_find_hdr.restype = pointer
            lib.pjsip_msg_find_hdr_by_name.argtypes = [pointer, ctypes.POINTER(_PjStr), pointer]
            lib.pjsip_msg_find_hdr_by_name.restype = pointer
            lib.pj_list_erase.argtypes = [pointer]
            lib.pjsip_tx_data_invalidate_msg.argtypes = [pointer]
            self._lib = lib
            self._endpt = lib.pjsua_get_pjsip_endpt()
            status = lib.pjsip_endpt_register_module(self._endpt, ctypes.byref(self._module))
        except (OSError, AttributeError) as exc:
            logger.error("302 Contact fix not available (a 302 names the phone too): %s", exc)
            return False
        if status != 0:
            logger.error("302 Contact fix not registered: pj_status %d", status)
            return False
        self.enabled = True
        return True

    def unregister(self) -> None:
        if self._lib is not None and self._endpt and self._module.id >= 0:
            self._lib.pjsip_endpt_unregister_module(self._endpt, ctypes.byref(self._module))
        self.enabled = False

    def _on_tx_response(self, tdata_ptr: int | None) -> int:
        if not self.enabled or not tdata_ptr or self._lib is None:
            return 0
        try:
            self._fix(tdata_ptr)
        except Exception:
            logger.exception("302 Contact fix failed; response sent as it was")
        return 0

    def _fix(self, tdata_ptr: int) -> None:
        lib = self._lib
        assert lib is not None
        info = (lib.pjsip_tx_data_get_info(tdata_ptr) or b"").decode("ascii", "replace")
        if not info.startswith(f"Response msg {MOVED_TEMPORARILY}/INVITE/"):
            return
        msg = _TxData.from_address(tdata_ptr).msg
        head = _MsgHead.from_address(msg) if msg else None
        if head is None or (head.type, head.code) != (PJSIP_RESPONSE_MSG, MOVED_TEMPORARILY):
            self.enabled = False
            logger.error("pjsip_tx_data is not laid out as expected (%s); 302 Contact fix off", info)
            return
        dialog_contact = lib.pjsip_msg_find_hdr(msg, PJSIP_H_CONTACT, None)
        if not dialog_contact:
            return
        after = ctypes.c_void_p.from_address(dialog_contact + ctypes.sizeof(ctypes.c_void_p)).value
        ours = lib.pjsip_msg_find_hdr_by_name(msg, ctypes.byref(self._contact), after)
        if not ours:
            return  # a 302 with only pjsip's Contact: not one of our redirects
        lib.pj_list_erase(dialog_contact)
        lib.pjsip_tx_data_invalidate_msg(tdata_ptr)
        self.fixed += 1
