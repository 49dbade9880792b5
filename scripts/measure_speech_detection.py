"""How much speech persona finds (persona_cli/speech.py) in every real clip of ../shared/data, and in
generated sounds that are not speech: the measurement behind NO_SPEECH_SECONDS and
LITTLE_SPEECH_SECONDS (persona_cli/predictor.py) and speech.py's thresholds.

    python scripts/measure_speech_detection.py [DATA_DIR]     # about 3 minutes on one core

Prints, per corpus, the fewest and the median seconds of speech and how many clips the checks would
call non-speech; the spread of the three statistics the checks use; and, for each generated sound,
the seconds webrtcvad flags and the seconds left after the checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from persona_cli.audio import SAMPLE_RATE, find_audio_files, load_audio
from persona_cli.speech import normalize_volume, speech_seconds, voiced_statistics, voiced_windows

CHUNK = 30 * SAMPLE_RATE  # what the engine hands the encoder at a time
WINDOW_S = 0.03
CORPORA = ("ravdess", "emodb", "baved", "commonvoice", "ased", "urdu", "librispeech", "long")


def measure(wave: np.ndarray) -> tuple[float, float, tuple[float, float, float]]:
    """(speech seconds, seconds webrtcvad flags, the first chunk's statistics), chunk by chunk as predict does."""
    speech = flagged = 0.0
    statistics = []
    for start in range(0, len(wave), CHUNK):
        chunk = normalize_volume(wave[start : start + CHUNK])
        voiced = voiced_windows(chunk)
        flagged += voiced.sum() * WINDOW_S
        speech += speech_seconds(chunk, voiced)
        statistics.append(voiced_statistics(chunk, voiced) if voiced.sum() >= 3 else (np.nan,) * 3)
    return speech, flagged, statistics[0]


def generated(seconds: float = 10.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE

    def coloured(exponent: float) -> np.ndarray:  # power falling as 1/f**exponent
        frequencies = np.fft.rfftfreq(t.size, 1 / SAMPLE_RATE)
        spectrum = rng.normal(size=frequencies.size) + 1j * rng.normal(size=frequencies.size)
        spectrum[1:] /= frequencies[1:] ** (exponent / 2)
        spectrum[0] = 0
        wave = np.fft.irfft(spectrum, t.size)
        return wave / np.abs(wave).max()

    sounds = {"digital silence": np.zeros(t.size), "dither (1 LSB)": rng.integers(-1, 2, t.size) / 32768}
    for db in (-60, -40, -20, -6):
        level = 10 ** (db / 20)
        sounds[f"white noise, peak {db} dBFS"] = level * rng.uniform(-1, 1, t.size)
        sounds[f"pink noise, peak {db} dBFS"] = level * coloured(1)
        sounds[f"brown noise, peak {db} dBFS"] = level * coloured(2)
    for f0 in (100, 440, 1000, 3000):
        sounds[f"tone {f0} Hz"] = 0.3 * np.sin(2 * np.pi * f0 * t)
    for mains in (50, 60):
        sounds[f"hum {mains} Hz + harmonics"] = sum(0.1 / k * np.sin(2 * np.pi * mains * k * t) for k in range(1, 8))
    melody = np.zeros(t.size)
    note = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    for i in range(int(seconds * 2)):
        f0 = [220, 247, 262, 294, 330, 349, 392, 440][i % 8]
        melody[i * note.size : (i + 1) * note.size] = np.exp(-3 * note) * sum(
            0.2 / k * np.sin(2 * np.pi * f0 * k * note) for k in range(1, 6)
        )
    sounds["synth melody"] = melody
    sounds["synth chord, tremolo"] = sum(
        0.1 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(np.pi * t)) for f in (261.6, 329.6, 392)
    )
    sounds["synth melody + pink noise"] = melody + 0.05 * coloured(1)
    sounds["sweep 100 Hz-6 kHz"] = 0.3 * np.sin(2 * np.pi * (100 * t + 300 * t**2))
    bursts = np.zeros(t.size)
    burst = int(0.08 * SAMPLE_RATE)
    for start in range(0, t.size - burst, SAMPLE_RATE // 4):
        bursts[start : start + burst] = 0.5 * rng.normal(size=burst) * np.exp(-np.arange(burst) / 400)
    sounds["noise bursts, 4 per second (drum-like)"] = bursts
    return sounds


def main(data: Path) -> None:
    rows = []
    for corpus in CORPORA:
        if (data / corpus).is_dir():
            for path in find_audio_files([data / corpus]):
                speech, flagged, statistics = measure(load_audio(path))
                rows.append((corpus, speech, flagged, *statistics))
    table = np.array([row[1:] for row in rows], dtype=float)
    print(f"{len(rows)} real clips")
    for corpus in CORPORA:
        speech = np.array([row[1] for row in rows if row[0] == corpus])
        flagged = np.array([row[2] for row in rows if row[0] == corpus])
        if speech.size:
            print(
                f"  {corpus:12s} {speech.size:5d} clips: speech min {speech.min():.2f} s, 1st percentile "
                f"{np.percentile(speech, 1):.2f} s, median {np.median(speech):.2f} s; "
                f"called non-speech: {int(((speech == 0) & (flagged > 0)).sum())}; under 0.5 s: {int((speech < 0.5).sum())}"
            )
    for column, name in enumerate(("spectral flatness", "loudness std (dB)", "spectral change"), start=2):
        values = table[:, column]
        print(
            f"  {name:18s} min {np.nanmin(values):.3f}  0.1st percentile {np.nanpercentile(values, 0.1):.3f}  "
            f"median {np.nanmedian(values):.3f}  99.9th {np.nanpercentile(values, 99.9):.3f}  max {np.nanmax(values):.3f}"
        )
    print("generated sounds, 10 s each: speech s (webrtcvad alone) flatness / loudness std / spectral change")
    for name, wave in generated().items():
        speech, flagged, statistics = measure(wave.astype(np.float32))
        print(f"  {name:40s} {speech:5.2f} ({flagged:5.2f})  " + " / ".join(f"{s:.3f}" for s in statistics))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data")
