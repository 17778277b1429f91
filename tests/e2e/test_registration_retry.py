"""A failed registration is retried within seconds, not minutes."""

from __future__ import annotations

import time

import pytest

from lab.servers.phone import PHONE_PASSWORD, PHONE_USER, events_of

pytestmark = pytest.mark.e2e


def test_registration_recovers_once_the_registrar_accepts_the_phone(phone_factory, kamailio):  # type: ignore[no-untyped-def]
    phone = phone_factory(register_password="not-yet-provisioned")  # retry_interval_s = 2
    state = phone.wait_for(lambda s: events_of(s, "registration.changed"), what="a registration attempt")
    assert state["registered"] is False
    time.sleep(5)  # several retries fail first
    kamailio.add_user(PHONE_USER, PHONE_PASSWORD)  # the PBX admin fixes the account
    state = phone.wait_for(lambda s: s["registered"], timeout=15, what="registration after the fix")
    changes = [e["data"]["registered"] for e in events_of(state, "registration.changed")]
    assert changes[0] is False and changes[-1] is True
