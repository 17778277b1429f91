"""The user agent: one ``sip`` thread owns the pjsua2 Endpoint and every Account and Call.

Threads:
- ``sip`` (ours): creates, runs and destroys the Endpoint; pumps ``libHandleEvents`` (pjsua2 runs
  with ``threadCnt=0``, so SIP timers and transports are polled here, and RTP too: media has no
  ioqueue of its own), sleeping in it until SIP or RTP I/O, pjsip's next timer, one of ours, or a
  posted job (``wakeup.PumpWakeup``); runs the jobs that the public methods post; calls ``on_event``
  (which must be cheap: the firmware posts to a queue).
- pjmedia clock (pjsua2, null sound device): calls the ``BridgePort`` every ``frame_ms``; moves
  frames only.
- The caller's threads: the public methods only put a job on a queue and return.

Call objects are held in a registry keyed by our call id and dropped on the ``sip`` thread after
DISCONNECTED. Teardown deletes every pjsua2 object on the ``sip`` thread in a fixed order before
``libDestroy`` (hold sounds, calls, the tone generator, the bridge port, the accounts);
``sip_stack.lifetimes`` tracks them, so none is destroyed later or on another thread.

Every incoming INVITE is judged by ``sip_stack.admission`` before pjsua creates anything for it:
``sip_stack.prefilter`` answers refused ones statelessly; should that filter be off,
``onSelectAccount`` hands them to a second account with socket-less loop media that answers them at
once (403/404/486).
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import itertools
import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pjsua2 as pj

from sip_stack import events, memory, sipmsg
from sip_stack.admission import BUSY, QUIET_BEFORE_TRIM_S, Admission, Refusal
from sip_stack.audio_bridge import AudioBridge, BridgePort
from sip_stack.calls import RefusalAccount, SipAccount, SipCall, SipEndpoint
from sip_stack.lifetimes import PjObjects
from sip_stack.pjlog import PjLogWriter
from sip_stack.prefilter import PreFilter
from sip_stack.settings import SipSettings
from sip_stack.tones import HOLD_TONES, TONE_KINDS, Tone, tone_for
from sip_stack.wakeup import PumpWakeup

logger = logging.getLogger(__name__)

_PUMP_MS = 10
# The longest the sip thread sleeps in libHandleEvents with nothing of ours due: pjsip's own timers,
# SIP and RTP I/O and our posted jobs end the wait sooner; this only bounds what nothing announces (a
# pjsip timer another thread scheduled: none is known while idle).
_IDLE_WAIT_S = 30.0
# pjsua retries a failed registration by itself only after temporary failures (408, 5xx, 6xx). A
# desk phone also retries after the others (401/403 when the PBX account is not set up yet, 404...),
# so that fixing the account on the PBX brings every phone back within seconds, without a reboot.
_PJSUA_RETRIES = frozenset({408, 500, 502, 503, 504})
_RTP_CHECK_S = 1.0
# A call's objects caught in a cycle are collected this long after its end, when no call is left: the
# full collection (~0.2 ms here, holding the GIL) ran right while the call's end went from the core to
# paho, and one during the next call's set-up would delay its screen pop.
_COLLECT_AFTER_S = 0.2
# pjmedia's conference bridge takes a port out (a call's, a hold sound's) only on its clock's next tick
# (conference.c: an operation queue run from get_frame); until then the port keeps one of the bridge's
# 64 slots (tools/pjsua2/config_site.h). Calls too short to see a tick used them up one by one: "Add
# port sip:... failed: Too many objects (PJ_ETOOMANY)" and 488 to every call after ~61. So the media
# clock also runs while the bridge holds a port beyond the agent's own and the live calls' (started for
# it if need be: a call whose audio was never routed), looking every two ticks, for at most this long
# (a port still there then is not waiting on a tick).
_CLOCK_DRAIN_LOOK_S = 0.04
_CLOCK_DRAIN_MAX_S = 2.0
_STOP_GRACE_S = 2.0
# pjsua call slots beyond max_calls, for INVITEs being refused (each is answered and gone within the
# callback that took it; without a free slot pjsua itself answers 486 statelessly).
_REFUSAL_SLOTS = 4
_TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}

_SRTP = {
    "off": pj.PJMEDIA_SRTP_DISABLED,
    "optional": pj.PJMEDIA_SRTP_OPTIONAL,
    "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
}

EventCallback = Callable[[events.SipEvent], None]
_T = TypeVar("_T")


class UserAgent:
    """A SIP phone line on pjsua2. Public methods are non-blocking and safe from any thread."""

    def __init__(self, settings: SipSettings, on_event: EventCallback) -> None:
        self.settings = settings
        self.audio = AudioBridge(settings.clock_rate, settings.frame_ms)
        self._on_event = on_event
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._running = False
        self._incoming_ids = itertools.count(1)
        self._transfer_ids = itertools.count(1)
        self._refused_ids = itertools.count(1)
        self._admission = Admission(
            settings.user,
            (*settings.trusted_pbx, settings.registrar_host),
            only_from_pbx=settings.only_from_pbx,
            max_calls=settings.max_calls,
            registrar_port=settings.registrar_port,
        )
        self._status_lock = threading.Lock()
        self._status: dict[str, Any] = {"registered": False, "reg_code": 0, "calls": {}, "tone": None}
        # Owned by the sip thread only:
        self._ep: pj.Endpoint | None = None
        self._pj_objects: PjObjects | None = None
        self._account: SipAccount | None = None
        self._refusal_account: RefusalAccount | None = None
        self._pending_refusal: Refusal | None = None
        self._admitted_call_id: str | None = None
        self._prefilter: PreFilter | None = None
        self._reg_retry_at: float | None = None
        self._collect_at: float | None = None  # a dropped call may wait in a cycle for gc.collect
        self._trim_at: float | None = None  # the last call's transactions are over: give their heap back
        self._calls: dict[str, SipCall] = {}
        self._port: BridgePort | None = None
        self._tone_gen: pj.ToneGenerator | None = None
        self._tone_connected = False
        self._audio_call: str | None = None  # the one call the bridge port is connected to
        self._log_writer: PjLogWriter | None = None
        self._wakeup: PumpWakeup | None = None
        self._media_clock_running = False
        self._idle_ports = 0  # conference ports with no call: the master port, ours, the tone generator
        self._clock_look_at: float | None = None  # the clock ticks on until the bridge has drained
        self._draining_since: float | None = None
        self._drain_given_up = False  # ports stayed past _CLOCK_DRAIN_MAX_S: warned, until audio flows again

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Start the ``sip`` thread and wait until the endpoint runs (registration goes on)."""
        if self._thread is not None:
            raise RuntimeError("user agent already started")
        self._running = True
        self._thread = threading.Thread(target=self._run, name="sip", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("SIP stack did not start in time")
        if self._start_error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise RuntimeError(f"SIP stack failed to start: {self._start_error}") from self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        """Hang up every call, unregister, destroy the endpoint and join the ``sip`` thread."""
        if self._thread is None:
            return
        self._jobs.put(None)
        self._wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("sip thread did not stop within %.1fs", timeout)
        self._thread = None

    # ---- requests (any thread) ---------------------------------------------------------------
    def make_call(self, call_id: str, number: str) -> None:
        self._post(lambda: self._do_make_call(call_id, number))

    def answer(self, call_id: str) -> None:
        self._post(lambda: self._do_answer(call_id))

    def hangup(self, call_id: str, code: int | None = None) -> None:
        """End a call; for an unanswered incoming call ``code`` (e.g. 486) is the rejection."""
        self._post(lambda: self._do_hangup(call_id, code))

    def redirect(self, call_id: str, number: str, reason: str) -> None:
        """Answer the ringing incoming ``call_id`` with 302 Moved Temporarily to ``number`` at the PBX
        (Contact), with a Diversion header (RFC 5806) naming our extension and ``reason``
        (``unconditional``, ``user-busy``, ``no-answer``): the PBX calls the target instead."""
        self._post(lambda: self._do_redirect(call_id, number, reason))

    def send_dtmf(self, call_id: str, digits: str) -> None:
        self._post(lambda: self._do_send_dtmf(call_id, digits))

    def hold(self, call_id: str, hold: bool) -> None:
        """Hold ``call_id`` (re-INVITE with ``a=sendonly``, the hold tone to it), or resume it."""
        self._post(lambda: self._do_hold(call_id, hold))

    def transfer(self, call_id: str, number: str | None = None, replaces: str | None = None) -> None:
        """REFER ``call_id``'s far end to ``number`` (blind) or to our call ``replaces``'s far end
        (attended); both calls are hung up on the final NOTIFY, or after ``_TRANSFER_WAIT_S``."""
        self._post(lambda: self._do_transfer(call_id, number, replaces))

    def play_tone(self, kind: str | None) -> None:
        """Play a local tone into the earpiece path ("dial", "ringback", "busy", "error"); None stops."""
        if kind is not None and kind not in TONE_KINDS:
            raise ValueError(f"unknown tone {kind!r}")
        self._post(lambda: self._do_play_tone(kind))

    def route_audio(self, call_id: str | None, microphone: bool) -> None:
        """Connect the earpiece and microphone to ``call_id`` only (None: to no call).

        The microphone is muted at once, from the caller's thread, when ``microphone`` is False; the
        bridge is rewired on the ``sip`` thread.
        """
        self.audio.mic_open = microphone and call_id is not None
        self._post(lambda: self._do_route_audio(call_id))

    def status(self) -> dict[str, Any]:
        with self._status_lock:
            snapshot = dict(self._status)
            snapshot["calls"] = dict(self._status["calls"])
        snapshot["audio"] = self.audio.counters()
        return snapshot

    def _post(self, job: Callable[[], None]) -> None:
        if not self._running:
            logger.warning("SIP stack not running; request dropped")
            return
        self._jobs.put(job)
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.wake()

    # ---- the sip thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._create_endpoint()
        except Exception as exc:  # pjsua2.Error is not an Exception subclass in every build
            logger.error("SIP stack failed to start: %s", _error_text(exc))
            self._start_error = exc
            self._running = False
            self._destroy_endpoint()
            self._started.set()
            return
        self._started.set()
        try:
            self._loop()
        finally:
            self._running = False
            self._shutdown()

    def _loop(self) -> None:
        assert self._ep is not None
        next_rtp_check = time.monotonic() + _RTP_CHECK_S
        while True:
            now = time.monotonic()
            if self._reg_retry_at is not None and now >= self._reg_retry_at:
                self._reg_retry_at = None
                self._retry_registration()
            self._end_transferred_calls()
            if self._clock_look_at is not None and now >= self._clock_look_at:
                self._clock_look_at = None
                self._update_media_clock()
            if self._collect_at is not None and now >= self._collect_at and not self._calls:
                self._collect_at = None
                gc.collect()
                self._update_media_clock()  # a sound freed by the collection left its port to drain
            if self._trim_at is not None and now >= self._trim_at and not self._calls:
                self._trim_at = None
                released = _yes(memory.trim_heap())
                logger.debug("malloc_trim after the last call (pages given back: %s)", released)
            if now >= next_rtp_check:
                next_rtp_check = now + _RTP_CHECK_S
                self._admission.flush_summary()
                if self._admission.heap_trim_due():
                    released = _yes(memory.trim_heap())
                    logger.info("heap trimmed after a flood of INVITEs (pages given back: %s)", released)
                if self.settings.rtp_timeout_s > 0:
                    self._check_rtp_timeouts()
            wait_s = _IDLE_WAIT_S
            if self._calls or self._admission.housekeeping_pending():
                wait_s = min(wait_s, next_rtp_check - now)
            if self._reg_retry_at is not None:
                wait_s = min(wait_s, self._reg_retry_at - now)
            if self._clock_look_at is not None:
                wait_s = min(wait_s, self._clock_look_at - now)
            if not self._calls:
                for deadline in (self._collect_at, self._trim_at):
                    if deadline is not None:
                        wait_s = min(wait_s, deadline - now)
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    return
                try:
                    job()
                except Exception as exc:
                    logger.exception("SIP job failed: %s", _error_text(exc))
            self._ep.libHandleEvents(max(0, math.ceil(wait_s * 1000)))

    def _registration_failed(self, code: int) -> None:
        """On the sip thread: schedule our own retry where pjsua does not retry by itself."""
        if code in _PJSUA_RETRIES or code >= 600 or code == 0 or not self._running:
            return
        self._reg_retry_at = time.monotonic() + self.settings.retry_interval_s
        logger.debug("registration retry in %d s", self.settings.retry_interval_s)

    def _retry_registration(self) -> None:
        if self._account is None:
            return
        try:
            self._account.setRegistration(True)
        except Exception as exc:  # pjsua2.Error is not an Exception subclass in every build
            logger.warning("registration retry failed to start: %s", _error_text(exc))
            self._reg_retry_at = time.monotonic() + self.settings.retry_interval_s

    def _track(self, obj: _T, what: str) -> _T:
        """On the sip thread: register a pjsua2 object that must be gone before ``libDestroy``."""
        if self._pj_objects is not None:
            self._pj_objects.track(obj, what)
        return obj

    def _create_endpoint(self) -> None:
        s = self.settings
        self._pj_objects = PjObjects()
        ep = SipEndpoint(self)
        self._ep = ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = s.user_agent
        cfg.uaConfig.maxCalls = s.max_calls + _REFUSAL_SLOTS
        self._log_writer = PjLogWriter()
        cfg.logConfig.writer = self._log_writer
        cfg.logConfig.level = s.log_level
        cfg.logConfig.consoleLevel = s.log_level  # the writer only sees what passes consoleLevel
        cfg.logConfig.msgLogging = s.log_level >= 4
        cfg.logConfig.decor = 0
        cfg.medConfig.clockRate = s.clock_rate
        cfg.medConfig.sndClockRate = s.clock_rate
        cfg.medConfig.audioFramePtime = s.frame_ms
        cfg.medConfig.channelCount = 1
        # RTP shares the sip thread's ioqueue: no media worker thread polling an ioqueue of its own
        # every 10 ms for ever (pjmedia's endpoint.c worker_proc); RTP ends the sip thread's wait.
        cfg.medConfig.hasIoqueue = False
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        # A desk phone on an office LAN: start the adaptive jitter buffer at one frame (pjmedia's
        # defaults aim at the open internet) and let it grow only when the network jitters.
        cfg.medConfig.jbInit = s.frame_ms
        cfg.medConfig.jbMinPre = s.frame_ms
        cfg.medConfig.jbMaxPre = 200
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = s.local_port
        if s.bind_address:
            tcfg.boundAddress = s.bind_address
            tcfg.publicAddress = s.bind_address
        if s.transport == "tls":
            tcfg.tlsConfig.CaListFile = s.tls_ca_file
            tcfg.tlsConfig.verifyServer = s.tls_verify_server
        transport_id = ep.transportCreate(_TRANSPORTS[s.transport], tcfg)
        self._wakeup = PumpWakeup.for_transport(ep, transport_id, s.transport, s.bind_address)
        ep.libStart()
        self._prefilter = PreFilter(self._prefilter_decide)
        self._prefilter.register()
        # No media clock while idle: pjsua's null sound device ticks the conference bridge 50 times a
        # second whether or not anything is connected; it runs only while a call or a tone has audio.
        ep.audDevManager().setNoDev()
        self._media_clock_running = False
        self._set_codecs()

        self._port = self._track(BridgePort(self.audio), "AudioMediaPort (the audio bridge)")
        self._port.create()
        self._tone_gen = self._track(pj.ToneGenerator(), "ToneGenerator (local tones)")
        self._tone_gen.createToneGenerator(s.clock_rate, 1)
        # The tone generator is connected to the port only while a tone plays: with nothing connected
        # pjsua closes the (null) sound device after sndAutoCloseTime, and the media clock sleeps
        # while the phone is idle.
        self._tone_connected = False
        self._idle_ports = ep.mediaActivePorts()

        self._refusal_account = RefusalAccount(self)
        self._refusal_account.create(self._refusal_account_config())
        self._trust_registrar_addresses()
        # The line's account last: its create() sends the REGISTER, and the registrar's 401 waits in
        # the socket until this thread polls (~9 ms when the refusal account and the look-up came after).
        self._account = SipAccount(self)
        self._account.create(self._account_config(), True)
        logger.info(
            "SIP stack started: %s@%s via %s (%s), bind %s",
            s.user, s.sip_domain, s.registrar, s.transport, s.bind_address or "*",
        )  # fmt: skip

    def _set_codecs(self) -> None:
        assert self._ep is not None
        wanted = [c.lower() for c in self.settings.codecs]
        enabled = []
        for codec in self._ep.codecEnum2():
            cid = codec.codecId
            prio = 0
            for rank, name in enumerate(wanted):
                if cid.lower().startswith(name):
                    prio = 250 - rank
                    break
            self._ep.codecSetPriority(cid, prio)
            if prio:
                enabled.append(cid)
        logger.info("codecs enabled: %s", ", ".join(enabled) or "none")

    def _account_config(self) -> pj.AccountConfig:
        s = self.settings
        params = s.uri_params()
        acfg = pj.AccountConfig()
        display = f'"{s.display_name}" ' if s.display_name else ""
        acfg.idUri = f"{display}<sip:{s.user}@{s.sip_domain}>"
        acfg.regConfig.registrarUri = f"sip:{s.registrar}{params}"
        acfg.regConfig.timeoutSec = s.register_expiry_s
        acfg.regConfig.retryIntervalSec = s.retry_interval_s
        acfg.regConfig.firstRetryIntervalSec = s.retry_interval_s
        acfg.sipConfig.proxies.append(f"sip:{s.registrar};lr{params}")
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", s.auth_username, 0, s.password))
        acfg.mediaConfig.srtpUse = _SRTP[s.srtp]
        # SDES keys travel in the SDP: pjsua wants TLS for them by default (srtpSecureSignaling 1);
        # over UDP/TCP check-config warns instead, and SRTP still keeps the media itself private.
        acfg.mediaConfig.srtpSecureSignaling = 1 if s.transport == "tls" else 0
        acfg.mediaConfig.srtpOpt.keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)
        mt = acfg.mediaConfig.transportConfig
        mt.port = s.media_port_start
        mt.portRange = 100
        if s.bind_address:
            mt.boundAddress = s.bind_address
            mt.publicAddress = s.bind_address
        return acfg

    def _refusal_account_config(self) -> pj.AccountConfig:
        acfg = pj.AccountConfig()
        acfg.idUri = f"<sip:refused@{self.settings.sip_domain}>"
        acfg.mediaConfig.useLoopMedTp = True
        return acfg

    def _trust_registrar_addresses(self) -> None:
        """Add the registrar's addresses to the trusted sources (INVITEs come from an address)."""
        host = self.settings.registrar_host.strip("[]")
        with contextlib.suppress(ValueError):  # an address needs no look-up (nor the idna codec's import)
            self._admission.trust([str(ipaddress.ip_address(host))], registrar=True)
            return
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
        except OSError as exc:
            logger.warning("registrar %s not resolved (%s); trusted by name only for now", host, exc)
            return
        self._admission.trust((str(info[4][0]) for info in infos), registrar=True)

    def _shutdown(self) -> None:
        ep = self._ep
        if ep is None:
            return
        try:
            self._do_play_tone(None)
            self.audio.mic_open = False
            for call_id in list(self._calls):
                self._do_hangup(call_id, None)
            deadline_pumps = int(_STOP_GRACE_S * 1000 / _PUMP_MS)
            for _ in range(deadline_pumps):
                if not self._calls:
                    break
                self._run_pending_jobs()
                ep.libHandleEvents(_PUMP_MS)
            self._drop_all_calls()  # ~Call hangs up one still up, before its account goes
            self._unregister(ep)
        finally:
            self._destroy_endpoint()

    def _drop_all_calls(self) -> None:
        for call in self._calls.values():
            call.hold_sound = None  # its conference port goes before the call's media
        self._calls.clear()

    def _unregister(self, ep: pj.Endpoint) -> None:
        """Un-REGISTER both accounts (a function of its own: no frame of the teardown keeps one)."""
        for account in (self._refusal_account, self._account):
            if account is None:
                continue
            try:
                account.shutdown()
            except Exception as exc:
                logger.warning("account shutdown: %s", _error_text(exc))
            for _ in range(20):  # let the un-REGISTER go out
                ep.libHandleEvents(_PUMP_MS)

    def _check_rtp_timeouts(self) -> None:
        """End answered calls that received no RTP for ``rtp_timeout_s`` (far end gone without a BYE).

        pjsua2 has no RTP inactivity timeout of its own: compare the received packet count of each
        active audio stream once a second. The call ends with a BYE and ``408 RTP timeout``.
        """
        now = time.monotonic()
        for call in list(self._calls.values()):
            if not call.answered or call.ended or call.end_reason is not None:
                continue
            try:
                info = call.getInfo()
                packets = sum(
                    call.getStreamStat(i).rtcp.rxStat.pkt
                    for i, m in enumerate(info.media)
                    if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                )
            except Exception as exc:
                logger.debug("call %s: no stream statistics: %s", call.call_id, _error_text(exc))
                continue
            if packets != call.rx_packets:
                call.rx_packets = packets
                call.rx_changed_at = now
            elif now - call.rx_changed_at >= self.settings.rtp_timeout_s:
                silent = now - call.rx_changed_at
                logger.warning("call %s: no RTP for %.0f s; ending it", call.call_id, silent)
                call.end_reason = (408, "RTP timeout")
                self._do_hangup(call.call_id, None)

    def _run_pending_jobs(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                try:
                    job()
                except Exception as exc:
                    logger.warning("SIP job during shutdown failed: %s", _error_text(exc))

    def _destroy_endpoint(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            wakeup.close()
        if self._prefilter is not None:
            self._prefilter.unregister()
            self._prefilter = None
        self._release_pj_objects()
        if self._ep is not None:
            try:
                self._ep.libDestroy()
            except Exception as exc:
                logger.warning("libDestroy: %s", _error_text(exc))
            self._ep = None
        self._log_writer = None
        with self._status_lock:
            self._status.update(registered=False, calls={}, tone=None)
        logger.info("SIP stack stopped")

    def _release_pj_objects(self) -> None:
        """Delete every pjsua2 object of ours, here on the sip thread, in an order pjsua accepts.

        Jobs still queued may hold a call (a transfer's check): they are dropped unrun. A hold sound
        goes before its call, the calls before the accounts they belong to; the tone generator and
        the bridge port were disconnected by ``_shutdown``. ``gc.collect`` then frees, on this
        thread, whatever a reference cycle still held; anything alive after it is held from outside
        the agent and is leaked instead of being destroyed after ``libDestroy``.
        """
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        self._drop_all_calls()
        self._tone_gen = None
        self._port = None
        self._refusal_account = None
        self._account = None
        gc.collect()
        if self._pj_objects is not None:
            survivors = self._pj_objects.close()
            if survivors:
                logger.error("%d pjsua2 objects outlived the agent's references: %s", len(survivors),
                             ", ".join(survivors))  # fmt: skip

    # ---- jobs (sip thread) -------------------------------------------------------------------
    def _do_make_call(self, call_id: str, number: str) -> None:
        if call_id in self._calls:
            logger.warning("call id %s already in use", call_id)
            return
        assert self._account is not None
        if not self._admission.room_for_call(self._calls_up()):
            logger.warning("call %s not placed: %d calls up already", call_id, self._calls_up())
            self._emit(events.CallEnded(call_id, 486, "Too many calls", by_remote=False))
            return
        uri = self._target_uri(number)
        call = SipCall(self, self._account)
        call.call_id = call_id
        prm = pj.CallOpParam(True)
        try:
            call.makeCall(uri, prm)
        except Exception as exc:
            logger.warning("call %s to %s could not start: %s", call_id, uri, _error_text(exc))
            self._emit(events.CallEnded(call_id, 500, _error_text(exc), by_remote=False))
            return
        self._calls[call_id] = call
        self._set_call_status(call_id, "calling")
        sip_call_id = call.getInfo().callIdString
        logger.info("call %s: calling %s", call_id, uri)
        self._emit(events.OutgoingCallStarted(call_id, sip_call_id))

    def _target_uri(self, number: str) -> str:
        number = number.strip()
        if number.lower().startswith(("sip:", "sips:")):
            return number
        return f"sip:{number}@{self.settings.sip_domain}{self.settings.uri_params()}"

    def _refer_to_uri(self, number: str) -> str:
        """The Refer-To of a blind transfer: the target at our registrar (host:port), so that the far
        end, which has no proxy of ours, reaches it through the PBX."""
        if number.lower().startswith(("sip:", "sips:")):
            return number
        return f"sip:{number}@{self.settings.registrar}{self.settings.uri_params()}"

    def _transport_state(self, prm: pj.OnTransportStateParam) -> None:
        """A TLS connection up (cipher, whose certificate), or refused for its certificate (and why)."""
        tls = prm.tlsInfo
        if tls.verifyStatus == 0 and not (tls.established and prm.state == pj.PJSIP_TP_STATE_CONNECTED):
            return
        subject = str(tls.remoteCertInfo.subjectCn) if tls.established else "?"
        if tls.verifyStatus != 0:
            why = "; ".join(tls.verifyMsgs)
            ca_file = self.settings.tls_ca_file or "not set"
            logger.error("TLS to %s refused: the server's certificate (CN %s) failed verification: %s "
                         "(tls_ca_file %s)", tls.remoteAddr, subject, why, ca_file)  # fmt: skip
        else:
            checked = (
                "verified" if self.settings.tls_verify_server else "NOT verified (tls_verify_server off)"
            )
            logger.info("TLS to %s established: %s, certificate CN %s %s", tls.remoteAddr, tls.cipherName,
                        subject, checked)  # fmt: skip

    def _calls_up(self) -> int:
        return sum(not call.ignored for call in self._calls.values())

    def _prefilter_decide(self, source: str, whole_msg: str) -> int | None:
        """The stateless filter's question about an INVITE: the code to refuse it with, or None."""
        if sipmsg.has_to_tag(whole_msg):
            return None  # a re-INVITE in a dialog we have
        refusal = self._admission.decide(source, sipmsg.request_user(whole_msg), self._calls_up())
        self._admitted_call_id = None if refusal else sipmsg.call_id(whole_msg)
        return refusal.code if refusal else None

    def _select_account(self, src_address: str, whole_msg: str) -> int | None:
        """``onSelectAccount``: admission's decision for an INVITE, before pjsua creates its media."""
        if not whole_msg.startswith("INVITE ") or self._account is None or self._refusal_account is None:
            return None
        admitted, self._admitted_call_id = self._admitted_call_id, None
        if admitted is not None and admitted == sipmsg.call_id(whole_msg):
            return int(self._account.getId())  # the stateless filter took it on already
        refusal = self._admission.decide(src_address, sipmsg.request_user(whole_msg), self._calls_up())
        self._pending_refusal = refusal
        return int((self._refusal_account if refusal else self._account).getId())

    def _refuse_incoming(self, call: SipCall, src_address: str) -> None:
        """An INVITE on the refusal account: answer it with admission's code; it never rings."""
        refusal, self._pending_refusal = self._pending_refusal or BUSY, None
        call.call_id = f"refused-{next(self._refused_ids)}"
        call.ignored = True
        self._calls[call.call_id] = call
        logger.debug("call %s from %s refused with %d (%s)", call.call_id, src_address, refusal.code,
                     refusal.why)  # fmt: skip
        try:
            call.answer(_status_param(refusal.code, refusal.reason))
        except Exception as exc:
            logger.warning("call %s: could not send %d: %s", call.call_id, refusal.code, _error_text(exc))

    def _incoming(self, call: SipCall, src_address: str, whole_msg: str) -> None:
        call_id = f"in-{next(self._incoming_ids)}"
        call.call_id = call_id
        self._calls[call_id] = call
        info = call.getInfo()
        number, name, uri = sipmsg.parse_name_addr(info.remoteUri)
        headers = sipmsg.header_values(whole_msg)
        source_host = sipmsg.host_of(src_address)
        self._set_call_status(call_id, "incoming")
        # Reported before the 180 and the log line: the core's work on it (the screen pop) overlaps
        # pjsip's sending the 180 (pjsua2 lets the GIL go in C); what the core asks of this call runs
        # as a job after this callback, so after the 180 all the same.
        self._emit(
            events.IncomingCall(
                call_id=call_id,
                sip_call_id=info.callIdString,
                remote_number=number,
                remote_name=name,
                remote_uri=uri,
                source_host=source_host,
                headers=headers,
            )
        )
        logger.info("call %s: incoming from %s (%s) via %s", call_id, number or uri, name, source_host)
        try:
            call.answer(_status_param(180))
        except Exception as exc:
            logger.warning("call %s: could not send 180: %s", call_id, _error_text(exc))

    def _do_answer(self, call_id: str) -> None:
        call = self._find(call_id)
        if call is not None:
            call.answer(_status_param(200))
            self._set_call_status(call_id, "answering")

    def _do_hangup(self, call_id: str, code: int | None) -> None:
        call = self._find(call_id)
        if call is None or call.ended:
            return
        call.local_hangup = True
        if call.answered:
            _log_jitter_buffer(call)
        prm = pj.CallOpParam(True)
        if code is not None:
            prm.statusCode = code
        call.hangup(prm)

    def _do_redirect(self, call_id: str, number: str, reason: str) -> None:
        call = self._find(call_id)
        if call is None or call.ended or call.answered:
            return
        s = self.settings
        contact = f"<{self._target_uri(number)}>"
        diversion = f"<sip:{s.user}@{s.sip_domain}>;reason={reason};counter=1;privacy=off"
        prm = _status_param(302, "Moved Temporarily")
        # pjsip's dialog adds its own Contact to a 3xx only when the response has none: ours is the
        # only one (the lab's kamailio logs the 302's Contacts; tests/e2e/test_line_forwarding.py).
        prm.txOption.headers.append(_header("Contact", contact))
        prm.txOption.headers.append(_header("Diversion", diversion))
        call.local_hangup = True
        call.end_reason = (302, f"Forwarded to {number} ({reason})")
        try:
            call.answer(prm)
        except Exception as exc:
            logger.warning("call %s: could not redirect to %s: %s", call_id, number, _error_text(exc))
            with contextlib.suppress(Exception):  # the caller gone meanwhile: nothing left to end
                call.hangup(_status_param(480))
            return
        logger.info("call %s: redirected to %s (%s)", call_id, contact, reason)

    def _do_send_dtmf(self, call_id: str, digits: str) -> None:
        call = self._find(call_id)
        if call is None:
            return
        prm = pj.CallSendDtmfParam()
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        prm.digits = digits
        call.sendDtmf(prm)

    def _do_transfer(self, call_id: str, number: str | None, replaces: str | None) -> None:
        call = self._find(call_id)
        if call is None or call.ended:
            return
        partner = self._find(replaces) if replaces else None
        deadline = time.monotonic() + _TRANSFER_WAIT_S
        try:
            if partner is not None and not partner.ended:
                partner.transfer_deadline = deadline
                call.xferReplaces(partner, pj.CallOpParam(True))
            else:
                call.xfer(self._refer_to_uri(number or ""), pj.CallOpParam(True))
        except Exception as exc:
            logger.warning("call %s: transfer failed: %s", call_id, _error_text(exc))
            deadline = time.monotonic()  # hang up at once
        logger.info("call %s: transferred to %s", call_id, f"call {replaces}" if partner else number)
        call.transfer_deadline = deadline

    def _end_transferred_calls(self) -> None:
        """Hang up the calls we transferred once the far end reported the outcome or took too long."""
        now = time.monotonic()
        for call in list(self._calls.values()):
            if call.transfer_deadline is not None and not call.ended and now >= call.transfer_deadline:
                call.transfer_deadline = None
                self._do_hangup(call.call_id, None)

    def _do_hold(self, call_id: str, hold: bool) -> None:
        call = self._find(call_id)
        if call is None or call.ended or call.on_hold == hold:
            return
        call.on_hold = hold
        try:
            if hold:
                call.setHold(pj.CallOpParam(True))
            else:
                prm = pj.CallOpParam(True)
                prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                call.reinvite(prm)
        except Exception as exc:  # e.g. a re-INVITE still pending: the call stays as it was
            call.on_hold = not hold
            logger.warning("call %s: %s failed: %s", call_id, "hold" if hold else "resume", _error_text(exc))
            return
        logger.info("call %s: %s", call_id, "held" if hold else "resumed")
        self._set_call_status(call_id, "held" if hold else "confirmed")
        self._route_call_audio(call)

    def _do_play_tone(self, kind: str | None) -> None:
        gen = self._tone_gen
        if gen is None:
            return
        gen.stop()
        if kind is None and self._tone_connected and self._port is not None:
            gen.stopTransmit(self._port)
            self._tone_connected = False
        if kind is not None:
            if not self._tone_connected and self._port is not None:
                gen.startTransmit(self._port)
                self._tone_connected = True
            gen.play(_tone_vector(tone_for(self.settings.tone_plan, kind)), True)
        self._update_media_clock()
        with self._status_lock:
            self._status["tone"] = kind

    def _do_route_audio(self, call_id: str | None) -> None:
        self._audio_call = call_id
        for call in list(self._calls.values()):
            self._route_call_audio(call)

    def _find(self, call_id: str) -> SipCall | None:
        call = self._calls.get(call_id)
        if call is None:
            logger.warning("no call %s", call_id)
        return call

    # ---- called by Account/Call callbacks (sip thread) ---------------------------------------
    def _emit(self, event: events.SipEvent) -> None:
        if isinstance(event, events.RegistrationChanged):
            with self._status_lock:
                self._status["registered"] = event.registered
                self._status["reg_code"] = event.code
        elif isinstance(event, events.CallAnswered):
            self._set_call_status(event.call_id, "confirmed")
        elif isinstance(event, events.CallRinging):
            self._set_call_status(event.call_id, "ringing")
        try:
            self._on_event(event)
        except Exception:
            logger.exception("on_event handler failed for %s", type(event).__name__)

    def _call_disconnected(self, call_id: str) -> None:
        self._set_call_status(call_id, None)
        # The Call object is inside its own callback now: drop it from the next job.
        self._jobs.put(lambda: self._drop_call(call_id))

    def _drop_call(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        collect = call is not None and not call.ignored
        del call  # freed here, on the sip thread, unless a cycle holds it: then the collection in _loop
        if collect:  # a refused call holds no media; collecting for each would slow a flood down
            self._collect_at = time.monotonic() + _COLLECT_AFTER_S
            self._trim_at = time.monotonic() + QUIET_BEFORE_TRIM_S
        self._update_media_clock()

    def _update_media_clock(self) -> None:
        """Run pjsua's null sound device (the media clock) only while a tone or a call has audio."""
        if self._ep is None:
            return
        # A held call's hold tone or music needs the clock too: the conference bridge moves it to the call.
        audio = self._tone_connected or any(
            (c.media_connected or c.hold_sound is not None) and not c.ended for c in self._calls.values()
        )
        if audio:
            self._draining_since = self._clock_look_at = None
            self._drain_given_up = False
        wanted = audio or self._bridge_draining()
        if wanted == self._media_clock_running:
            return
        try:
            if wanted:
                self._ep.audDevManager().setNullDev()
            else:
                self._ep.audDevManager().setNoDev()
        except Exception as exc:  # pjsua2.Error is not an Exception subclass in every build
            logger.warning("media clock %s: %s", "start" if wanted else "stop", _error_text(exc))
            return
        self._media_clock_running = wanted

    def _bridge_draining(self) -> bool:
        """Whether the bridge still holds the port of a call or sound that is gone (its removal waits
        for a tick of the media clock); if so, look again in two ticks."""
        assert self._ep is not None
        ports = self._ep.mediaActivePorts()
        if ports <= self._idle_ports or ports <= self._idle_ports + self._live_call_ports():
            self._draining_since = None
            self._drain_given_up = False
            return False
        if self._drain_given_up:
            return False
        now = time.monotonic()
        if self._draining_since is None:
            self._draining_since = now
        elif now - self._draining_since >= _CLOCK_DRAIN_MAX_S:
            logger.warning("%d conference ports left after the media clock drained the bridge", ports)
            self._drain_given_up = True
            return False
        self._clock_look_at = now + _CLOCK_DRAIN_LOOK_S
        return True

    def _live_call_ports(self) -> int:
        """The conference ports of the calls not ended (one per audio stream)."""
        count = 0
        for call in self._calls.values():
            if call.ended:
                continue
            try:
                info = call.getInfo()  # kept: info.media is a view into it
            except Exception as exc:  # pjsua2.Error is not an Exception subclass in every build
                logger.debug("call %s: no info: %s", call.call_id, _error_text(exc))
                continue
            count += sum(1 for m in info.media if m.type == pj.PJMEDIA_TYPE_AUDIO and m.audioConfSlot >= 0)
        return count

    def _route_call_audio(self, call: SipCall) -> None:
        """Connect the bridge port to ``call``'s active audio if it is the routed call, else disconnect.

        Only the call the firmware routes audio to hears the microphone: a held call, a call being
        transferred or one pjsua2 set up by itself never does.
        """
        port = self._port
        if port is None or call.ended:
            return
        try:
            info = call.getInfo()
        except Exception as exc:
            logger.debug("call %s: no info: %s", call.call_id, _error_text(exc))
            return
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            active = media.status == pj.PJSUA_CALL_MEDIA_ACTIVE and not call.on_hold
            wanted = call.call_id == self._audio_call and active
            if wanted == (index in call.media_connected):
                continue
            try:
                audio = call.getAudioMedia(index)
                if wanted:
                    if not call.audio_connected:
                        # The microphone FIFO filled while nobody listened: start with fresh sound.
                        self.audio.mic.clear()
                        call.audio_connected = True
                    port.startTransmit(audio)
                    audio.startTransmit(port)
                    call.media_connected.add(index)
                else:
                    port.stopTransmit(audio)
                    audio.stopTransmit(port)
                    call.media_connected.discard(index)
            except Exception as exc:  # the media went away under us: nothing left to connect
                call.media_connected.discard(index)
                logger.debug("call %s: audio media %d: %s", call.call_id, index, _error_text(exc))
                continue
            logger.debug("call %s: audio media %d %s", call.call_id, index,
                         "connected" if wanted else "disconnected")  # fmt: skip
        self._route_hold_sound(call, info)
        self._update_media_clock()

    def _route_hold_sound(self, call: SipCall, info: pj.CallInfo) -> None:
        """A call we hold hears the hold music (``hold_music``) or the hold tone; resumed, it goes away."""
        if not call.on_hold:
            call.hold_sound = None  # its conference port leaves the bridge with it
            return
        if call.hold_sound is not None:
            return
        index = next((i for i, m in enumerate(info.media) if m.type == pj.PJMEDIA_TYPE_AUDIO
                      and m.status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD), None)  # fmt: skip
        if index is None:
            return
        try:
            sound = self._hold_music() if self.settings.hold_music else self._hold_tone()
            sound.startTransmit(call.getAudioMedia(index))
        except Exception as exc:
            logger.warning("call %s: nothing to hear on hold: %s", call.call_id, _error_text(exc))
            return
        call.hold_sound = sound

    def _hold_tone(self) -> pj.ToneGenerator:
        tone = self._track(pj.ToneGenerator(), "ToneGenerator (hold tone)")
        tone.createToneGenerator(self.settings.clock_rate, 1)
        tone.play(_tone_vector(HOLD_TONES[self.settings.tone_plan]), True)
        return tone

    def _hold_music(self) -> pj.AudioMediaPlayer:
        """The hold music file from its start, looped (options 0: pjmedia's WAV player loops)."""
        player = self._track(pj.AudioMediaPlayer(), "AudioMediaPlayer (hold music)")
        player.createPlayer(self.settings.hold_music, 0)
        return player

    # ---- transfers (sip thread; see sip_stack.transfer) --------------------------------------
    def _adopt_transfer_call(self, outgoing: bool) -> SipCall:
        """A Call object of ours for the call pjsua2 is about to make or answer for a transfer."""
        assert self._account is not None
        call = SipCall(self, self._account)
        call.call_id = f"xfer-{next(self._transfer_ids)}"
        call.announce_start = outgoing
        self._calls[call.call_id] = call
        self._set_call_status(call.call_id, "calling" if outgoing else "answering")
        return call

    def _post_on_sip_thread(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)
        self._wake()

    def _check_transfer_started(self, call: SipCall) -> None:
        if call.getId() != pj.PJSUA_INVALID_ID or call.ended:
            return
        logger.warning("call %s: the transfer call could not be placed", call.call_id)
        call.ended = True
        self._emit(events.CallEnded(call.call_id, 500, "transfer call not placed", by_remote=False))
        self._call_disconnected(call.call_id)

    def _set_call_status(self, call_id: str, state: str | None) -> None:
        with self._status_lock:
            calls = self._status["calls"]
            if state is None:
                calls.pop(call_id, None)
            else:
                calls[call_id] = state


_TRANSFER_WAIT_S = 10.0  # a transferee that never NOTIFYs the outcome: hang up anyway


def _tone_vector(tone: Tone) -> pj.ToneDescVector:
    vector = pj.ToneDescVector()
    for seg in tone:
        desc = pj.ToneDesc()
        desc.freq1 = seg.freq1
        desc.freq2 = seg.freq2
        desc.on_msec = seg.on_ms
        desc.off_msec = seg.off_ms
        desc.volume = 0
        vector.append(desc)
    return vector


def _status_param(code: int, reason: str = "") -> pj.CallOpParam:
    prm = pj.CallOpParam(True)
    prm.statusCode = code
    if reason:
        prm.reason = reason
    return prm


def _header(name: str, value: str) -> pj.SipHeader:
    header = pj.SipHeader()
    header.hName = name
    header.hValue = value
    return header


def _log_jitter_buffer(call: SipCall) -> None:
    """One line of pjmedia's jitter-buffer statistics for each audio stream of a call we end (the
    earpiece path's largest stage, docs/SIP.md "Earpiece budget"); frames are the codec's (10 ms for
    G.711 and G.722)."""
    try:
        info = call.getInfo()  # kept: info.media is a view into it
        for i, m in enumerate(info.media):
            if m.type != pj.PJMEDIA_TYPE_AUDIO or m.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            jb = call.getStreamStat(i).jbuf
            logger.info(
                "call %s: jitter buffer: delay %d ms (min %d, max %d), burst %d (avg %d), prefetch %d; "
                "lost %d, discarded %d, empty %d",
                call.call_id,
                jb.avgDelayMsec,
                jb.minDelayMsec,
                jb.maxDelayMsec,
                jb.burst,
                jb.avgBurst,
                jb.prefetch,
                jb.lost,
                jb.discard,
                jb.empty,
            )
    except Exception as exc:
        logger.debug("call %s: no stream statistics: %s", call.call_id, _error_text(exc))


def _yes(released: bool | None) -> str:
    return {True: "yes", False: "none", None: "no malloc_trim here"}[released]


def _error_text(exc: BaseException) -> str:
    info = getattr(exc, "info", None)
    if callable(info):
        try:
            return str(info())
        except Exception:
            pass
    return str(exc)
