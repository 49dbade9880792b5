"""Evaluation metrics for the three tasks, where any clip may lack any label.

Labels arrive as the training arrays do: emotion and gender as int class indices with -1 for a
missing label, age as float years with NaN for a missing one. Each task is scored only on the clips
that carry its label, and a task with no labelled clips is left out of the result rather than
reported as zero, so a corpus without emotions (Common Voice) never drags an emotion average down.

Every value is a plain Python float/int/list so the dicts go straight into `json.dumps`; rates are
fractions (0..1) and only `markdown_table` turns them into percentages.

Conventions, chosen once here so every report agrees:
- UAR (unweighted average recall) and macro-F1 average over the classes present in the TRUE labels
  of the clips scored, as sklearn's `f1_score(average="macro", labels=<classes in true>)` does. A
  class the model predicts but nobody said still costs: those clips are misses of their true class.
- Fold spread is the SAMPLE standard deviation (ddof=1), as most cross-validation reports give it;
  a task scored in fewer than two folds has no spread and is left out of the std dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from persona_cli.labels import EMOTIONS, GENDERS, MISSING, TASKS

#: the metrics averaged over folds; "n" and "confusion" are summed instead, "labels" copied
SCALAR_METRICS = ("accuracy", "uar", "macro_f1", "ece", "rmse", "mae", "baseline_rmse", "baseline_mae")


ABSENT = "–"  # en dash: the task has no labelled clips in that row


# --- per task ---------------------------------------------------------------------------------------


def _labelled_classes(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) pairs of clips with a label; checks ranges so a bad index fails loudly."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    if true.shape != predicted.shape or true.ndim != 1:
        raise ValueError(f"true and predicted must be 1-D of equal length, got {true.shape} and {predicted.shape}")
    if np.any((true < MISSING) | (true >= n_classes)):
        raise ValueError(f"true labels must be {MISSING} (missing) or in 0..{n_classes - 1}")
    mask = true != MISSING
    true, predicted = true[mask].astype(np.int64), predicted[mask].astype(np.int64)
    # a prediction outside the classes cannot be placed in the confusion matrix; it is a caller bug
    if np.any((predicted < 0) | (predicted >= n_classes)):
        raise ValueError(f"predicted classes must be in 0..{n_classes - 1} for every labelled clip")
    return true, predicted


def _confusion(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are the true class, columns the predicted class."""
    counts = np.bincount(true * n_classes + predicted, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def _classification(true: np.ndarray, predicted: np.ndarray, names: Sequence[str]) -> dict[str, Any] | None:
    n_classes = len(names)
    true, predicted = _labelled_classes(true, predicted, n_classes)
    if true.size == 0:
        return None
    confusion = _confusion(true, predicted, n_classes)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)  # clips whose true label is the class
    predicted_count = confusion.sum(axis=0)
    present = support > 0
    recall = tp[present] / support[present]
    # F1 = 2tp / (2tp + fp + fn) = 2tp / (predicted + support); never 0/0 for a class present in true
    f1 = 2 * tp[present] / (predicted_count[present] + support[present])
    return {
        "accuracy": float(tp.sum() / true.size),
        "uar": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "n": int(true.size),
        "confusion": confusion.tolist(),
        "labels": list(names),
    }


def emotion_metrics(true: np.ndarray, predicted: np.ndarray, n_classes: int = len(EMOTIONS)) -> dict[str, Any] | None:
    """Accuracy, UAR, macro-F1, n and confusion over clips with an emotion label; None if there are none."""
    names = list(EMOTIONS) if n_classes == len(EMOTIONS) else [str(i) for i in range(n_classes)]
    return _classification(true, predicted, names)


def gender_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, Any] | None:
    """Accuracy, n and confusion over clips with a gender label; None if there are none."""
    result = _classification(true, predicted, GENDERS)
    if result is None:
        return None
    # with two classes UAR and F1 add little to accuracy and the paper reports accuracy only
    return {key: result[key] for key in ("accuracy", "n", "confusion", "labels")}


def age_metrics(true: np.ndarray, predicted: np.ndarray, baseline_mean: float | np.ndarray) -> dict[str, Any] | None:
    """RMSE and MAE in years over clips with an age, beside those of always guessing `baseline_mean`.

    `baseline_mean` must be the TRAINING mean age: the test mean would give the baseline knowledge
    of the test set that no model has. Clips judged by different models (the folds of a
    cross-validation) each take their own model's: pass one mean per clip.
    """
    true, predicted = np.asarray(true, dtype=float), np.asarray(predicted, dtype=float)
    if true.shape != predicted.shape or true.ndim != 1:
        raise ValueError(f"true and predicted must be 1-D of equal length, got {true.shape} and {predicted.shape}")
    baseline = np.broadcast_to(np.asarray(baseline_mean, dtype=float), true.shape)
    if not np.all(np.isfinite(baseline)):
        raise ValueError(f"baseline_mean must be a finite number of years, got {baseline_mean}")
    mask = ~np.isnan(true)
    if not mask.any():
        return None
    true, predicted, baseline = true[mask], predicted[mask], baseline[mask]
    # a NaN prediction would turn the whole RMSE into NaN without saying which clip; refuse it instead
    if not np.all(np.isfinite(predicted)):
        raise ValueError("predicted age must be finite for every clip with an age label")
    error = predicted - true
    baseline_error = baseline - true
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "baseline_rmse": float(np.sqrt(np.mean(baseline_error**2))),
        "baseline_mae": float(np.mean(np.abs(baseline_error))),
        "n": int(true.size),
    }


def task_metrics(
    targets_emotion: np.ndarray,
    targets_gender: np.ndarray,
    targets_age: np.ndarray,
    pred_emotion: np.ndarray,
    pred_gender: np.ndarray,
    pred_age: np.ndarray,
    age_baseline: float | np.ndarray,
) -> dict[str, dict[str, Any]]:
    """All three tasks for one set of clips, as {"emotion": ..., "gender": ..., "age": ...}, absent tasks omitted."""
    results = {
        "emotion": emotion_metrics(targets_emotion, pred_emotion),
        "gender": gender_metrics(targets_gender, pred_gender),
        "age": age_metrics(targets_age, pred_age, age_baseline),
    }
    return {task: result for task, result in results.items() if result is not None}


# --- across folds -----------------------------------------------------------------------------------


def summarize_folds(fold_results: Sequence[Mapping[str, Mapping[str, Any]]]) -> tuple[dict, dict]:
    """(mean, std) over folds, each a `task_metrics` dict.

    The mean dict has the folds' shape: scalar metrics averaged over the folds that scored the task
    (a fold without age labels says nothing about age), "n" and "confusion" summed, "labels" copied,
    plus "n_folds", the number of folds averaged. The std dict holds only the scalar metrics, as
    sample standard deviations (ddof=1), for tasks scored in at least two folds.
    """
    mean: dict[str, dict[str, Any]] = {}
    std: dict[str, dict[str, float]] = {}
    for task in TASKS:
        folds = [fold[task] for fold in fold_results if task in fold]
        if not folds:
            continue
        keys = [key for key in SCALAR_METRICS if key in folds[0]]
        values = {key: np.array([fold[key] for fold in folds], dtype=float) for key in keys}
        task_mean: dict[str, Any] = {key: float(v.mean()) for key, v in values.items()}
        task_mean["n"] = int(sum(fold["n"] for fold in folds))
        if "confusion" in folds[0]:
            task_mean["confusion"] = np.sum([fold["confusion"] for fold in folds], axis=0).astype(int).tolist()
            task_mean["labels"] = list(folds[0]["labels"])
        task_mean["n_folds"] = len(folds)
        mean[task] = task_mean
        if len(folds) >= 2:
            std[task] = {key: float(v.std(ddof=1)) for key, v in values.items()}
    return mean, std


# --- reports ----------------------------------------------------------------------------------------


def metrics_report(
    overall: Mapping[str, Any],
    per_corpus: Mapping[str, Mapping[str, Any]],
    *,
    protocol: str,  # how the figures were obtained (cross_validation.PROTOCOLS, or an evaluation's description)
    folds: Sequence[Mapping[str, Any]] | None = None,
    std: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metrics.json document; "folds" and "std" only when cross-validation produced them."""
    report: dict[str, Any] = {"protocol": protocol, "overall": dict(overall), "per_corpus": dict(per_corpus)}
    if folds is not None:
        report["folds"] = list(folds)
    if std is not None:
        report["std"] = dict(std)
    return report


def _cell(result: Mapping[str, Any] | None, spread: Mapping[str, Any] | None, key: str, kind: str) -> str:
    """One table cell: percent (1 decimal), years (2 decimals) or a count, "mean ± std" where std exists."""
    if result is None or key not in result:
        return ABSENT
    if kind == "n":
        return str(result[key])
    scale, digits = (100.0, 1) if kind == "percent" else (1.0, 2)
    text = f"{result[key] * scale:.{digits}f}"
    if spread is not None and key in spread:
        text += f" ± {spread[key] * scale:.{digits}f}"
    return text


#: (header, task, metric key, kind) for each column after the row name
_COLUMNS = (
    ("Emotion acc (%)", "emotion", "accuracy", "percent"),
    ("Emotion UAR (%)", "emotion", "uar", "percent"),
    ("Emotion macro-F1 (%)", "emotion", "macro_f1", "percent"),
    ("Emotion n", "emotion", "n", "n"),
    ("Gender acc (%)", "gender", "accuracy", "percent"),
    ("Gender n", "gender", "n", "n"),
    ("Age RMSE (years)", "age", "rmse", "years"),
    ("Age MAE (years)", "age", "mae", "years"),
    ("Age baseline RMSE (years)", "age", "baseline_rmse", "years"),
    ("Age n", "age", "n", "n"),
)


def markdown_table(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the protocol line, then one row per corpus and a last "overall" row
    (the protocol line alone when nothing was scored: a model trained without cross-validation)."""
    if not report.get("overall") and not report.get("per_corpus"):
        return f"Protocol: {report['protocol']}\n"
    std = report.get("std") or {}
    rows: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [
        (name, result, {}) for name, result in report["per_corpus"].items()
    ]
    rows.append(("overall", report["overall"], std))
    if report.get("split") == "corpus":  # each fold is one held-out corpus: their plain mean is the headline
        rows.append(("mean of held-out corpora", report["fold_mean"], {}))
    lines = [
        f"Protocol: {report['protocol']}",
        "",
        "| Corpus | " + " | ".join(header for header, *_ in _COLUMNS) + " |",
        "|:--|" + "--:|" * len(_COLUMNS),
    ]
    for name, result, spread in rows:
        cells = [_cell(result.get(task), spread.get(task), key, kind) for _, task, key, kind in _COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "emotion_predicted" in report:
        lines += ["", *_calibration_table(report, rows)]
    return "\n".join(lines) + "\n"


def _calibration_table(report: Mapping[str, Any], rows: Sequence[tuple[str, Mapping[str, Any], Any]]) -> list[str]:
    """How well confidences match accuracy (ECE, before and after the out-of-corpus temperature), and
    which emotions the model hands out, per row of the main table."""
    shares = report["emotion_predicted"]
    header = ["Emotion ECE", "calibrated", "Gender ECE", "calibrated", "Predicted neutral (%)", "disgust (%)"]
    lines = ["| Corpus | " + " | ".join(header) + " |", "|:--|" + "--:|" * len(header)]
    for name, result, _ in rows:
        cells = [
            _cell(result.get(task), None, key, "years")
            for task in ("emotion", "gender")
            for key in ("ece", "ece_calibrated")
        ]
        share = shares.get("overall" if name == "overall" else name)
        cells += (
            [ABSENT, ABSENT] if share is None else [f"{100 * share['neutral']:.1f}", f"{100 * share['disgust']:.1f}"]
        )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
