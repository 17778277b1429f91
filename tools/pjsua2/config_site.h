/* pjproject's compile-time configuration for the deskphone's pjsua2, the same on x86_64
 * (tools/pjsua2/native.sh) and on the Raspberry Pi (tools/pi/pjsua2.sh). pj/config.h includes it
 * before pjproject's own defaults, which are all #ifndef-guarded. Every define here is sized for one
 * desk phone; everything not named keeps pjproject 2.15.1's default (notably PJ_IOQUEUE_MAX_HANDLES
 * 64 and PJSIP_MAX_PKT_LEN 4000, the limits docs/SIP.md's flood figures rest on; the packet length
 * is also in sip_stack/prefilter.py's ctypes layout of pjsip_rx_data, so change both or neither; and
 * PJ_DEBUG: the pre-filter's design assumes pj_assert is compiled in, as in the PyPI wheel). */

/* An audio phone: no video devices, codecs or windows (configure's --disable-video says the same). */
#define PJMEDIA_HAS_VIDEO 0

/* Call slots: sip_stack asks for max_calls + _REFUSAL_SLOTS (4) and max_calls is 1..12
 * (sip_stack.admission.MAX_CALLS_LIMIT), so up to 16. pjsua silently caps UaConfig.maxCalls at this
 * value, whose 2.15.1 default is 4: the Pi's build before this file had no refusal slots left. */
#define PJSUA_MAX_CALLS 16

/* The phone creates exactly two accounts, once: its SIP account and the refusal account. */
#define PJSUA_MAX_ACC 2

/* A hold-music player per held call at most (sip_stack.agent._hold_music): one per call slot. */
#define PJSUA_MAX_PLAYERS PJSUA_MAX_CALLS

/* The phone never records through pjsua (the earpiece goes to our audio bridge). */
#define PJSUA_MAX_RECORDERS 1

/* Conference ports: every call and player, a hold tone per call, the audio bridge, the local tone
 * generator and the null sound device's port: 16 + 16 + 16 + 3 = 51 (default 254). It is also
 * MediaConfig.maxMediaPorts' default. */
#define PJSUA_MAX_CONF_PORTS 64

/* No presence or buddy list on this phone (default 256 buddy slots). */
#define PJSUA_MAX_BUDDIES 1

/* Codecs: the phone offers what its config names (firmware.config: G722/16000, PCMA/8000, PCMU/8000
 * by default; docs/SIP.md "Codec choice"); telephone-event (DTMF) is part of pjmedia's stream and
 * always there. The rest are left out of the build (configure's --disable-*-codec flags say the
 * same; a config naming one of them enables nothing, and sip_stack logs the codecs it enabled). */
#define PJMEDIA_HAS_G711_CODEC 1
#define PJMEDIA_HAS_G722_CODEC 1
#define PJMEDIA_HAS_L16_CODEC 0
#define PJMEDIA_HAS_GSM_CODEC 0
#define PJMEDIA_HAS_SPEEX_CODEC 0
#define PJMEDIA_HAS_ILBC_CODEC 0
#define PJMEDIA_HAS_G7221_CODEC 0

/* No echo canceller: a handset, and sip_stack sets MediaConfig.ecTailLen 0 (speex's AEC was the
 * only reason to build libspeex once its codec is gone). */
#define PJMEDIA_HAS_SPEEX_AEC 0

/* SRTP (SDES keying, docs/SIP.md "SIP over TLS and SRTP") stays; DTLS-SRTP is not used. */
#define PJMEDIA_HAS_SRTP 1
#define PJMEDIA_SRTP_HAS_DTLS 0
