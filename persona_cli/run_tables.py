"""The tables a `persona train` or `persona eval` run leaves besides its scores: per-file predictions
(predictions.csv), what a model was trained on, and its headline figures (both kept in its metadata).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from persona_cli.corpora import LabelledClip
from persona_cli.labels import EMOTIONS, GENDERS, MISSING


def predictions_frame(clips: Sequence[LabelledClip], table: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-file true and predicted labels, as names, for predictions.csv and the plots."""

    def names(indices: np.ndarray, labels: Sequence[str]) -> list[str | None]:
        return [labels[i] if i != MISSING else None for i in indices]

    frame = pd.DataFrame(
        {
            "path": [str(c.path) for c in clips],
            "corpus": [c.corpus for c in clips],
            "speaker": [c.speaker for c in clips],
            "emotion_true": names(table["emotion_true"], EMOTIONS),
            "emotion_pred": names(table["emotion_pred"], EMOTIONS),
            "gender_true": names(table["gender_true"], GENDERS),
            "gender_pred": names(table["gender_pred"], GENDERS),
            "age_true": table["age_true"],
            "age_pred": np.round(table["age_pred"], 1),
        }
    )
    for column in (
        "emotion_confidence",
        "emotion_confidence_calibrated",
        "gender_confidence",
        "gender_confidence_calibrated",
    ):
        if column in table:
            frame[column] = np.round(table[column], 4)
    # one column per class, as predict writes them (prob_anger ...), then the gender classes'
    for task, labels in (("emotion", EMOTIONS), ("gender", GENDERS)):
        if f"{task}_probs" in table:
            for k, label in enumerate(labels):
                frame[f"prob_{label}"] = np.round(table[f"{task}_probs"][:, k], 4)
    if "fold" in table:
        frame.insert(3, "fold", table["fold"])
    return frame


def data_summary(clips: Sequence[LabelledClip]) -> dict:
    """What a model was trained on, for its metadata."""
    corpora = sorted({c.corpus for c in clips})
    return {
        "clips": len(clips),
        "speakers": len({c.speaker for c in clips}),
        "corpora": {name: sum(c.corpus == name for c in clips) for name in corpora},
        "labelled": {
            "emotion": sum(c.emotion is not None for c in clips),
            "gender": sum(c.gender is not None for c in clips),
            "age": sum(c.age is not None for c in clips),
        },
    }


def headline_figures(report: dict) -> dict:
    """The scalar metrics of a CV report (no confusion matrices), to store in a model's metadata."""

    def scalars(tasks: dict) -> dict:
        return {
            task: {k: v for k, v in values.items() if isinstance(v, (int, float))} for task, values in tasks.items()
        }

    return {
        "protocol": report["protocol"],
        "overall": scalars(report["overall"]),
        "per_corpus": {name: scalars(tasks) for name, tasks in report["per_corpus"].items()},
    }


def untested_report(folds: int, summary: dict) -> dict:
    """metrics.json of a run without cross-validation: what was trained on, and that nothing was scored."""
    protocol = (
        f"no cross-validation (--folds {folds}): the model was trained on all {summary['clips']} clips, "
        "so there is no held-out score"
    )
    training_data = {key: summary[key] for key in ("clips", "speakers", "corpora", "labelled")}
    return {"protocol": protocol, "overall": {}, "per_corpus": {}, "training_data": training_data}
