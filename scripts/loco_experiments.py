"""Rank training recipes by leave-one-corpus-out: each variant is trained on all corpora but one and
scored on the one held out, for each held-out corpus in turn, on the cached embeddings of
`persona train`. The figures an issue about unseen recordings asks for, one line per variant:

    python scripts/loco_experiments.py                          # every variant below
    python scripts/loco_experiments.py --variants default balance-corpora --seeds 0 1 2

Emotion UAR per held-out emotion corpus and their mean, gender accuracy per held-out corpus, the
share of read speech (Common Voice, LibriSpeech) predicted neutral and disgust, and the emotion ECE
before and after a temperature fitted on the other held-out corpora only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from persona_cli.calibration import expected_calibration_error, fit_temperature, softmax
from persona_cli.corpora import LabelledClip
from persona_cli.cross_validation import forget_untrained_tasks, prediction_table
from persona_cli.experiments import LabelledFeatures, embed_corpora
from persona_cli.labels import EMOTIONS, MISSING
from persona_cli.metrics import emotion_metrics, gender_metrics
from persona_cli.options import PredictOptions
from persona_cli.predictor import build_encoder
from persona_cli.training import Targets, TrainConfig, fit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = ("ravdess", "emodb", "ased", "urdu", "baved", "commonvoice", "librispeech")
EMOTION_CORPORA = ("ravdess", "emodb", "ased", "urdu")
READ_SPEECH = ("commonvoice", "librispeech")

Transform = Callable[[np.ndarray, list[LabelledClip]], tuple[np.ndarray, list[LabelledClip]]]


def unchanged(features: np.ndarray, clips: list[LabelledClip]) -> tuple[np.ndarray, list[LabelledClip]]:
    return features, clips


def read_speech_is_neutral(features: np.ndarray, clips: list[LabelledClip]) -> tuple[np.ndarray, list[LabelledClip]]:
    """Weak labels: read speech (audiobooks, Common Voice prompts) taken as neutral."""
    relabelled = [dataclasses.replace(c, emotion="neutral") if c.corpus in READ_SPEECH else c for c in clips]
    return features, relabelled


def neutral_shifted_copies(level: str, emotion_only: bool = False) -> Transform:
    """Read speech as neutral, plus one copy of every clip moved from its own corpus's (or speaker's)
    neutral voice to a random other one's: x - neutral mean of A + neutral mean of B. The emotion
    label stays; so the net learns emotion as a departure from a neutral voice, wherever that voice
    sits. Speaker copies drop gender and age, which a speaker's neutral mean carries (corpus copies
    too with `emotion_only`)."""

    def transform(features: np.ndarray, clips: list[LabelledClip]) -> tuple[np.ndarray, list[LabelledClip]]:
        features, clips = read_speech_is_neutral(features, clips)
        key = [c.corpus if level == "corpus" else c.speaker for c in clips]
        groups = sorted(set(key))
        neutral: dict[str, np.ndarray] = {}
        for group in groups:
            rows = [i for i, (k, c) in enumerate(zip(key, clips)) if k == group and c.emotion == "neutral"]
            if len(rows) >= 2:
                neutral[group] = features[rows].mean(0)
        references = sorted(neutral)
        rng = np.random.default_rng(0)
        rows, shifted, copies = [], [], []
        for i, (k, clip) in enumerate(zip(key, clips)):
            if k not in neutral or clip.emotion is None:
                continue
            other = references[rng.integers(len(references))]
            while other == k:
                other = references[rng.integers(len(references))]
            rows.append(i)
            shifted.append(features[i] - neutral[k] + neutral[other])
            keep_voice = level == "corpus" and not emotion_only
            copies.append(clip if keep_voice else dataclasses.replace(clip, gender=None, age=None))
        return np.vstack([features, np.array(shifted)]), clips + copies

    return transform


def some_read_speech_is_neutral(share: float) -> Transform:
    """Weak neutral labels on a random `share` of the read-speech clips only (the rest keep no emotion
    label, and their gender and age): fewer weak labels, so less pull towards neutral."""

    def transform(features: np.ndarray, clips: list[LabelledClip]) -> tuple[np.ndarray, list[LabelledClip]]:
        chosen = np.random.default_rng(0).random(len(clips)) < share
        relabelled = [
            dataclasses.replace(c, emotion="neutral") if c.corpus in READ_SPEECH and pick else c
            for c, pick in zip(clips, chosen)
        ]
        return features, relabelled

    return transform


#: where each part of the default fused vector (ge2e-layers+prosody+mfcc) lies
BLOCKS = {
    "ge2e": slice(0, 256),
    "layers": slice(256, 1280),
    "layers-mean": slice(256, 768),
    "layers-std": slice(768, 1280),
    "prosody": slice(1280, 1317),
    "mfcc": slice(1317, 1477),
    "mfcc-mean": slice(1317, 1357),  # the average spectral envelope: mostly microphone and room
    "mfcc-dynamics": slice(1357, 1477),  # MFCC std, delta mean and std
}


def keep(*blocks: str) -> Callable[[np.ndarray], np.ndarray]:
    """Only some parts of the default fused vector, for features that may mostly encode the channel."""
    return lambda features: np.hstack([features[:, BLOCKS[b]] for b in blocks])


def all_features(features: np.ndarray) -> np.ndarray:
    return features


#: name -> (recipe changes, what is done to the training clips, what is done to every clip's features)
VARIANTS: dict[str, tuple[dict, Transform, Callable[[np.ndarray], np.ndarray]]] = {
    "default": ({}, unchanged, all_features),
    "balance-corpora": ({"balance_corpora": True}, unchanged, all_features),
    "adversarial-0.3": ({"corpus_adversarial": 0.3}, unchanged, all_features),
    "adversarial-1": ({"corpus_adversarial": 1.0}, unchanged, all_features),
    "read-neutral": ({}, read_speech_is_neutral, all_features),
    "read-neutral-speaker-adversarial-0.1": ({"speaker_adversarial": 0.1}, read_speech_is_neutral, all_features),
    "read-neutral-speaker-adversarial-0.3": ({"speaker_adversarial": 0.3}, read_speech_is_neutral, all_features),
    "read-neutral-speaker-adversarial-1": ({"speaker_adversarial": 1.0}, read_speech_is_neutral, all_features),
    "balance+read-neutral": ({"balance_corpora": True}, read_speech_is_neutral, all_features),
    "balance+adversarial-0.3": ({"balance_corpora": True, "corpus_adversarial": 0.3}, unchanged, all_features),
    "read-neutral-quarter": ({}, some_read_speech_is_neutral(0.25), all_features),
    "read-neutral-half": ({}, some_read_speech_is_neutral(0.5), all_features),
    "read-neutral-corpus-shift": ({}, neutral_shifted_copies("corpus"), all_features),
    "read-neutral-speaker-shift": ({}, neutral_shifted_copies("speaker"), all_features),
    "read-neutral-corpus-shift-emotion-only": ({}, neutral_shifted_copies("corpus", emotion_only=True), all_features),
    "read-neutral-no-mfcc": ({}, read_speech_is_neutral, keep("ge2e", "layers", "prosody")),
    "read-neutral-layers+prosody": ({}, read_speech_is_neutral, keep("layers", "prosody")),
    "read-neutral-no-ge2e": ({}, read_speech_is_neutral, keep("layers", "prosody", "mfcc")),
    "read-neutral-prosody+mfcc": ({}, read_speech_is_neutral, keep("prosody", "mfcc")),
    "read-neutral-no-mfcc-mean": ({}, read_speech_is_neutral, keep("ge2e", "layers", "prosody", "mfcc-dynamics")),
    "read-neutral-dynamics": ({}, read_speech_is_neutral, keep("layers-std", "prosody", "mfcc-dynamics")),
    "no-mfcc": ({}, unchanged, keep("ge2e", "layers", "prosody")),
    "read-neutral-no-mfcc-smooth": (
        {"label_smoothing": 0.2},
        read_speech_is_neutral,
        keep("ge2e", "layers", "prosody"),
    ),
    "read-neutral-no-mfcc-balance": (
        {"balance_corpora": True},
        read_speech_is_neutral,
        keep("ge2e", "layers", "prosody"),
    ),
}


def run_variant(
    data: LabelledFeatures,
    changes: dict,
    transform: Transform,
    select: Callable[[np.ndarray], np.ndarray],
    seed: int,
    held_out: list[str],
    ensemble: int = 1,
) -> dict:
    config = dataclasses.replace(TrainConfig(), seed=seed, **changes)
    corpora = np.array([c.corpus for c in data.clips])
    data = dataclasses.replace(data, features=select(data.features))
    tables = {}
    for name in held_out:
        train = np.flatnonzero(corpora != name)
        features, clips = transform(data.features[train], [data.clips[i] for i in train])
        targets = Targets.from_clips(clips)
        test = np.flatnonzero(corpora == name)
        test_clips = [data.clips[i] for i in test]
        members = [
            prediction_table(
                fit(features, targets, [c.speaker for c in clips], data.encoder, dataclasses.replace(config, seed=s))[
                    0
                ],
                data.features[test],
                test_clips,
            )
            for s in range(seed, seed + ensemble)
        ]
        table = average(members)
        forget_untrained_tasks(table, targets)
        tables[name] = table
    return summarize(tables)


def average(members: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """An ensemble's table: mean probabilities (log-probabilities serve as its logits), mean age."""
    table = dict(members[0])
    for task in ("emotion", "gender"):
        probabilities = np.mean([softmax(m[f"{task}_logits"]) for m in members], axis=0)
        table[f"{task}_logits"] = np.log(np.maximum(probabilities, 1e-12))
        table[f"{task}_pred"] = probabilities.argmax(1)
        table[f"{task}_confidence"] = probabilities.max(1)
    table["age_pred"] = np.mean([m["age_pred"] for m in members], axis=0)
    return table


def summarize(tables: dict[str, dict[str, np.ndarray]]) -> dict:
    result: dict = {"uar": {}, "gender": {}, "neutral": {}, "disgust": {}, "ece": {}, "ece_calibrated": {}}
    for name, table in tables.items():
        emotion = emotion_metrics(table["emotion_true"], table["emotion_pred"])
        if emotion is not None and name in EMOTION_CORPORA:
            result["uar"][name] = emotion["uar"]
            labelled = table["emotion_true"] != MISSING
            correct = table["emotion_pred"][labelled] == table["emotion_true"][labelled]
            result["ece"][name] = expected_calibration_error(table["emotion_confidence"][labelled], correct)
            others = [t for other, t in tables.items() if other != name]
            logits = np.concatenate([t["emotion_logits"][t["emotion_true"] != MISSING] for t in others])
            labels = np.concatenate([t["emotion_true"][t["emotion_true"] != MISSING] for t in others])
            confidence = softmax(table["emotion_logits"][labelled], fit_temperature(logits, labels)).max(1)
            result["ece_calibrated"][name] = expected_calibration_error(confidence, correct)
        gender = gender_metrics(table["gender_true"], table["gender_pred"])
        if gender is not None:
            result["gender"][name] = gender["accuracy"]
        if name in READ_SPEECH:
            shares = np.bincount(table["emotion_pred"], minlength=len(EMOTIONS)) / len(table["emotion_pred"])
            result["neutral"][name] = float(shares[EMOTIONS.index("neutral")])
            result["disgust"][name] = float(shares[EMOTIONS.index("disgust")])
    if result["uar"]:
        result["mean_uar"] = float(np.mean(list(result["uar"].values())))
        result["mean_ece"] = float(np.mean(list(result["ece"].values())))
        result["mean_ece_calibrated"] = float(np.mean(list(result["ece_calibrated"].values())))
    return result


def line(name: str, result: dict) -> str:
    uar = " ".join(f"{k}={100 * v:.1f}" for k, v in result["uar"].items())
    gender = " ".join(f"{k}={100 * v:.1f}" for k, v in result["gender"].items())
    read = " ".join(
        f"{k}: neutral {100 * result['neutral'][k]:.0f} disgust {100 * result['disgust'][k]:.0f}"
        for k in result["neutral"]
    )
    mean = f"mean UAR {100 * result.get('mean_uar', float('nan')):.1f}"
    ece = f"ECE {result.get('mean_ece', float('nan')):.3f} -> {result.get('mean_ece_calibrated', float('nan')):.3f}"
    return f"{name}: {mean} ({uar}); {ece}; gender {gender}; {read}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default=None, help="default: the bundled default encoder")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--held-out", nargs="+", default=[*EMOTION_CORPORA, *READ_SPEECH], choices=CORPORA)
    parser.add_argument("--ensemble", type=int, default=1, help="models per fold (seeds seed..seed+N-1), averaged")
    parser.add_argument("--json", type=Path, help="also write every result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    options = PredictOptions(encoder=args.encoder)
    data = embed_corpora([str(DATA / name) for name in CORPORA], build_encoder(options), options)
    results = {}
    for name in args.variants:
        changes, transform, select = VARIANTS[name]
        for seed in args.seeds:
            result = run_variant(data, changes, transform, select, seed, args.held_out, args.ensemble)
            label = f"{name} seed {seed}" + (f" x{args.ensemble}" if args.ensemble > 1 else "")
            results[label] = result
            print(line(label, result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
