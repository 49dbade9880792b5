"""Would formant frequencies read gender where pitch misleads? A leave-one-corpus-out linear probe.

Held-out ASED's men are read as women when they act sad, afraid or happy, with their pitch raised to
women's (docs/accuracy.md, "Why ASED's gender is the worst"). Formants follow the length of the vocal
tract, not the pitch, so they might tell those men apart. This estimates each clip's median F1-F4
(LPC of order 12 at 10 kHz, 25 ms frames every 10 ms, voiced frames only, roots with a bandwidth
under 500 Hz) and their dispersion ((F4 - F1) / 3), prints them by corpus and sex, and then, for
each corpus held out in turn, trains a logistic regression for gender on the others' clips and
scores it on the held-out one, with and without the formants beside the default features.

    python scripts/probe_formant_gender.py            # ../shared/data's seven corpora; 2 processes

scikit-learn comes with resemblyzer's librosa; it is not a persona dependency.
"""

from __future__ import annotations

import argparse
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soxr
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.encoders.ge2e import GE2E_DIM, LAYER_STATS_DIM
from persona_cli.experiments import embed_corpora
from persona_cli.options import PredictOptions
from persona_cli.predictor import build_encoder
from persona_cli.speech import VAD_WINDOW, normalize_volume, voiced_windows

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = ("ravdess", "emodb", "ased", "urdu", "baved", "commonvoice", "librispeech")
LPC_RATE = 10_000  # formants up to 5 kHz
ORDER = 12  # 2 + kHz of the rate, the usual rule
FRAME, HOP = 250, 100  # 25 ms every 10 ms at LPC_RATE
FORMANT_NAMES = ("F1", "F2", "F3", "F4", "dispersion")


def lpc(frames: np.ndarray) -> np.ndarray:
    """(n, ORDER + 1) prediction polynomials of windowed frames, by Levinson-Durbin over all at once."""
    spectrum = np.fft.rfft(frames, 512)
    r = np.fft.irfft(np.abs(spectrum) ** 2, 512)[:, : ORDER + 1]
    a = np.zeros((len(frames), ORDER + 1))
    a[:, 0] = 1.0
    error = r[:, 0] * (1 + 1e-9)
    for i in range(1, ORDER + 1):
        reflection = -(r[:, i] + np.einsum("nj,nj->n", a[:, 1:i], r[:, i - 1 : 0 : -1])) / np.maximum(error, 1e-12)
        a[:, 1:i] = a[:, 1:i] + reflection[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = reflection
        error = error * (1 - reflection**2)
    return a


def clip_formants(path: Path) -> np.ndarray:
    """Median F1-F4 and dispersion (Hz) over the clip's voiced frames; NaN where there are too few."""
    wave = normalize_volume(load_audio(path))
    voiced = voiced_windows(wave)
    x = soxr.resample(wave, SAMPLE_RATE, LPC_RATE)
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])  # pre-emphasis
    count = (len(x) - FRAME) // HOP + 1
    if count < 5 or len(voiced) == 0:
        return np.full(len(FORMANT_NAMES), np.nan)
    frames = x[np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]] * np.hamming(FRAME)
    centres = (np.arange(count) * HOP + FRAME / 2) / LPC_RATE
    keep = voiced[np.minimum((centres * SAMPLE_RATE // VAD_WINDOW).astype(int), len(voiced) - 1)]
    loudness = 10 * np.log10((frames**2).sum(1) + 1e-12)
    keep &= loudness > loudness.max() - 30
    if keep.sum() < 5:
        return np.full(len(FORMANT_NAMES), np.nan)
    a = lpc(frames[keep])
    companion = np.zeros((len(a), ORDER, ORDER))
    companion[:, 0, :] = -a[:, 1:]
    companion[:, 1:, :-1] = np.eye(ORDER - 1)
    roots = np.linalg.eigvals(companion)
    frequency = np.angle(roots) * LPC_RATE / (2 * np.pi)
    bandwidth = -LPC_RATE / np.pi * np.log(np.abs(roots) + 1e-12)
    formant = (roots.imag > 0) & (frequency > 150) & (bandwidth < 500)
    lowest = np.sort(np.where(formant, frequency, np.inf), axis=1)[:, :4]
    lowest[~np.isfinite(lowest)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with fewer than four formants
        return np.array([*np.nanmedian(lowest, axis=0), np.nanmedian((lowest[:, 3] - lowest[:, 0]) / 3)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    options = PredictOptions()
    data = embed_corpora([str(DATA / name) for name in CORPORA], build_encoder(options), options)
    with Pool(args.processes) as pool:
        formants = np.array(pool.map(clip_formants, [c.path for c in data.clips], chunksize=32))
    formants = np.where(np.isnan(formants), np.nanmedian(formants, axis=0), formants)
    corpus = np.array([c.corpus for c in data.clips])
    gender = np.array([c.gender or "" for c in data.clips])

    print("median formants (Hz) by corpus and sex:", " / ".join(FORMANT_NAMES))
    for name in CORPORA:
        for sex in ("female", "male"):
            rows = (corpus == name) & (gender == sex)
            print(
                f"  {name:12s} {sex:6s} {rows.sum():5d} clips:", np.round(np.median(formants[rows], axis=0)).astype(int)
            )

    ge2e = data.features[:, :GE2E_DIM]
    feature_sets = {
        f"default ({data.encoder})": data.features,
        "default + formants": np.hstack([data.features, formants]),
        "ge2e": ge2e,
        "ge2e + formants": np.hstack([ge2e, formants]),
        "prosody": data.features[:, GE2E_DIM + LAYER_STATS_DIM :],
        "prosody + formants": np.hstack([data.features[:, GE2E_DIM + LAYER_STATS_DIM :], formants]),
        "formants": formants,
    }
    print("\nheld-out gender accuracy, logistic regression (C = 0.1) trained on the other corpora:\n")
    print("| features | " + " | ".join(CORPORA) + " |")
    print("|---" * (len(CORPORA) + 1) + "|")
    labelled = gender != ""
    for label, features in feature_sets.items():
        cells = []
        for held_out in CORPORA:
            train, test = labelled & (corpus != held_out), labelled & (corpus == held_out)
            model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            model.fit(features[train], gender[train])
            cells.append(f"{100 * np.mean(model.predict(features[test]) == gender[test]):.1f}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
