"""Which gender errors of a cross-validated run are the model's, and which are the labels'?

Common Voice gender is self-reported once per account, and anyone may read into an account. This
lists the clips a `persona train --out DIR` run got wrong with each clip's median voice pitch (from
persona's prosody encoder) and flags those whose pitch lies outside the central 90 % of the clips of
their labelled gender that the model got right: a "male" clip at 230 Hz or a "female" one at 110 Hz
is more likely a wrong label or a different reader than a model error.

    python scripts/audit_gender_errors.py runs/bundled-ge2e-layers+prosody+mfcc/predictions.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from persona_cli.audio import load_audio
from persona_cli.encoders.prosody import ProsodyEncoder, median_pitch_hz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="predictions.csv written by persona train --out")
    parser.add_argument("--corpus", default="commonvoice")
    args = parser.parse_args()
    clips = pd.read_csv(args.predictions)
    clips = clips[(clips.corpus == args.corpus) & clips.gender_true.notna()].reset_index(drop=True)
    clips["pitch_hz"] = median_pitch_hz(ProsodyEncoder().embed([load_audio(path) for path in clips.path]))
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


if __name__ == "__main__":
    main()
