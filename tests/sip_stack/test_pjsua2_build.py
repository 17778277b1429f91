"""What sip_stack needs of the pjsua2 build (tools/pjsua2): the C functions the pre-filter reaches
through ctypes are exported by the module (tools/pjsua2/exports.map), so a started user agent has
its stateless INVITE filter."""

from __future__ import annotations

import logging

import pytest

from lab.servers.ports import free_port
from sip_stack import SipSettings

pytestmark = pytest.mark.e2e
pytest.importorskip("pjsua2")


def test_a_started_user_agent_has_its_stateless_invite_filter(ua_factory, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sip_stack")
    settings = SipSettings(
        registrar=f"127.0.0.1:{free_port()}", user="phone", local_port=free_port(), bind_address="127.0.0.1"
    )
    ua_factory(settings)
    started = [r for r in caplog.records if r.getMessage().startswith("SIP stack started")]
    assert started, "the user agent did not start"
    filter_errors = [r.getMessage() for r in caplog.records if r.name == "sip_stack.prefilter"]
    assert filter_errors == []
