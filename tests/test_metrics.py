"""Metrics against small examples worked out by hand (arithmetic in the comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from persona_cli.cross_validation import PROTOCOLS
from persona_cli.labels import EMOTIONS, GENDERS, MISSING
from persona_cli.metrics import (
    age_metrics,
    emotion_metrics,
    gender_metrics,
    markdown_table,
    metrics_report,
    summarize_folds,
    task_metrics,
)

ANGER, DISGUST, FEAR = 0, 1, 2
NAN = float("nan")
RANDOM_SPLIT_PROTOCOL = PROTOCOLS["random"].format(k=5)  # the label reports really carry


# --- emotion ---------------------------------------------------------------------------------------


def _imbalanced():
    # 8 anger clips all right; 2 disgust clips, one right and one taken for anger
    true = np.array([ANGER] * 8 + [DISGUST] * 2)
    predicted = np.array([ANGER] * 8 + [DISGUST, ANGER])
    return true, predicted


def test_accuracy_and_uar_with_imbalanced_classes():
    result = emotion_metrics(*_imbalanced())
    # accuracy = 9 right / 10 = 0.9; recall anger 8/8 = 1, disgust 1/2 = 0.5 -> UAR = (1 + 0.5) / 2 = 0.75
    assert result["accuracy"] == pytest.approx(0.9)
    assert result["uar"] == pytest.approx(0.75)
    assert result["n"] == 10
    assert result["labels"] == list(EMOTIONS)


def test_macro_f1_by_hand():
    result = emotion_metrics(*_imbalanced())
    # anger:   tp 8, fp 1 (the disgust clip), fn 0 -> F1 = 2*8 / (2*8 + 1 + 0) = 16/17
    # disgust: tp 1, fp 0, fn 1                    -> F1 = 2*1 / (2*1 + 0 + 1) = 2/3
    # the four emotions absent from true are not averaged: macro-F1 = (16/17 + 2/3) / 2 = 41/51
    assert result["macro_f1"] == pytest.approx(41 / 51)


def test_class_only_predicted_is_not_averaged_but_still_costs():
    # 3 anger clips, one predicted as fear; fear is never the true label
    result = emotion_metrics(np.array([ANGER] * 3), np.array([ANGER, ANGER, FEAR]))
    # accuracy = UAR = anger recall = 2/3; anger F1 = 2*2 / (2*2 + 0 + 1) = 0.8; fear is not averaged
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["uar"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx(0.8)


def test_confusion_rows_are_true_columns_are_predicted():
    confusion = emotion_metrics(*_imbalanced())["confusion"]
    assert len(confusion) == len(EMOTIONS) and all(len(row) == len(EMOTIONS) for row in confusion)
    assert confusion[ANGER][ANGER] == 8
    assert confusion[DISGUST][DISGUST] == 1
    assert confusion[DISGUST][ANGER] == 1  # true disgust, predicted anger
    assert confusion[ANGER][DISGUST] == 0
    assert sum(map(sum, confusion)) == 10


def test_missing_emotion_labels_are_ignored():
    # only clips 0 and 2 are labelled: anger->anger right, disgust->anger wrong; clip 1's prediction
    # may be anything, clip 3's is never looked at
    result = emotion_metrics(np.array([ANGER, -1, DISGUST, -1]), np.array([ANGER, 5, ANGER, 3]))
    assert result["n"] == 2
    assert result["accuracy"] == pytest.approx(0.5)
    assert sum(map(sum, result["confusion"])) == 2


def test_no_labelled_clips_gives_none():
    assert emotion_metrics(np.array([-1, -1]), np.array([0, 1])) is None
    assert emotion_metrics(np.array([], dtype=int), np.array([], dtype=int)) is None
    assert gender_metrics(np.array([-1]), np.array([1])) is None
    assert age_metrics(np.array([NAN, NAN]), np.array([30.0, 40.0]), baseline_mean=35.0) is None


def test_out_of_range_prediction_is_an_error():
    with pytest.raises(ValueError):
        emotion_metrics(np.array([0, 1]), np.array([0, 6]))


# --- gender and age --------------------------------------------------------------------------------


def test_gender_accuracy_and_confusion():
    # labelled: f->f right, m->m right, m->f wrong; the last clip has no label -> 2/3
    result = gender_metrics(np.array([0, 1, 1, -1]), np.array([0, 1, 0, 1]))
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["n"] == 3
    assert result["confusion"] == [[1, 0], [1, 1]]  # row male: one predicted female, one male
    assert result["labels"] == list(GENDERS)
    assert set(result) == {"accuracy", "n", "confusion", "labels"}


def test_age_errors_and_training_mean_baseline():
    true = np.array([20.0, 30.0, NAN, 40.0])
    predicted = np.array([22.0, 27.0, 99.0, 40.0])  # 99 sits on the unlabelled clip and is ignored
    result = age_metrics(true, predicted, baseline_mean=25.0)
    # errors +2, -3, 0 -> MAE = 5/3, RMSE = sqrt((4 + 9 + 0) / 3)
    # baseline 25 errors +5, -5, -15 -> MAE = 25/3, RMSE = sqrt((25 + 25 + 225) / 3)
    assert result["n"] == 3
    assert result["mae"] == pytest.approx(5 / 3)
    assert result["rmse"] == pytest.approx(math.sqrt(13 / 3))
    assert result["baseline_mae"] == pytest.approx(25 / 3)
    assert result["baseline_rmse"] == pytest.approx(math.sqrt(275 / 3))


def test_age_baseline_per_clip_takes_each_clips_own_training_mean():
    # two folds' clips pooled: the first judged by a model trained on a mean age of 20, the second 40
    true = np.array([22.0, NAN, 38.0])
    result = age_metrics(true, np.array([21.0, 0.0, 39.0]), baseline_mean=np.array([20.0, 30.0, 40.0]))
    assert result["baseline_mae"] == pytest.approx(2.0)  # |20 - 22| and |40 - 38|, not |30 - x|
    assert result["baseline_rmse"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="finite"):
        age_metrics(true, true, baseline_mean=np.array([20.0, NAN, 40.0]))


def test_pooled_score_judges_each_held_out_corpus_against_its_own_folds_training_mean():
    # leave-one-corpus-out: corpus "a" was held out by a model trained on a mean age of 40, "b" by
    # one trained on 20; a pooled mean of the two (30) would flatter the baseline on both
    from persona_cli.cross_validation import score

    table = {
        "emotion_true": np.full(4, MISSING),
        "emotion_pred": np.zeros(4, int),
        "gender_true": np.full(4, MISSING),
        "gender_pred": np.zeros(4, int),
        "age_true": np.array([30.0, 30.0, 30.0, 30.0]),
        "age_pred": np.array([31.0, 29.0, 31.0, 29.0]),
    }
    _, per_corpus = score(table, np.array(["a", "a", "b", "b"]), np.array([40.0, 40.0, 20.0, 20.0]))
    assert per_corpus["a"]["age"]["baseline_rmse"] == pytest.approx(10.0)
    assert per_corpus["b"]["age"]["baseline_rmse"] == pytest.approx(10.0)
    assert per_corpus["a"]["age"]["rmse"] == pytest.approx(1.0)


def test_task_metrics_omits_tasks_without_labels():
    # a Common Voice-like set: gender and age labelled, no emotions
    result = task_metrics(
        targets_emotion=np.array([-1, -1]),
        targets_gender=np.array([0, 1]),
        targets_age=np.array([30.0, NAN], dtype=np.float32),
        pred_emotion=np.array([2, 3]),
        pred_gender=np.array([0, 0]),
        pred_age=np.array([33.0, 50.0], dtype=np.float32),
        age_baseline=31.0,
    )
    assert set(result) == {"gender", "age"}
    assert result["gender"]["accuracy"] == pytest.approx(0.5)
    assert result["age"]["rmse"] == pytest.approx(3.0)
    assert result["age"]["baseline_mae"] == pytest.approx(1.0)
    json.dumps(result, allow_nan=False)
    assert all(type(result["age"][key]) is float for key in ("rmse", "mae", "baseline_rmse", "baseline_mae"))
    assert type(result["age"]["n"]) is int


# --- folds and reports -----------------------------------------------------------------------------


def _confusion(diagonal: int, off: int = 0) -> list[list[int]]:
    return [[diagonal if i == j else (off if (i, j) == (0, 1) else 0) for j in range(6)] for i in range(6)]


def _folds() -> list[dict]:
    def emotion(acc, uar, f1, n, diagonal):
        return {
            "accuracy": acc,
            "uar": uar,
            "macro_f1": f1,
            "n": n,
            "confusion": _confusion(diagonal, 1),
            "labels": list(EMOTIONS),
        }

    def age(rmse, mae, n):
        return {"rmse": rmse, "mae": mae, "baseline_rmse": rmse + 2, "baseline_mae": mae + 1, "n": n}

    gender = {"accuracy": 0.9, "n": 5, "confusion": [[2, 0], [1, 2]], "labels": list(GENDERS)}
    return [
        {"emotion": emotion(0.8, 0.7, 0.6, 10, 1), "gender": gender, "age": age(10.0, 8.0, 4)},
        {
            "emotion": emotion(0.6, 0.5, 0.4, 20, 2),
            "gender": {**gender, "accuracy": 0.7, "n": 7},
            "age": age(12.0, 9.0, 6),
        },
        {"emotion": emotion(0.7, 0.6, 0.5, 30, 3), "age": age(14.0, 10.0, 8)},  # no gender labels here
    ]


def test_summarize_folds_mean_and_sample_std():
    mean, std = summarize_folds(_folds())
    # emotion accuracy 0.8, 0.6, 0.7 -> mean 0.7; deviations +.1, -.1, 0 -> sample var 0.02 / (3-1) -> std 0.1
    assert mean["emotion"]["accuracy"] == pytest.approx(0.7)
    assert std["emotion"]["accuracy"] == pytest.approx(0.1)
    assert mean["emotion"]["uar"] == pytest.approx(0.6) and std["emotion"]["uar"] == pytest.approx(0.1)
    assert mean["emotion"]["macro_f1"] == pytest.approx(0.5)
    assert mean["emotion"]["n"] == 60  # 10 + 20 + 30, summed
    # confusions summed: diagonals 1 + 2 + 3 = 6, the (0, 1) cell 1 + 1 + 1 = 3
    assert mean["emotion"]["confusion"][4][4] == 6 and mean["emotion"]["confusion"][0][1] == 3
    assert mean["emotion"]["labels"] == list(EMOTIONS)
    # age rmse 10, 12, 14 -> 12 ± 2 (var (4 + 0 + 4) / 2 = 4); mae 8, 9, 10 -> 9 ± 1
    assert mean["age"]["rmse"] == pytest.approx(12.0) and std["age"]["rmse"] == pytest.approx(2.0)
    assert mean["age"]["mae"] == pytest.approx(9.0) and std["age"]["mae"] == pytest.approx(1.0)
    assert mean["age"]["baseline_rmse"] == pytest.approx(14.0)
    assert mean["age"]["n"] == 18
    # std holds only scalar metrics
    assert set(std["emotion"]) == {"accuracy", "uar", "macro_f1"}
    assert set(std["age"]) == {"rmse", "mae", "baseline_rmse", "baseline_mae"}


def test_summarize_folds_task_missing_in_a_fold():
    mean, std = summarize_folds(_folds())
    # gender only in folds 1 and 2: accuracy 0.9, 0.7 -> mean 0.8, sample std sqrt(0.02 / 1)
    assert mean["gender"]["accuracy"] == pytest.approx(0.8)
    assert std["gender"]["accuracy"] == pytest.approx(math.sqrt(0.02))
    assert mean["gender"]["n"] == 12
    assert mean["gender"]["n_folds"] == 2 and mean["emotion"]["n_folds"] == 3
    assert mean["gender"]["confusion"] == [[4, 0], [2, 4]]


def test_summarize_folds_single_fold_has_no_std():
    folds = _folds()
    mean, std = summarize_folds([folds[0], {"age": folds[1]["age"]}])
    assert mean["emotion"]["accuracy"] == pytest.approx(0.8)  # the one fold that has it
    assert "emotion" not in std and "gender" not in std
    assert "age" in std
    assert summarize_folds([]) == ({}, {})


def _report():
    folds = _folds()
    mean, std = summarize_folds(folds)
    per_corpus = {
        "crema-d": {"emotion": {**folds[0]["emotion"], "accuracy": 0.9}, "gender": folds[0]["gender"]},
        "commonvoice": {"gender": folds[1]["gender"], "age": folds[1]["age"]},
    }
    return metrics_report(mean, per_corpus, folds=folds, std=std, protocol="speaker-grouped 3-fold CV")


def test_metrics_report_shape_and_json():
    report = _report()
    assert set(report) == {"protocol", "overall", "per_corpus", "folds", "std"}
    assert report["protocol"] == "speaker-grouped 3-fold CV"
    assert list(report["per_corpus"]) == ["crema-d", "commonvoice"]
    assert len(report["folds"]) == 3
    assert json.loads(json.dumps(report, allow_nan=False)) == report

    plain = metrics_report({"age": _folds()[0]["age"]}, {}, protocol=RANDOM_SPLIT_PROTOCOL)
    assert set(plain) == {"protocol", "overall", "per_corpus"}


def test_markdown_table_cells():
    text = markdown_table(_report())
    lines = text.splitlines()
    assert lines[0] == "Protocol: speaker-grouped 3-fold CV"
    header = next(line for line in lines if line.startswith("| Corpus"))
    assert "Emotion acc" in header and "UAR" in header and "macro-F1" in header and "baseline RMSE" in header
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ") and "Corpus" not in line}
    assert list(rows) == ["crema-d", "commonvoice", "overall"]
    crema = [cell.strip() for cell in rows["crema-d"].split("|")[2:-1]]
    assert crema[0] == "90.0"  # accuracy 0.9 as a percentage with one decimal
    assert crema[4] == "90.0"  # gender accuracy
    assert crema[6:] == ["–"] * 4  # no age labels in this corpus
    commonvoice = [cell.strip() for cell in rows["commonvoice"].split("|")[2:-1]]
    assert commonvoice[:4] == ["–"] * 4
    assert commonvoice[6] == "12.00"  # years with two decimals
    overall = [cell.strip() for cell in rows["overall"].split("|")[2:-1]]
    assert overall[0] == "70.0 ± 10.0"
    assert overall[3] == "60"
    assert overall[6] == "12.00 ± 2.00"


def test_markdown_table_without_std():
    report = metrics_report({"age": _folds()[0]["age"]}, {}, protocol=RANDOM_SPLIT_PROTOCOL)
    text = markdown_table(report)
    assert text.startswith(f"Protocol: {RANDOM_SPLIT_PROTOCOL}")
    overall = next(line for line in text.splitlines() if line.startswith("| overall"))
    assert "±" not in overall and "10.00" in overall and "–" in overall
