"""Cross-validation: folds grouped by speaker (or the paper's random split), a model trained per fold,
and every fold's predictions scored per corpus and overall.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona_cli.corpora import LabelledClip
from persona_cli.model import PersonaModel
from persona_cli.train import Targets, TrainConfig, TrainingHistory, fit

log = logging.getLogger("persona")


SPLITS = ("speaker", "random")
PROTOCOLS = {
    "speaker": "speaker-grouped {k}-fold CV (no speaker in both train and test)",
    "random": "RANDOM {k}-fold CV (the paper's protocol: the same speakers appear in train and test, so scores are optimistic)",
}


def make_folds(clips: Sequence[LabelledClip], folds: int, split: str = "speaker", seed: int = 0) -> list[np.ndarray]:
    """Test-set indices of each fold.

    "speaker": within each corpus, whole speakers are dealt to folds, largest first onto the
    fold with the fewest clips so far (as scikit-learn's GroupKFold), so every fold holds a
    share of every corpus and no speaker is on both sides. "random": a seeded shuffle of clips.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    rng = np.random.default_rng(seed)
    if split == "random":
        return [np.sort(part) for part in np.array_split(rng.permutation(len(clips)), folds)]
    assigned: list[list[int]] = [[] for _ in range(folds)]
    for corpus in sorted({c.corpus for c in clips}):
        by_speaker: dict[str, list[int]] = {}
        for i, clip in enumerate(clips):
            if clip.corpus == corpus:
                by_speaker.setdefault(clip.speaker, []).append(i)
        speakers = sorted(by_speaker)
        rng.shuffle(speakers)  # seeded tie-breaking between equally large speakers
        sizes = [0] * folds
        for speaker in sorted(speakers, key=lambda s: -len(by_speaker[s])):
            target = int(np.argmin(sizes))
            assigned[target].extend(by_speaker[speaker])
            sizes[target] += len(by_speaker[speaker])
    return [np.array(sorted(part), dtype=np.int64) for part in assigned]


def prediction_table(model: PersonaModel, features: np.ndarray, clips: Sequence[LabelledClip]) -> dict[str, np.ndarray]:
    """Predicted and true labels side by side, as index arrays (MISSING / NaN where unlabelled)."""
    predictions = model.predict(features)
    targets = Targets.from_clips(clips)
    return {
        "emotion_true": targets.emotion,
        "emotion_pred": predictions.emotion_probs.argmax(1),
        "gender_true": targets.gender,
        "gender_pred": predictions.gender_probs.argmax(1),
        "age_true": targets.age,
        "age_pred": predictions.age_years.astype(np.float32),
    }


def score(table: dict[str, np.ndarray], corpora: np.ndarray, age_baseline: float) -> tuple[dict, dict[str, dict]]:
    """Overall and per-corpus metrics of one prediction table."""
    from persona_cli.metrics import task_metrics

    def metrics_for(mask: np.ndarray) -> dict:
        return task_metrics(
            table["emotion_true"][mask],
            table["gender_true"][mask],
            table["age_true"][mask],
            table["emotion_pred"][mask],
            table["gender_pred"][mask],
            table["age_pred"][mask],
            age_baseline,
        )

    overall = metrics_for(np.ones(len(corpora), bool))
    return overall, {name: metrics_for(corpora == name) for name in sorted(set(corpora))}


@dataclass
class CrossValidation:
    """Everything one cross-validation run produced."""

    report: dict  # metrics.json content: protocol, overall (pooled out-of-fold), per_corpus, folds, std
    predictions: dict[str, np.ndarray]  # out-of-fold predictions for every clip, plus fold numbers
    histories: list[TrainingHistory]


def cross_validate(
    features: np.ndarray,
    clips: Sequence[LabelledClip],
    encoder: str,
    folds: int = 5,
    split: str = "speaker",
    config: TrainConfig = TrainConfig(),
) -> CrossValidation:
    """K-fold CV: train on K-1 folds, predict the held-out one; report per fold, mean ± std, pooled."""
    from persona_cli.metrics import metrics_report, summarize_folds

    corpora = np.array([c.corpus for c in clips])
    speakers = [c.speaker for c in clips]
    targets = Targets.from_clips(clips)
    pooled: dict[str, np.ndarray] | None = None
    fold_of = np.full(len(clips), -1)
    fold_reports: list[dict[str, Any]] = []
    histories: list[TrainingHistory] = []
    baselines = np.zeros(len(clips), np.float32)
    for k, test_index in enumerate(make_folds(clips, folds, split, config.seed)):
        train_index = np.setdiff1d(np.arange(len(clips)), test_index)
        model, history = fit(
            features[train_index], targets.subset(train_index), [speakers[i] for i in train_index], encoder, config
        )
        table = prediction_table(model, features[test_index], [clips[i] for i in test_index])
        overall, per_corpus = score(table, corpora[test_index], model.metadata.age_mean)
        fold_reports.append(
            {"fold": k + 1, "n_test": int(len(test_index)), "overall": overall, "per_corpus": per_corpus}
        )
        histories.append(history)
        if pooled is None:
            pooled = {key: np.empty(len(clips), values.dtype) for key, values in table.items()}
        for key, values in table.items():
            pooled[key][test_index] = values
        fold_of[test_index] = k + 1
        baselines[test_index] = model.metadata.age_mean
        log.info("fold %d/%d done", k + 1, folds)
    if pooled is None:
        raise ValueError("cross-validation needs at least one fold")
    # pooled metrics judge each clip by its own fold's model; the age baseline is each fold's training mean
    overall, per_corpus = score(pooled, corpora, float(baselines.mean()))
    mean, std = summarize_folds([f["overall"] for f in fold_reports])
    report = metrics_report(overall, per_corpus, folds=fold_reports, std=std, protocol=PROTOCOLS[split].format(k=folds))
    report["fold_mean"] = mean
    pooled["fold"] = fold_of
    return CrossValidation(report, pooled, histories)
