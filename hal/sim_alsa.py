"""ALSA PCMs for the sim board: the handset microphone reads a file, the earpiece writes one.

Measured with alsa-lib 1.2 (docs/HARDWARE.md): the ``file`` plugin over the ``null`` slave neither paces
blocking reads nor writes (thousands of 20 ms frames a second), and once its ``infile`` ends a capture
read returns whatever stale data sits in the buffer, not silence. So:

- the sim board sets ``audio_self_clocked`` and the audio thread paces itself;
- :func:`write_asoundrc` copies the microphone sound (raw S16_LE mono, or a WAV of that shape whose
  header it strips) beside the asoundrc and extends the copy with a sparse hole of about 24 days of
  silence: after the sound, the microphone is quiet rather than noisy, and no disk is used for it.

alsa-lib reads ``ALSA_CONFIG_PATH`` again whenever it changes, so :func:`use_asoundrc` works even after
PCMs were opened; it affects the whole process.
"""

from __future__ import annotations

import logging
import os
import wave
from pathlib import Path

from hal.exc import AsoundrcError

logger = logging.getLogger(__name__)

CAPTURE_PCM = "deskphone_sim_mic"
PLAYBACK_PCM = "deskphone_sim_earpiece"
SYSTEM_ALSA_CONF = "/usr/share/alsa/alsa.conf"
PERIODS = 1
"""The sim PCMs' ring buffer, in periods (one period per frame). The ``file`` plugin writes a period to
the earpiece file only when the ring is full and the next write needs its room, so the file lags the
audio thread by the whole ring (measured: 4 periods = 80 ms, 2 = 40 ms, 1 = 20 ms); the ``null``
slave never underruns, so the smallest ring costs nothing."""
SILENCE_TAIL_BYTES = 1 << 36
"""Sparse silence after the microphone sound: at 16 kHz S16 mono, about 24 days."""

_TEMPLATE = """# written by hal.sim_alsa for the deskphone sim board; do not edit
pcm.{capture} {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{infile}"
    format "raw"
}}
pcm.{playback} {{
    type file
    slave.pcm "null"
    file "{outfile}"
    format "raw"
    truncate true
}}
"""


def _quote(path: Path) -> str:
    text = str(path)
    if any(ch in text for ch in '"\\\n'):
        raise AsoundrcError(f"path {text!r} cannot be written into an asoundrc")
    return text


def _pcm_bytes(mic_file: Path, rate: int) -> bytes:
    """The raw S16_LE mono samples of ``mic_file`` (a .wav must already be 16-bit mono at ``rate``)."""
    if mic_file.suffix.lower() != ".wav":
        return mic_file.read_bytes()
    try:
        with wave.open(str(mic_file), "rb") as wav:
            shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
            if shape != (1, 2, rate):
                raise AsoundrcError(
                    f"{mic_file}: {shape[0]} channel(s), {8 * shape[1]} bit, {shape[2]} Hz; the microphone "
                    f"needs mono 16 bit {rate} Hz (sox IN -c 1 -b 16 -r {rate} OUT.wav)"
                )
            return wav.readframes(wav.getnframes())
    except wave.Error as exc:
        raise AsoundrcError(f"{mic_file}: not a usable WAV file: {exc}") from exc


def write_asoundrc(
    path: str | os.PathLike[str],
    mic_file: str | os.PathLike[str] | None,
    earpiece_file: str | os.PathLike[str],
    rate: int = 16000,
) -> tuple[str, str]:
    """Write an asoundrc at ``path`` defining the sim board's PCMs; return (capture, playback) names.

    The capture PCM plays ``mic_file`` (raw S16_LE mono at ``rate``, or such a WAV; None for silence)
    and then silence; the playback PCM writes raw S16_LE to ``earpiece_file`` (truncated when the PCM is
    opened). The microphone data is copied to ``<path>.mic.raw``, so the original is never changed.
    """
    path = Path(path)
    earpiece = Path(earpiece_file).absolute()
    samples = b"" if mic_file is None else _pcm_bytes(Path(mic_file), rate)
    if len(samples) % 2:
        samples = samples[:-1]
    infile = mic_copy(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    earpiece.parent.mkdir(parents=True, exist_ok=True)
    with open(infile, "wb") as out:
        out.write(samples)
        out.truncate(len(samples) + SILENCE_TAIL_BYTES)
    path.write_text(
        _TEMPLATE.format(
            capture=CAPTURE_PCM, playback=PLAYBACK_PCM, infile=_quote(infile), outfile=_quote(earpiece)
        )
    )
    logger.info("asoundrc %s: mic %s (%d bytes), earpiece %s", path, mic_file, len(samples), earpiece)
    return CAPTURE_PCM, PLAYBACK_PCM


def mic_copy(asoundrc: str | os.PathLike[str]) -> Path:
    """The microphone copy (with its sparse silence) that :func:`write_asoundrc` puts beside ``asoundrc``."""
    path = Path(asoundrc)
    return path.with_name(path.name + ".mic.raw").absolute()


def remove_mic_copy(asoundrc: str | os.PathLike[str]) -> None:
    """Delete the microphone copy: its apparent size (64 GiB) makes archiving its directory slow."""
    mic_copy(asoundrc).unlink(missing_ok=True)


def use_asoundrc(path: str | os.PathLike[str]) -> None:
    """Make alsa-lib in this process read ``path`` after the system configuration (ALSA_CONFIG_PATH)."""
    os.environ["ALSA_CONFIG_PATH"] = f"{SYSTEM_ALSA_CONF}:{Path(path).absolute()}"
    logger.info("ALSA_CONFIG_PATH=%s", os.environ["ALSA_CONFIG_PATH"])
