"""Being transferred by the far end: a REFER (blind, or attended with ``Replaces`` in its Refer-To) or
an INVITE with ``Replaces`` that takes the place of one of our calls.

pjsua2 carries both out itself: for an accepted REFER it sends the INVITE to the Refer-To target and
NOTIFYs the referrer of its progress; for an INVITE with Replaces it answers the new call and ends the
replaced one. Given no Call object for the new call, pjsua2 *reuses* the transferred call's object
("application reuses Call instance in call transfer"): the new dialog's events then arrive under the
old call's id, the old dialog is left with no owner (no BYE at hook-down) and the object is freed
while pjsua still points at it (SIGSEGV). So every new call gets its own ``SipCall`` here, registered
under its own id before pjsua2 touches it, and the firmware is told which call took over from which.

Runs on the ``sip`` thread (inside pjsua2 callbacks): registers and reports, never waits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pjsua2 as pj

from sip_stack import events, sipmsg

if TYPE_CHECKING:
    from sip_stack.agent import UserAgent
    from sip_stack.calls import SipCall

logger = logging.getLogger(__name__)

DECLINE = 603


def take_refer(agent: UserAgent, call: SipCall, prm: pj.OnCallTransferRequestParam) -> None:
    """The far end of ``call`` asks us (REFER) to call ``prm.dstUri``: refuse it or own the new call."""
    target = prm.dstUri
    number, name, uri = sipmsg.parse_name_addr(target if "<" in target else f"<{target}>")
    replaces = "replaces=" in target.lower()
    if not agent.settings.accept_transfer or call.ended or call.local_hangup:
        logger.info("call %s: transfer to %s refused with %d", call.call_id, uri.split("?")[0], DECLINE)
        prm.statusCode = DECLINE
        return
    new_call = agent._adopt_transfer_call(outgoing=True)
    prm.newCall = new_call
    logger.info("call %s: transferred to %s (%s) as call %s", call.call_id, uri.split("?")[0],
                "attended" if replaces else "blind", new_call.call_id)  # fmt: skip
    agent._emit(
        events.CallTransferred(
            call_id=call.call_id,
            new_call_id=new_call.call_id,
            remote_number=number,
            remote_name=name,
            remote_uri=uri.split("?")[0],
            kind="refer",
        )
    )
    # pjsua2 makes the new call right after this callback returns; if it could not, the new Call
    # object never gets a pjsua id and no callback ever comes: report it as failed from the next job.
    agent._post_on_sip_thread(lambda: agent._check_transfer_started(new_call))


def take_replace(agent: UserAgent, call: SipCall, prm: pj.OnCallReplaceRequestParam) -> None:
    """An INVITE with Replaces names ``call``: the new call (answered by pjsua2) gets its own object."""
    if not agent.settings.accept_transfer or call.ended:
        logger.info("call %s: INVITE with Replaces refused with %d", call.call_id, DECLINE)
        prm.statusCode = DECLINE
        prm.reason = "Decline"
        return
    new_call = agent._adopt_transfer_call(outgoing=False)
    prm.newCall = new_call
    call.replaced = True
    from_header = sipmsg.header_values(prm.rdata.wholeMsg, ("From",)).get("From", "")
    number, name, uri = sipmsg.parse_name_addr(from_header)
    logger.info("call %s: replaced by call %s from %s", call.call_id, new_call.call_id, uri)
    agent._emit(
        events.CallTransferred(
            call_id=call.call_id,
            new_call_id=new_call.call_id,
            remote_number=number,
            remote_name=name,
            remote_uri=uri,
            kind="replaces",
        )
    )
