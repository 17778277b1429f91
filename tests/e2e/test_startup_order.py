"""Start-up order (docs/SIP.md "Start-up"): the REGISTER goes out before the phone imports what the line
does not need; the broker is connected before the core exists, and what it brings meanwhile waits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import Mosquitto
from lab.servers.phone import PHONE_PASSWORD, PHONE_USER, PhoneProcess, phone_config_text
from lab.servers.ports import free_port
from tests.e2e.crm_support import CrmView, new_id, start_phone

pytestmark = pytest.mark.e2e

# The agent logs this right after the line's account has sent its REGISTER.
REGISTER_SENT = "SIP stack started"
# -X importtime keeps its nesting level and the time of the imports nested in this one in globals
# that every thread shares: while another thread imports too (the bridge's and the line's run from the
# start), a line's self time can come out negative (seen once under load: gpiozero's line went unread).
IMPORTED = re.compile(r"^import time:\s+-?\d+ \|\s+-?\d+ \| *(\S+)$", re.MULTILINE)
# Parts of the phone that the REGISTER must not wait for (each took 10-100 ms to import).
AFTER_THE_REGISTER = {
    "gpiozero",  # the pins
    "firmware.core",  # the state machine and its vocabulary
    "firmware.commands",  # (also the crm commands' parser's)
    "crm_bridge.bridge",  # the CRM bridge
    "paho.mqtt.client",
    "ssl",
}
# Not imported before the REGISTER, wherever they come later: `deskphone run --config FILE` is parsed
# without argparse, and only a config with a digit map needs the digit map's parser to check it.
NOT_BEFORE_THE_REGISTER = {"argparse", "firmware.dialplan"}


def test_the_register_goes_out_before_the_pins_the_state_machine_and_the_crm_bridge_are_imported(
    kamailio: Kamailio, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    kamailio.add_user(PHONE_USER, PHONE_PASSWORD)
    workdir = tmp_path / "phone"
    sip_port = free_port()
    text = phone_config_text(workdir, f"{kamailio.host}:{kamailio.port}", sip_port, mqtt_port=mosquitto.port)
    # -X importtime's report (stderr) and the log (stdout) go to one file, in the order they happen.
    phone = PhoneProcess(workdir, text, sip_port, env={"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        phone.start()
        phone.wait_for(
            lambda s: s["registered"] and s["mqtt"]["connects"] >= 1, 20, "registration and broker"
        )
        log = phone.log_text()
    finally:
        phone.stop()

    before, sent, after = log.partition(REGISTER_SENT)
    assert sent, "the agent's start line is missing from the log"
    imported_before = set(IMPORTED.findall(before))
    imported_after = set(IMPORTED.findall(after))
    assert "pjsua2" in imported_before  # the report is there and read right
    not_yet = AFTER_THE_REGISTER | NOT_BEFORE_THE_REGISTER
    assert imported_before.isdisjoint(not_yet), imported_before & not_yet
    missing = AFTER_THE_REGISTER - imported_after
    assert not missing, (
        f"no import of {missing} in the log; its lines with 'import time' after the REGISTER:\n"
        + ("\n".join(line for line in after.splitlines() if "import time" in line)[-4000:])
    )


def test_a_forward_that_waited_at_the_broker_is_carried_out_as_the_phone_starts(
    phone_factory,  # type: ignore[no-untyped-def]
    mosquitto: Mosquitto,
) -> None:
    # The broker hands the phone's session its queued commands right after CONNACK: before the core
    # exists, so the daemon keeps them until it does.
    crm = CrmView(mosquitto, client_id=new_id("startup-crm"), persistent=True)
    try:
        phone = start_phone(phone_factory, mosquitto)
        phone.stop()
        crm.wait_status(lambda s: s == {"v": 1, "online": False})
        request_id = new_id("fwd")
        crm.command("forward", {"v": 1, "id": request_id, "mode": "always", "number": "1005"})

        phone.start()
        reply = crm.wait_reply(request_id, timeout=20)
        assert reply["ok"] and reply["result"]["forward"]["always"] == "1005"
        phone.wait_for(lambda s: (s["forward"] or {}).get("always") == "1005", what="the forward")
        crm.wait_status(lambda s: s.get("online") is True and s.get("forward", {}).get("always") == "1005")
    finally:
        crm.close()
