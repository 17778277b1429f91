"""pjsua2 Endpoint, Account and Call subclasses. They live and die on the ``sip`` thread only.

Their callbacks translate pjsua2 state into our events through the owning agent; they never act
on other objects inline beyond what the callback is about.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pjsua2 as pj

from sip_stack import events, sdp, transfer

if TYPE_CHECKING:
    from sip_stack.agent import UserAgent

logger = logging.getLogger(__name__)


class SipEndpoint(pj.Endpoint):
    """Asks the agent which account takes an incoming INVITE, before pjsua creates its media."""

    def __init__(self, agent: UserAgent) -> None:
        super().__init__()
        self._agent = agent

    def onTransportState(self, prm: pj.OnTransportStateParam) -> None:
        self._agent._transport_state(prm)

    def onSelectAccount(self, prm: pj.OnSelectAccountParam) -> None:
        index = self._agent._select_account(str(prm.rdata.srcAddress), str(prm.rdata.wholeMsg))
        if index is not None:
            prm.accountIndex = index


class RefusalAccount(pj.Account):
    """Takes the INVITEs admission refused: its media is a socket-less loop; it never registers."""

    def __init__(self, agent: UserAgent) -> None:
        super().__init__()
        self._agent = agent
        agent._track(self, "Account (refusals)")

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._agent._refuse_incoming(SipCall(self._agent, self, prm.callId), str(prm.rdata.srcAddress))


class SipAccount(pj.Account):
    def __init__(self, agent: UserAgent) -> None:
        super().__init__()
        self._agent = agent
        agent._track(self, "Account (the line)")
        self._last: tuple[bool, int] | None = None

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        info = self.getInfo()
        registered = bool(info.regIsActive)
        code = int(prm.code)
        reason = str(prm.reason)
        if not registered:
            self._agent._registration_failed(code)
        if (registered, code) == self._last:
            return
        self._last = (registered, code)
        if registered:
            logger.info("registered as %s (%d %s, expires %ds)", info.uri, code, reason, info.regExpiresSec)
        else:
            logger.warning("registration of %s failed or ended: %d %s", info.uri, code, reason)
        self._agent._emit(events.RegistrationChanged(registered=registered, code=code, reason=reason))

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = SipCall(self._agent, self, prm.callId)
        self._agent._incoming(call, prm.rdata.srcAddress, prm.rdata.wholeMsg)


class SipCall(pj.Call):
    def __init__(self, agent: UserAgent, account: pj.Account, pj_call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, pj_call_id)
        self._agent = agent
        agent._track(self, "Call")
        self.call_id = ""
        self.local_hangup = False
        self.answered = False
        self.audio_connected = False
        self.ended = False
        self.last_ringing_code = 0
        self.ignored = False  # refused before the firmware heard of it: no events
        self.end_reason: tuple[int, str] | None = None  # set when we end the call for a local fault
        self.rx_packets = -1
        self.rx_changed_at = 0.0
        self.announce_start = False  # a call pjsua2 placed for a REFER: report it once it has a Call-ID
        self.replaced = False  # an INVITE with Replaces took this call's place
        self.media_connected: set[int] = set()  # audio media indexes connected to the bridge port
        self.held_by_remote = False
        self.on_hold = False  # we hold it: the hold tone or music, never the microphone, goes to it
        self.hold_sound: pj.AudioMedia | None = None  # a ToneGenerator or an AudioMediaPlayer
        self.transfer_deadline: float | None = None  # we transferred it: hang up by then (monotonic)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        state = info.state
        logger.debug("call %s: %s (%d)", self.call_id, info.stateText, info.lastStatusCode)
        if self.announce_start:
            self.announce_start = False
            self._agent._emit(events.OutgoingCallStarted(self.call_id, info.callIdString))
        if state == pj.PJSIP_INV_STATE_EARLY and info.role == pj.PJSIP_ROLE_UAC:
            code = int(info.lastStatusCode)
            if code in (180, 183) and code != self.last_ringing_code:
                self.last_ringing_code = code
                early_media = any(
                    m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                    for m in info.media
                )
                self._agent._emit(events.CallRinging(self.call_id, code, early_media))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not self.answered:
            self.answered = True
            self._agent._emit(events.CallAnswered(self.call_id))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and self.ignored:
            self.ended = True
            self._agent._call_disconnected(self.call_id)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            code = int(info.lastStatusCode)
            reason = str(info.lastReason)
            if self.end_reason is not None:
                code, reason = self.end_reason
            self._agent._emit(events.CallEnded(self.call_id, code, reason, by_remote=not self.local_hangup))
            logger.info("call %s ended: %d %s (by %s)", self.call_id, code, reason,
                        "local" if self.local_hangup else "remote")  # fmt: skip
            self._agent._call_disconnected(self.call_id)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self._agent._route_call_audio(self)
        if self.ended:
            return
        info = self.getInfo()
        held = any(
            m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
            for m in info.media
        )
        if held != self.held_by_remote:
            self.held_by_remote = held
            logger.info("call %s: %s by the far end", self.call_id, "held" if held else "resumed")
            self._agent._emit(events.CallHoldChanged(self.call_id, held))

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:
        if prm.remSdp.wholeSdp:  # answering an offer: our first codec that the offer has, not theirs
            prm.sdp.wholeSdp = sdp.keep_preferred_codec(
                prm.sdp.wholeSdp, prm.remSdp.wholeSdp, self._agent.settings.codecs
            )

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        """The far end we REFERred reports (NOTIFY): on the final one our part is over."""
        logger.info("call %s: transfer status %d %s%s", self.call_id, prm.statusCode, prm.reason,
                    " (final)" if prm.finalNotify else "")  # fmt: skip
        if prm.finalNotify or prm.statusCode >= 200:
            prm.cont = False
            self.transfer_deadline = 0.0  # hung up from the sip loop, outside this callback

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        transfer.take_refer(self._agent, self, prm)

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:
        transfer.take_replace(self._agent, self, prm)
