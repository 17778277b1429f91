from sip_stack.sdp import audio_codecs, keep_preferred_codec

OURS = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=pjmedia\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 9 8 0 101\r\na=rtcp:4001 IN IP4 127.0.0.1\r\na=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
)
PREFERENCE = ("G722/16000", "PCMA/8000", "PCMU/8000")


def offer(media: str) -> str:
    return f"v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP {media}\r\n"


def test_our_first_codec_that_the_offer_has_is_kept_with_dtmf():
    answer = keep_preferred_codec(OURS, offer("96 0 8 9\r\na=rtpmap:96 opus/48000/2"), PREFERENCE)
    assert audio_codecs(answer) == [("9", "g722"), ("101", "telephone-event")]
    assert "a=rtpmap:8" not in answer and "a=rtpmap:0" not in answer
    assert "a=fmtp:101 0-16" in answer and "a=rtcp:4001" in answer and "a=sendrecv" in answer


def test_static_payload_types_without_rtpmap_count():
    answer = keep_preferred_codec(OURS, offer("0 8"), PREFERENCE)
    assert [name for _, name in audio_codecs(answer)] == ["pcma", "telephone-event"]


def test_unchanged_when_nothing_is_common_or_already_one_codec_or_no_audio():
    assert keep_preferred_codec(OURS, offer("96\r\na=rtpmap:96 opus/48000/2"), PREFERENCE) == OURS
    single = keep_preferred_codec(OURS, offer("9"), PREFERENCE)
    assert keep_preferred_codec(single, offer("9"), PREFERENCE) == single
    assert keep_preferred_codec("v=0\r\n", offer("9"), PREFERENCE) == "v=0\r\n"
    assert keep_preferred_codec(OURS, "garbage", PREFERENCE) == OURS
