"""A linear reference for the network: linear models on the same cached embeddings and the same
speaker-grouped folds as `persona train`. Emotion is scored on RAVDESS; gender and age are trained and
scored on Common Voice, the only corpus here with many speakers and ages.

    python scripts/linear_probe.py --encoder mfcc                      # trained on RAVDESS + EmoDB emotions
    python scripts/linear_probe.py --encoder mfcc --train-corpora ravdess
    python scripts/linear_probe.py --task gender age --encoder ge2e-layers+prosody+mfcc+egemaps

Emotion and gender use L2 logistic regression (one line per --C); age uses ridge regression whose
strength is chosen by efficient leave-one-out inside each training fold. scikit-learn comes with
resemblyzer's librosa; it is not a persona dependency.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from persona_cli.cross_validation import make_folds
from persona_cli.experiments import LabelledFeatures, embed_corpora
from persona_cli.options import PredictOptions
from persona_cli.predictor import build_encoder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RIDGE_STRENGTHS = np.logspace(0, 5, 16)


def probe_emotion(data: LabelledFeatures, name: str, train_corpora: list[str], strengths: list[float]) -> None:
    corpora = np.array([c.corpus for c in data.clips])
    emotions = np.array([c.emotion or "" for c in data.clips])
    for strength in strengths:
        correct = total = 0
        for test in make_folds(data.clips, 5, "speaker", seed=0):
            train = np.setdiff1d(np.arange(len(data.clips)), test)
            train = train[(emotions[train] != "") & np.isin(corpora[train], train_corpora)]
            model = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=3000))
            model.fit(data.features[train], emotions[train])
            scored = test[(emotions[test] != "") & (corpora[test] == "ravdess")]
            correct += int((model.predict(data.features[scored]) == emotions[scored]).sum())
            total += len(scored)
        print(
            f"{name}, trained on {'+'.join(train_corpora)}, C={strength}: "
            f"RAVDESS emotion accuracy {100 * correct / total:.1f} %"
        )


def common_voice_folds(data: LabelledFeatures) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs over Common Voice clips only, from persona's folds over all clips."""
    on_common_voice = np.array([c.corpus == "commonvoice" for c in data.clips])
    everything = np.arange(len(data.clips))
    folds = []
    for test in make_folds(data.clips, 5, "speaker", seed=0):
        train = np.setdiff1d(everything, test)
        folds.append((train[on_common_voice[train]], test[on_common_voice[test]]))
    return folds


def probe_gender(data: LabelledFeatures, name: str, strengths: list[float]) -> None:
    genders = np.array([c.gender or "" for c in data.clips])
    folds = common_voice_folds(data)
    for strength in strengths:
        correct = total = 0
        for train, test in folds:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=3000))
            model.fit(data.features[train], genders[train])
            correct += int((model.predict(data.features[test]) == genders[test]).sum())
            total += len(test)
        print(f"{name}, C={strength}: Common Voice gender accuracy {100 * correct / total:.2f} %")


def probe_age(data: LabelledFeatures, name: str) -> None:
    ages = np.array([np.nan if c.age is None else c.age for c in data.clips])
    squared_errors, mean_squared_errors = [], []
    for train, test in common_voice_folds(data):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_STRENGTHS))
        model.fit(data.features[train], ages[train])
        squared_errors.append((model.predict(data.features[test]) - ages[test]) ** 2)
        mean_squared_errors.append((ages[train].mean() - ages[test]) ** 2)
    rmse = np.sqrt(np.mean(np.concatenate(squared_errors)))
    baseline = np.sqrt(np.mean(np.concatenate(mean_squared_errors)))
    print(f"{name}, ridge: Common Voice age RMSE {rmse:.2f} years (predicting the training mean: {baseline:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="mfcc")
    parser.add_argument("--task", nargs="+", choices=("emotion", "gender", "age"), default=["emotion"])
    parser.add_argument("--train-corpora", nargs="+", default=["ravdess", "emodb"], help="for emotion only")
    parser.add_argument(
        "--C",
        type=float,
        nargs="+",
        default=[0.03, 0.1, 0.3],
        help="inverse L2 strengths to try for emotion and gender",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    options = PredictOptions()
    data = embed_corpora(
        [str(DATA / name) for name in ("ravdess", "emodb", "commonvoice")],
        build_encoder(options, args.encoder),
        options,
    )
    if "emotion" in args.task:
        probe_emotion(data, args.encoder, args.train_corpora, args.C)
    if "gender" in args.task:
        probe_gender(data, args.encoder, args.C)
    if "age" in args.task:
        probe_age(data, args.encoder)


if __name__ == "__main__":
    main()
