"""Test audio: write sine WAVs and measure the dominant frequency and level of recordings."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np


def sine_frames(freq: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    """One second of a sine as int16 (the phase continues when tiled, for integer freq)."""
    t = np.arange(rate) / rate
    return (amplitude * 32767 * np.sin(2 * math.pi * freq * t)).astype(np.int16)


def write_sine_wav(
    path: Path, freq: float, seconds: float, rate: int = 16000, amplitude: float = 0.3
) -> Path:
    samples = np.tile(sine_frames(freq, rate, amplitude), math.ceil(seconds))[: int(seconds * rate)]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data, w.getframerate()


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64)
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def rms_dbfs(samples: np.ndarray) -> float:
    x = samples.astype(np.float64) / 32768.0
    rms = math.sqrt(float(np.mean(x * x))) if len(x) else 0.0
    return 20 * math.log10(rms) if rms > 0 else -120.0


def loudest_stretch(samples: np.ndarray, rate: int, seconds: float = 1.0) -> np.ndarray:
    """The ``seconds`` long stretch with the most energy (skips silence around a call)."""
    n = int(rate * seconds)
    if len(samples) <= n:
        return samples
    energy = np.convolve(samples.astype(np.float64) ** 2, np.ones(n), mode="valid")
    start = int(np.argmax(energy[:: max(1, rate // 50)])) * max(1, rate // 50)
    return samples[start : start + n]
