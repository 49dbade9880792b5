"""Which gender errors of a cross-validated run are the model's, and which are the labels'?

Common Voice gender is self-reported once per account, and anyone may read into an account. This
lists the clips a `persona train --out DIR` run got wrong with each clip's median voice pitch (from
persona's prosody encoder) and flags those whose pitch lies outside the central 90 % of the clips of
their labelled gender that the model got right: a "male" clip at 230 Hz or a "female" one at 110 Hz
is more likely a wrong label or a different reader than a model error.

`--by-emotion` shows instead where the errors of an acted corpus lie: accuracy for each labelled
gender and emotion, with the clips' median pitch and how much of their energy sits in one narrow band
(the strongest 400-700 Hz component, +-16 Hz, in the louder 70 % of frames; speech, whose pitch moves,
spreads its energy, a held note or a tone does not).

    python scripts/audit_gender_errors.py runs/bundled-ge2e-layers+prosody+mfcc/predictions.csv
    python scripts/audit_gender_errors.py runs/loco/predictions.csv --corpus ased --by-emotion
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.encoders.prosody import ProsodyEncoder, median_pitch_hz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="predictions.csv written by persona train --out")
    parser.add_argument("--corpus", default="commonvoice")
    parser.add_argument("--by-emotion", action="store_true", help="accuracy, pitch and narrow-band share per emotion")
    args = parser.parse_args()
    clips = pd.read_csv(args.predictions)
    clips = clips[(clips.corpus == args.corpus) & clips.gender_true.notna()].reset_index(drop=True)
    waves = [load_audio(path) for path in clips.path]
    clips["pitch_hz"] = median_pitch_hz(ProsodyEncoder().embed(waves))
    if args.by_emotion:
        clips["narrow_band_share"] = [narrow_band_share(wave) for wave in waves]
        clips["right"] = clips.gender_true == clips.gender_pred
        table = clips.groupby(["gender_true", "emotion_true"]).agg(
            clips=("right", "size"),
            right_pct=("right", lambda right: 100 * right.mean()),
            median_pitch_hz=("pitch_hz", "median"),
            narrow_band_share=("narrow_band_share", "median"),
        )
        print(table.to_string(float_format="%.2f"))
        return
    wrong = clips.gender_true != clips.gender_pred
    print(f"{args.corpus}: {wrong.sum()} of {len(clips)} clips wrong ({100 * (1 - wrong.mean()):.2f} % right)\n")

    ranges = {}
    for gender, group in clips[~wrong].groupby("gender_true"):
        ranges[gender] = np.percentile(group.pitch_hz, [5, 95])
        print(
            f"correctly classified {gender}: median pitch {group.pitch_hz.median():.0f} Hz, "
            f"central 90 % {ranges[gender][0]:.0f}-{ranges[gender][1]:.0f} Hz"
        )
    errors = clips[wrong].copy()
    low, high = np.array([ranges[g] for g in errors.gender_true]).T
    errors["pitch_contradicts_label"] = (errors.pitch_hz < low) | (errors.pitch_hz > high)
    print(
        f"\n{errors.pitch_contradicts_label.sum()} of {len(errors)} errors have a pitch outside their "
        "labelled gender's central 90 %\n"
    )
    columns = ["path", "gender_true", "gender_pred", "age_true", "pitch_hz", "pitch_contradicts_label"]
    print(errors[columns].sort_values(["gender_true", "pitch_hz"]).to_string(index=False, float_format="%.0f"))


def narrow_band_share(wave: np.ndarray) -> float:
    """The share of the louder frames' energy within 16 Hz of their strongest 400-700 Hz component."""
    from scipy.signal import stft

    freqs, _, spectrum = stft(wave, fs=SAMPLE_RATE, nperseg=2048, noverlap=1536)
    power = np.abs(spectrum) ** 2
    frame_energy = power.sum(axis=0)
    loud = frame_energy >= np.percentile(frame_energy, 30)
    band = (freqs >= 400) & (freqs <= 700)
    peak = np.median(freqs[band][power[band].argmax(axis=0)][loud])
    return float(power[np.abs(freqs - peak) <= 16][:, loud].sum() / max(power[:, loud].sum(), 1e-20))


if __name__ == "__main__":
    main()
