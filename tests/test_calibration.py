"""Calibration and leave-one-corpus-out: the calibration error, the temperature fit, folds of whole
corpora, out-of-corpus temperatures, and a model that applies its temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli as run
from persona_cli.calibration import expected_calibration_error, fit_temperature, reliability_bins, softmax
from persona_cli.corpora import LabelledClip
from persona_cli.cross_validation import cross_validate, make_folds
from persona_cli.labels import EMOTIONS, WEAK_NEUTRAL
from persona_cli.metrics import markdown_table
from persona_cli.training import TrainConfig


def calibrated_draws(n: int = 4000, scale: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): a perfectly calibrated model, by construction."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, 6))
    probabilities = softmax(logits)
    labels = np.array([rng.choice(6, p=p) for p in probabilities])
    return logits, labels


def test_a_calibrated_model_has_a_small_error_and_an_overconfident_one_a_large_error():
    logits, labels = calibrated_draws()
    honest = softmax(logits)
    overconfident = softmax(3 * logits)
    assert expected_calibration_error(honest.max(1), honest.argmax(1) == labels) < 0.03
    assert expected_calibration_error(overconfident.max(1), overconfident.argmax(1) == labels) > 0.15


def test_the_fitted_temperature_undoes_overconfidence():
    logits, labels = calibrated_draws()
    assert fit_temperature(3 * logits, labels) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.1)
    assert fit_temperature(logits[:0], labels[:0]) == 1.0


def test_reliability_bins_count_every_prediction_once_including_full_confidence():
    confidence = np.array([0.0, 0.05, 0.5, 0.95, 1.0])
    bins = reliability_bins(confidence, np.array([1, 0, 1, 1, 1], bool))
    assert sum(b["n"] for b in bins) == 5 and bins[-1]["n"] == 2 and bins[-1]["accuracy"] == 1.0


def clip(i: int, corpus: str, emotion=None, gender=None, age=None) -> LabelledClip:
    return LabelledClip(Path(f"/x/{corpus}/{i}.wav"), corpus, f"{corpus}:{i % 5}", emotion, gender, age, emotion)


def three_corpora() -> tuple[np.ndarray, list[LabelledClip]]:
    """Two acted corpora with emotions, one read-speech corpus with ages only; emotion and gender are
    readable from the features, with a per-corpus offset standing in for the recording setup."""
    rng = np.random.default_rng(0)
    clips, rows = [], []
    for corpus, offset in (("acted_a", 0.0), ("acted_b", 1.0), ("read", 2.0)):
        for i in range(60):
            emotion = None if corpus == "read" else EMOTIONS[i % 3]
            gender = ("female", "male")[i % 2]
            age = 20.0 + i if corpus == "read" else None
            clips.append(clip(i, corpus, emotion, gender, age))
            row = rng.standard_normal(16) + offset
            row[0] += 3 * (i % 2)
            if emotion:
                row[1 + EMOTIONS.index(emotion)] += 3
            rows.append(row)
    return np.array(rows, np.float32), clips


def test_leave_one_corpus_out_holds_out_each_corpus_whole():
    _, clips = three_corpora()
    folds = make_folds(clips, 5, "corpus")
    assert [sorted({clips[i].corpus for i in fold}) for fold in folds] == [["acted_a"], ["acted_b"], ["read"]]
    assert sorted(np.concatenate(folds)) == list(range(len(clips)))


def test_leave_one_corpus_out_reports_calibration_shares_and_only_what_was_learnt():
    features, clips = three_corpora()
    result = cross_validate(features, clips, "test", 5, "corpus", TrainConfig(head="fcn", epochs=15))
    report = result.report
    assert report["split"] == "corpus" and "over 3 corpora" in report["protocol"]
    # the only corpus with ages was held out for its own fold: no age head was trained there
    assert "age" not in report["per_corpus"]["read"] and "emotion" not in report["per_corpus"]["read"]
    for name in ("acted_a", "acted_b"):
        emotion = report["per_corpus"][name]["emotion"]
        assert 0 <= emotion["ece"] <= 1 and 0 <= emotion["ece_calibrated"] <= 1
    shares = report["emotion_predicted"]["read"]
    assert set(shares) == set(EMOTIONS) and sum(shares.values()) == pytest.approx(1.0)
    assert set(result.temperatures) == {"emotion", "gender"} and all(t > 0 for t in result.temperatures.values())
    table = markdown_table(report)
    assert "| mean of held-out corpora |" in table and "Predicted neutral (%)" in table


def test_a_model_applies_its_temperature_without_changing_its_choices():
    features, clips = three_corpora()
    result = cross_validate(features, clips, "test", 2, "speaker", TrainConfig(head="fcn", epochs=5))
    assert result.temperatures == {"emotion": 1.0, "gender": 1.0}  # in-corpus folds fit none
    from persona_cli.training import Targets, fit

    model, _ = fit(features, Targets.from_clips(clips), [c.speaker for c in clips], "test", TrainConfig(epochs=5))
    sharp = model.predict(features)
    model.metadata.emotion_temperature = 4.0
    flat = model.predict(features)
    assert (flat.emotion_probs.argmax(1) == sharp.emotion_probs.argmax(1)).all()
    assert flat.emotion_probs.max(1).mean() < sharp.emotion_probs.max(1).mean()
    np.testing.assert_allclose(flat.emotion_logits, sharp.emotion_logits)


def test_split_corpus_is_offered_and_a_wrong_split_lists_it(capsys):
    code, _, err = run(["train", "x", "--split", "sideways"], capsys)
    assert code == 2 and "corpus" in err


def test_weak_neutral_labels_only_the_unlabelled_clips_of_the_named_corpora():
    from persona_cli.errors import UsageError
    from persona_cli.experiments import LabelledFeatures, weakly_neutral

    features, clips = three_corpora()
    data = weakly_neutral(LabelledFeatures(clips, features, "test"), ["read"])
    assert all(c.emotion == "neutral" and c.emotion_raw == WEAK_NEUTRAL for c in data.clips if c.corpus == "read")
    assert [c.emotion for c in data.clips if c.corpus != "read"] == [c.emotion for c in clips if c.corpus != "read"]
    with pytest.raises(UsageError, match="--weak-neutral nosuch: no clips of that corpus"):
        weakly_neutral(data, ["nosuch"])
    # trained on, never scored: the read corpus has no emotion row in a report
    result = cross_validate(data.features, data.clips, "test", 5, "corpus", TrainConfig(head="fcn", epochs=5))
    assert "emotion" not in result.report["per_corpus"]["read"]
