"""Cross-validation: folds grouped by speaker, one corpus per fold (leave-one-corpus-out), or the
paper's random split; a model trained per fold, and every fold's predictions scored per corpus and
overall, with how well their confidences are calibrated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona_cli.calibration import expected_calibration_error, fit_temperature, softmax
from persona_cli.corpora import LabelledClip
from persona_cli.errors import UsageError
from persona_cli.labels import EMOTIONS, MISSING, WEAK_NEUTRAL
from persona_cli.model import PersonaModel
from persona_cli.training import Targets, TrainConfig, TrainingHistory, fit

log = logging.getLogger("persona")


SPLITS = ("speaker", "corpus", "random")
PROTOCOLS = {
    "speaker": "speaker-grouped {k}-fold CV (no speaker in both train and test)",
    "corpus": "leave-one-corpus-out over {k} corpora (each held out in turn, the model trained on the others)",
    "random": "RANDOM {k}-fold CV (the paper's protocol: the same speakers appear in train and test, so scores are optimistic)",
}


def make_folds(clips: Sequence[LabelledClip], folds: int, split: str = "speaker", seed: int = 0) -> list[np.ndarray]:
    """Test-set indices of each fold.

    "speaker": within each corpus, whole speakers are dealt to folds, largest first onto the
    fold with the fewest clips so far (as scikit-learn's GroupKFold), so every fold holds a
    share of every corpus and no speaker is on both sides. "corpus": one fold per corpus, in name
    order (`folds` is ignored). "random": a seeded shuffle of clips.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if split == "corpus":
        corpora = np.array([c.corpus for c in clips])
        return [np.flatnonzero(corpora == name) for name in sorted(set(corpora))]
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


def checked_folds(clips: Sequence[LabelledClip], folds: int, split: str = "speaker", seed: int = 0) -> list[np.ndarray]:
    """make_folds' test sets, or a UsageError (before any embedding or training) if some fold would have
    no test clip: its model would be scored on nothing and the fold mean divided by zero."""
    if split != "corpus" and folds < 2:
        raise UsageError(f"--folds {folds}: cross-validation needs 2 folds or more (0 or 1: train without it)")
    test_sets = make_folds(clips, folds, split, seed)
    if split == "corpus" and len(test_sets) < 2:
        raise UsageError("--split corpus holds out one corpus at a time: give at least two corpora")
    if all(len(test) for test in test_sets):
        return test_sets
    if split == "random":
        raise UsageError(f"--folds {folds}: random folds need at least {folds} clips, and there are {len(clips)}")
    # speakers are dealt to folds within each corpus, so the corpus with the most speakers sets the limit
    speakers = {
        corpus: len({c.speaker for c in clips if c.corpus == corpus}) for corpus in sorted({c.corpus for c in clips})
    }
    most = max(speakers.values())
    counts = ", ".join(f"{corpus}: {n} speaker{'s' * (n != 1)}" for corpus, n in speakers.items())
    fix = f"use --folds {most} or fewer" if most >= 2 else "give clips of two speakers or more"
    raise UsageError(
        f"--folds {folds}: speaker-grouped folds each need a test speaker, dealt within each corpus, and the "
        f"largest corpus has {most} ({counts}); {fix}, or --folds 0 to train on every clip without a held-out score"
    )


def scored_targets(clips: Sequence[LabelledClip], trained: Targets | None = None) -> Targets:
    """The labels `clips` are scored on: weak neutral ones never (labels.WEAK_NEUTRAL: trained on only),
    nor those of a task the `trained` part never labels (see forget_untrained_tasks)."""
    targets = Targets.from_clips(clips)
    weak = np.array([c.emotion_raw == WEAK_NEUTRAL for c in clips], bool)
    targets.emotion[weak] = MISSING
    if trained is not None:
        if (trained.emotion == MISSING).all():
            targets.emotion[:] = MISSING
        if (trained.gender == MISSING).all():
            targets.gender[:] = MISSING
        if np.isnan(trained.age).all():
            targets.age[:] = np.nan
    return targets


def prediction_table(model: PersonaModel, features: np.ndarray, clips: Sequence[LabelledClip]) -> dict[str, np.ndarray]:
    """Predicted and true labels side by side, as index arrays (MISSING / NaN where unlabelled)."""
    predictions = model.predict(features)
    targets = scored_targets(clips)
    table = {
        "emotion_true": targets.emotion,
        "emotion_pred": predictions.emotion_probs.argmax(1),
        "emotion_confidence": predictions.emotion_probs.max(1),
        "emotion_probs": predictions.emotion_probs,
        "gender_probs": predictions.gender_probs,
        "emotion_logits": predictions.emotion_logits,
        "gender_true": targets.gender,
        "gender_pred": predictions.gender_probs.argmax(1),
        "gender_confidence": predictions.gender_probs.max(1),
        "gender_logits": predictions.gender_logits,
        "age_true": targets.age,
        "age_pred": predictions.age_years.astype(np.float32),
    }
    for task in model.untrained_heads:  # a head that never saw a label: its outputs are noise, never scored or shown
        table[f"{task}_true"] = np.full_like(table[f"{task}_true"], np.nan if task == "age" else MISSING)
        table[f"{task}_pred"] = np.full_like(table[f"{task}_pred"], np.nan if task == "age" else MISSING)
        for key in (f"{task}_confidence", f"{task}_probs"):
            if key in table:
                table[key] = np.full_like(table[key], np.nan)
    return table


def forget_untrained_tasks(table: dict[str, np.ndarray], trained: Targets) -> None:
    """Blank the true labels of a task the training part never labels: it was not learnt, so scoring
    it would measure a head that never saw a label (for a held-out corpus, or a corpus-only fold)."""
    if (trained.emotion == MISSING).all():
        table["emotion_true"] = np.full_like(table["emotion_true"], MISSING)
    if (trained.gender == MISSING).all():
        table["gender_true"] = np.full_like(table["gender_true"], MISSING)
    if np.isnan(trained.age).all():
        table["age_true"] = np.full_like(table["age_true"], np.nan)


def score(
    table: dict[str, np.ndarray], corpora: np.ndarray, age_baseline: float | np.ndarray
) -> tuple[dict, dict[str, dict]]:
    """Overall and per-corpus metrics of one prediction table; `age_baseline` is the training mean
    age of the model that judged the clips, or of each clip's model (one per clip)."""
    age_baseline = np.broadcast_to(np.asarray(age_baseline, dtype=float), corpora.shape)
    from persona_cli.metrics import task_metrics

    def metrics_for(mask: np.ndarray) -> dict:
        return task_metrics(
            table["emotion_true"][mask],
            table["gender_true"][mask],
            table["age_true"][mask],
            table["emotion_pred"][mask],
            table["gender_pred"][mask],
            table["age_pred"][mask],
            age_baseline[mask],
        )

    def with_calibration(mask: np.ndarray) -> dict:
        metrics = metrics_for(mask)
        for task in ("emotion", "gender"):
            labelled = mask & (table[f"{task}_true"] != MISSING)
            if task in metrics and f"{task}_confidence" in table:
                correct = table[f"{task}_pred"][labelled] == table[f"{task}_true"][labelled]
                metrics[task]["ece"] = expected_calibration_error(table[f"{task}_confidence"][labelled], correct)
        return metrics

    overall = with_calibration(np.ones(len(corpora), bool))
    return overall, {name: with_calibration(corpora == name) for name in sorted(set(corpora))}


def emotion_shares(table: dict[str, np.ndarray], corpora: np.ndarray) -> dict[str, dict[str, float]]:
    """The share of clips predicted as each emotion, overall and per corpus, labelled or not: what the
    model says of speech without emotion labels (read speech should come out neutral)."""

    def shares(mask: np.ndarray) -> dict[str, float]:
        predicted = table["emotion_pred"][mask]
        counts = np.bincount(predicted[predicted != MISSING], minlength=len(EMOTIONS))
        return {emotion: float(n / max(int(mask.sum()), 1)) for emotion, n in zip(EMOTIONS, counts)}

    return {"overall": shares(np.ones(len(corpora), bool)), **{c: shares(corpora == c) for c in sorted(set(corpora))}}


@dataclass
class CrossValidation:
    """Everything one cross-validation run produced."""

    report: dict  # metrics.json content: protocol, overall (pooled out-of-fold), per_corpus, folds, std
    predictions: dict[str, np.ndarray]  # out-of-fold predictions for every clip, plus fold numbers
    histories: list[TrainingHistory]
    # leave-one-corpus-out only: per head, the softmax temperature fitted on every out-of-corpus
    # prediction, for the final model (1.0 elsewhere: in-corpus predictions would teach it nothing)
    temperatures: dict[str, float]


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
    baselines = np.zeros(len(clips))  # each clip's model's training mean age
    test_sets = checked_folds(clips, folds, split, config.seed)
    folds = len(test_sets)  # leave-one-corpus-out: one per corpus, whatever was asked
    for k, test_index in enumerate(test_sets):
        train_index = np.setdiff1d(np.arange(len(clips)), test_index)
        test_clips = [clips[i] for i in test_index]
        trained = targets.subset(train_index)
        model, history = fit(
            features[train_index],
            trained,
            [speakers[i] for i in train_index],
            encoder,
            config,
            held_out=(features[test_index], scored_targets(test_clips, trained)),
        )
        table = prediction_table(model, features[test_index], test_clips)
        forget_untrained_tasks(table, trained)
        overall, per_corpus = score(table, corpora[test_index], model.metadata.age_mean)
        fold_reports.append(
            {"fold": k + 1, "n_test": int(len(test_index)), "overall": overall, "per_corpus": per_corpus}
        )
        histories.append(history)
        if pooled is None:
            pooled = {key: np.empty((len(clips), *values.shape[1:]), values.dtype) for key, values in table.items()}
        for key, values in table.items():
            pooled[key][test_index] = values
        fold_of[test_index] = k + 1
        baselines[test_index] = model.metadata.age_mean
        held_out = f" (held out: {corpora[test_index][0]})" if split == "corpus" else ""
        log.info("fold %d/%d done%s", k + 1, folds, held_out)
    if pooled is None:
        raise ValueError("cross-validation needs at least one fold")
    temperatures = {"emotion": 1.0, "gender": 1.0}
    if split == "corpus":
        temperatures = _calibrate_out_of_corpus(pooled, corpora)
    # pooled metrics judge each clip by its own fold's model, and its age against that model's
    # training mean: with one corpus held out per fold, that mean differs from fold to fold
    overall, per_corpus = score(pooled, corpora, baselines)
    degenerate = single_class_folds(fold_reports)
    scored = [
        {task: v for task, v in f["overall"].items() if f["fold"] not in degenerate.get(task, ())} for f in fold_reports
    ]
    mean, std = summarize_folds(scored)
    report = metrics_report(overall, per_corpus, folds=fold_reports, std=std, protocol=PROTOCOLS[split].format(k=folds))
    report["fold_mean"] = mean
    if degenerate:
        report["single_class_folds"] = degenerate
        report["warnings"] = [single_class_warning(task, numbers) for task, numbers in degenerate.items()]
        for warning in report["warnings"]:
            log.warning("%s", warning)
    report["split"] = split
    report["emotion_predicted"] = emotion_shares(pooled, corpora)
    if split == "corpus":
        report["temperatures"] = temperatures
        for task in ("emotion", "gender"):
            for name, corpus_report in per_corpus.items():
                if task in corpus_report:
                    corpus_report[task]["ece_calibrated"] = _calibrated_ece(pooled, corpora == name, task)
            if task in overall:
                overall[task]["ece_calibrated"] = _calibrated_ece(pooled, np.ones(len(clips), bool), task)
            # the corpora that count in the fold mean: two classes or more (single_class_folds)
            calibrated = [
                r[task]["ece_calibrated"] for r in per_corpus.values() if task in r and _classes_present(r[task]) > 1
            ]
            if task in mean and calibrated:
                mean[task]["ece_calibrated"] = float(np.mean(calibrated))
    pooled["fold"] = fold_of
    return CrossValidation(report, pooled, histories, temperatures)


def _classes_present(task: dict) -> int:
    return sum(1 for row in task["confusion"] if sum(row))


def single_class_folds(fold_reports: Sequence[dict]) -> dict[str, list[int]]:
    """Per classification task, the folds whose test part holds one class only (one gender, or a corpus
    labelled neutral throughout). Their accuracy is the recall of that one class and their UAR no average
    at all: 0 % or 100 % by the luck of the draw, which swamps the fold mean and spread (45.8 % ± 46.9 on
    one actor a fold). So they are left out of both; the pooled figures, which judge each clip once,
    still count their clips, and the report names them."""
    found: dict[str, list[int]] = {}
    for task in ("emotion", "gender"):
        numbers = [f["fold"] for f in fold_reports if task in f["overall"] and _classes_present(f["overall"][task]) < 2]
        if numbers:
            found[task] = numbers
    return found


def single_class_warning(task: str, folds: Sequence[int]) -> str:
    plural = len(folds) > 1
    return (
        f"{task}: the test part of fold{'s' * plural} {', '.join(map(str, folds))} holds one {task} class only; "
        f"left out of the {task} fold mean and ± spread (the pooled figures still count {'their' if plural else 'its'} clips)"
    )


def _calibrate_out_of_corpus(pooled: dict[str, np.ndarray], corpora: np.ndarray) -> dict[str, float]:
    """Leave-one-corpus-out temperatures: each corpus's confidences are rescaled by a temperature
    fitted on the other corpora's out-of-corpus predictions only (its own labels never tune it);
    returns the temperatures fitted on all of them, for the final model."""
    final = {}
    for task in ("emotion", "gender"):
        labelled = pooled[f"{task}_true"] != MISSING
        logits, labels = pooled[f"{task}_logits"], pooled[f"{task}_true"]
        calibrated = pooled[f"{task}_confidence"].astype(np.float64)
        for name in set(corpora):
            fit_on = labelled & (corpora != name)
            temperature = fit_temperature(logits[fit_on], labels[fit_on])
            here = corpora == name
            calibrated[here] = softmax(logits[here], temperature).max(1)
        pooled[f"{task}_confidence_calibrated"] = calibrated
        final[task] = fit_temperature(logits[labelled], labels[labelled])
    return final


def _calibrated_ece(pooled: dict[str, np.ndarray], mask: np.ndarray, task: str) -> float:
    labelled = mask & (pooled[f"{task}_true"] != MISSING)
    correct = pooled[f"{task}_pred"][labelled] == pooled[f"{task}_true"][labelled]
    return expected_calibration_error(pooled[f"{task}_confidence_calibrated"][labelled], correct)
