"""How much speech a waveform holds: webrtcvad's voice mask, checked for sounds it mistakes for speech.

The GE2E encoders run this detector anyway to cut pauses (encoders/ge2e.py), and hand their mask to
`speech_seconds`, so measuring costs them one small FFT over the voiced windows; other encoders
run the detector here (Encoder.embed_with_speech).

webrtcvad alone calls many steady sounds speech: loud white or pink noise, tones, mains hum and
simple synthesised music all come out almost entirely "voiced". Two properties of the voiced
windows set them apart from real speech, and a waveform showing either counts as holding none:

- noise is spectrally flat, speech is not (its energy sits in harmonics and formants);
- tones, hum and held notes change little from one 30 ms window to the next, speech changes all the
  time (syllables, formant transitions).

The thresholds were chosen by measuring every real clip in ../shared/data against generated noise,
tones, hum and synthesised music (scripts/measure_speech_detection.py; figures in docs/): none of
the real clips is judged non-speech. predictor.py decides what too little speech means for a file.
"""

from __future__ import annotations

import threading

# webrtcvad's C module, called directly: its Python wrapper (webrtcvad.Vad) adds a method call to
# every 30 ms window, and importing it imports pkg_resources to read its version (80 ms per run)
import _webrtcvad
import numpy as np

SAMPLE_RATE = 16_000  # audio.SAMPLE_RATE, repeated so that this module stays free of audio.py's imports
VAD_WINDOW = 480  # 30 ms at 16 kHz, a frame size webrtcvad accepts
VAD_SMOOTHING = 8  # windows in the moving average over voice flags
TARGET_DBFS = -30.0  # quiet recordings are raised to this loudness before detection, loud ones left alone
INT16_MAX = 2**15 - 1

# Noise: spectrally flat AND steady in loudness. The median spectral flatness (geometric over
# arithmetic mean of the power spectrum) of the voiced windows above NOISE_FLATNESS, and the
# standard deviation of their loudness below STEADY_LOUDNESS_DB. Either alone would catch real
# speech: noisy recordings can be nearly as flat as pink noise, and a few short clips nearly as
# steady, but none is both. (Whispering is flat too, but its loudness comes and goes.)
NOISE_FLATNESS = 0.1
STEADY_LOUDNESS_DB = 3.0
# Steady in spectrum: the median change of the log power spectrum between consecutive voiced
# windows (mean absolute difference of natural logs, 330 Hz-8 kHz) below this. Tones, hum and
# held synthesised notes stay below it; real speech, which changes with every syllable, above.
STEADY_FLUX = 0.85
# fewer voiced windows than this have no median worth the name; they count as the detector says
MIN_WINDOWS_TO_JUDGE = 3
_FLUX_BINS = slice(10, 240)  # of a 480-point FFT at 16 kHz: 333 Hz to 8 kHz (bin 240 = 8 kHz excluded)


def normalize_volume(wave: np.ndarray) -> np.ndarray:
    """Raise quiet recordings to TARGET_DBFS (never lower loud ones), as GE2E's weights expect."""
    rms = np.sqrt(np.mean((wave.astype(np.float64) * INT16_MAX) ** 2))
    if rms == 0:
        return wave
    change_db = TARGET_DBFS - 20 * np.log10(rms / INT16_MAX)
    return wave if change_db < 0 else (wave * 10 ** (change_db / 20)).astype(np.float32)


_thread_vads = threading.local()


def _fresh_vad() -> object:
    """A detector in its initial state, mode 3, for this thread (webrtcvad's handle).

    Each waveform needs a fresh one: webrtcvad adapts its noise model as it goes, so a shared
    detector would make a file's result depend on the files before it. But webrtcvad never frees a
    detector (its handle has no destructor, so one per file leaks: docs/measurements.md, "GE2E"), so
    each thread keeps one and re-initialises it, which is what a new one does on creation.
    """
    vad = getattr(_thread_vads, "vad", None)
    if vad is None:
        vad = _thread_vads.vad = _webrtcvad.create()
    _webrtcvad.init(vad)
    _webrtcvad.set_mode(vad, 3)
    return vad


def voiced_windows(wave: np.ndarray) -> np.ndarray:
    """One flag per whole 30 ms window of `wave` (volume-normalised 16 kHz samples): speech or not,
    smoothed as resemblyzer does (at least 5 of the 8 windows around it flagged by webrtcvad, mode 3)."""
    vad = _fresh_vad()
    wave = wave[: len(wave) - len(wave) % VAD_WINDOW]
    # clip before the int16 cast: volume normalisation can push peaks past full scale
    pcm = np.clip(np.round(wave * INT16_MAX), -INT16_MAX - 1, INT16_MAX).astype("<i2").tobytes()
    window_bytes = VAD_WINDOW * 2
    is_speech = _webrtcvad.process
    voiced = np.array(
        [is_speech(vad, SAMPLE_RATE, pcm[i : i + window_bytes], VAD_WINDOW) for i in range(0, len(pcm), window_bytes)],
        dtype=np.float64,
    )
    if voiced.size == 0:
        return np.zeros(0, dtype=bool)
    # moving average over 8 windows (3 before, 4 after), rounded half-to-even: at least 5 of 8 voiced
    window_sums = np.convolve(voiced, np.ones(VAD_SMOOTHING))[VAD_SMOOTHING // 2 : VAD_SMOOTHING // 2 + voiced.size]
    return np.round(window_sums / VAD_SMOOTHING).astype(bool)


def speech_seconds(wave: np.ndarray, voiced: np.ndarray | None = None) -> float:
    """Seconds of speech in a 16 kHz mono waveform: its voiced windows, or none when they sound like
    noise or a steady tone. `wave` is volume-normalised and `voiced` is its voiced_windows() when given
    (GE2E passes what it computed); else both are computed here."""
    if voiced is None:
        wave = normalize_volume(wave)
        voiced = voiced_windows(wave)
    count = int(np.count_nonzero(voiced))
    if count >= MIN_WINDOWS_TO_JUDGE:
        flatness, loudness_std, flux = voiced_statistics(wave, voiced)
        if (flatness > NOISE_FLATNESS and loudness_std < STEADY_LOUDNESS_DB) or flux < STEADY_FLUX:
            return 0.0
    return count * VAD_WINDOW / SAMPLE_RATE


def voiced_statistics(wave: np.ndarray, voiced: np.ndarray) -> tuple[float, float, float]:
    """Over the voiced windows of a volume-normalised wave: the median spectral flatness, the standard
    deviation of the loudness in dB, and the median spectral change (see the thresholds above)."""
    windows = wave[: voiced.size * VAD_WINDOW].astype(np.float64).reshape(-1, VAD_WINDOW)[voiced]
    power = np.abs(np.fft.rfft(windows * np.hanning(VAD_WINDOW), axis=1)) ** 2 + 1e-12
    log_power = np.log(power)
    flatness = np.exp(log_power.mean(axis=1)) / power.mean(axis=1)
    loudness_db = 10 * np.log10(windows.var(axis=1) + 1e-12)
    flux = np.abs(np.diff(log_power[:, _FLUX_BINS], axis=0)).mean(axis=1)
    return float(np.median(flatness)), float(loudness_db.std()), float(np.median(flux)) if len(flux) else 0.0


__all__ = ["normalize_volume", "speech_seconds", "voiced_statistics", "voiced_windows"]
