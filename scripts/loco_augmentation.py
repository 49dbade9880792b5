"""Does training on degraded copies of every clip help on unseen corpora? Leave-one-corpus-out with
and without augmentation, on the default encoder's float32 vectors (issue #13).

    python scripts/loco_augmentation.py --seeds 0 1 2

Each clip of ../shared/data gets one degraded copy, embedded like the original. The degradation is
one of four, drawn at random (seed 0): telephone (8 kHz, 300-3400 Hz), pink noise at 10-25 dB SNR,
reverberation (an exponentially decaying noise response, RT60 0.2-0.8 s), or a spectral tilt (a
first-order pre- or de-emphasis). Each corpus is then held out in turn, as in loco_experiments.py,
with read speech as weak neutral. The training set is either the other corpora's clips ("base"),
or those clips plus their degraded copies ("augmented"). Scoring is on the held-out corpus's
original clips. One line per run, as loco_experiments.py prints them.
"""

from __future__ import annotations

import argparse

import numpy as np
import soxr
from loco_experiments import (
    CORPORA,
    DATA,
    EMOTION_CORPORA,
    READ_SPEECH,
    all_features,
    line,
    read_speech_is_neutral,
    run_variant,
)
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.corpora import LabelledClip
from persona_cli.encoders.ge2e import float32_lstm
from persona_cli.experiments import embed_corpora
from persona_cli.options import PredictOptions
from persona_cli.predictor import build_encoder


def degraded(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:  # telephone
        narrow = soxr.resample(wave, SAMPLE_RATE, 8000)
        narrow = sosfilt(butter(4, [300, 3400], "bandpass", fs=8000, output="sos"), narrow)
        return soxr.resample(narrow, 8000, SAMPLE_RATE).astype(np.float32)
    if kind == 1:  # pink noise (the SNR drawn first: the order the documented figures were made in)
        snr_db = rng.uniform(10, 25)
        spectrum = np.fft.rfft(rng.standard_normal(len(wave)))
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
        spectrum[0] = 0
        noise = np.fft.irfft(spectrum, len(wave))
        noise /= np.std(noise) + 1e-9
        return (wave + noise * np.sqrt((np.mean(wave**2) + 1e-12) / 10 ** (snr_db / 10))).astype(np.float32)
    if kind == 2:  # reverberation
        rt60 = rng.uniform(0.2, 0.8)
        times = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        response = rng.standard_normal(len(times)) * np.exp(-6.9 * times / rt60)
        response[0] = 1.0
        wet = fftconvolve(wave, response / np.sqrt(np.sum(response**2)))[: len(wave)]
        return (wet / (np.max(np.abs(wet)) + 1e-9) * np.max(np.abs(wave))).astype(np.float32)
    tilted = lfilter([1, -rng.uniform(-0.9, 0.9)], [1], wave)  # spectral tilt
    return (tilted / (np.std(tilted) + 1e-9) * np.std(wave)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    options = PredictOptions()
    encoder = float32_lstm(build_encoder(options))  # as embed_corpora embeds the originals
    data = embed_corpora([str(DATA / name) for name in CORPORA], encoder, options)
    rng = np.random.default_rng(0)
    copies = np.zeros_like(data.features)
    for start in range(0, len(data.clips), 32):
        waves = [degraded(load_audio(clip.path), rng) for clip in data.clips[start : start + 32]]
        copies[start : start + 32] = encoder.embed(waves)
    copy_of = {clip.path: vector for clip, vector in zip(data.clips, copies)}

    def augmented(features: np.ndarray, clips: list[LabelledClip]) -> tuple[np.ndarray, list[LabelledClip]]:
        """The training clips and their degraded copies, read speech as weak neutral."""
        features = np.concatenate([features, np.stack([copy_of[clip.path] for clip in clips])])
        return read_speech_is_neutral(features, clips + clips)

    for seed in args.seeds:
        for variant, transform in (("base", read_speech_is_neutral), ("augmented", augmented)):
            result = run_variant(data, {}, transform, all_features, seed, [*EMOTION_CORPORA, *READ_SPEECH])
            print(line(f"{variant} seed {seed}", result), flush=True)


if __name__ == "__main__":
    main()
