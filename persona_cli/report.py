"""The report folder that `persona train` and `persona eval` leave behind.

One call, `write_report`, turns a metrics document (see `metrics.metrics_report`), the per-clip
predictions and the training histories into files a person can read:

    metrics.json           the metrics document, exactly
    report.md              title, command, protocol, table, per-fold lines, links to the plots
    confusion_emotion.png  row-normalised emotion confusion matrix (only if emotion was scored)
    age_scatter.png        predicted vs true age (only if some clip has a true age)
    learning_curves.png    train / validation loss per epoch, one thin line per fold (only with histories)
    predictions.csv        the predictions table, as given

matplotlib is imported inside the plotting functions, with the Agg backend, so importing
persona_cli (and running `persona predict`) never pays for it and never needs a display.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # train imports torch; the report needs only the dataclass's fields
    import pandas as pd

    from persona_cli.training import TrainingHistory

log = logging.getLogger("persona")

METRICS_FILE = "metrics.json"
MARKDOWN_FILE = "report.md"
CONFUSION_FILE = "confusion_emotion.png"
AGE_SCATTER_FILE = "age_scatter.png"
LEARNING_CURVES_FILE = "learning_curves.png"
RELIABILITY_FILE = "reliability.png"
PREDICTIONS_FILE = "predictions.csv"

DPI = 120
AGE_JITTER_YEARS = 1.5  # Common Voice ages are decade midpoints; spread the columns a little
JITTER_SEED = 0  # fixed so the same predictions always draw the same picture


def write_report(
    out_dir: Path,
    report: Mapping[str, Any],
    predictions: pd.DataFrame | None = None,
    histories: Sequence[TrainingHistory] = (),
    command: str | None = None,
    title: str = "persona report",
) -> list[Path]:
    """Write the report folder into `out_dir` (created) and return the paths written, in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    metrics_path = out_dir / METRICS_FILE
    with metrics_path.open("w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    written.append(metrics_path)

    plots: list[tuple[str, Path]] = []
    emotion = report.get("overall", {}).get("emotion")
    if emotion is not None:
        path = out_dir / CONFUSION_FILE
        plot_confusion(emotion, path)
        plots.append(("Emotion confusion matrix (rows: true emotion, normalised)", path))
    ages = _age_pairs(predictions)
    if ages is not None:
        path = out_dir / AGE_SCATTER_FILE
        plot_age_scatter(*ages, path)
        plots.append(("Predicted vs true age", path))
    if predictions is not None and "emotion_confidence" in predictions:
        path = out_dir / RELIABILITY_FILE
        plot_reliability(predictions, path)
        plots.append(("Reliability: accuracy against confidence (the diagonal is a calibrated model)", path))
    if histories:
        path = out_dir / LEARNING_CURVES_FILE
        plot_learning_curves(histories, path)
        plots.append(("Learning curves", path))
    written.extend(path for _, path in plots)

    if predictions is not None:
        path = out_dir / PREDICTIONS_FILE
        predictions.to_csv(path, index=False)
        written.append(path)

    markdown_path = out_dir / MARKDOWN_FILE
    markdown_path.write_text(report_markdown(report, plots, command=command, title=title), encoding="utf-8")
    written.insert(1, markdown_path)
    log.info("report written to %s", out_dir)
    return written


# --- Markdown ---------------------------------------------------------------------------------------


def report_markdown(
    report: Mapping[str, Any],
    plots: Sequence[tuple[str, Path]] = (),
    command: str | None = None,
    title: str = "persona report",
) -> str:
    """report.md's text; `plots` are (caption, path) pairs linked by file name (they sit beside it)."""
    from persona_cli.metrics import markdown_table

    parts = [f"# {title}\n"]
    if command:
        parts.append(f"Produced by:\n\n```\n{command}\n```\n")
    # markdown_table starts with the "Protocol: ..." line
    parts.append(markdown_table(report))
    folds = report.get("folds")
    if folds:
        parts.append("## Folds\n\n" + "\n".join(f"- {_fold_line(i, fold)}" for i, fold in enumerate(folds, 1)) + "\n")
    if plots:
        parts.append("## Plots\n\n" + "\n\n".join(f"![{caption}]({path.name})" for caption, path in plots) + "\n")
    return "\n".join(parts)


def _fold_line(number: int, fold: Mapping[str, Any]) -> str:
    """'Fold 2: emotion acc 61.2%, UAR 58.0%; gender acc 93.1%; age RMSE 9.84 years', absent tasks as '–'."""
    emotion, gender, age = fold.get("emotion"), fold.get("gender"), fold.get("age")
    dash = "–"
    emotion_text = f"emotion acc {emotion['accuracy']:.1%}, UAR {emotion['uar']:.1%}" if emotion else f"emotion {dash}"
    gender_text = f"gender acc {gender['accuracy']:.1%}" if gender else f"gender {dash}"
    age_text = f"age RMSE {age['rmse']:.2f} years" if age else f"age {dash}"
    return f"Fold {number}: {emotion_text}; {gender_text}; {age_text}"


# --- plots ------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    try:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)


def plot_confusion(emotion: Mapping[str, Any], path: Path) -> None:
    """Row-normalised confusion matrix; each cell shows its count and its share of the true class."""
    plt = _pyplot()
    counts = np.asarray(emotion["confusion"], dtype=float)
    labels = list(emotion.get("labels") or [str(i) for i in range(len(counts))])
    totals = counts.sum(axis=1, keepdims=True)
    # a class nobody had (row of zeros) stays 0 rather than 0/0
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 1.0 * len(labels) + 2))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted emotion")
    ax.set_ylabel("true emotion")
    ax.set_title(
        f"Emotion (n={emotion.get('n', int(counts.sum()))}): "
        f"accuracy {emotion['accuracy']:.1%}, UAR {emotion['uar']:.1%}"
    )
    _save(fig, path)


def _age_pairs(predictions: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(true, predicted) ages of the clips that have a true age, or None if there are none."""
    if predictions is None or not {"age_true", "age_pred"} <= set(predictions.columns):
        return None
    true = predictions["age_true"].to_numpy(dtype=float)
    predicted = predictions["age_pred"].to_numpy(dtype=float)
    keep = ~np.isnan(true) & np.isfinite(predicted)
    if not keep.any():
        return None
    return true[keep], predicted[keep]


def plot_age_scatter(true: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    """Predicted vs true age with the y = x line; true ages jittered (seeded) so decade columns spread."""
    plt = _pyplot()
    rmse = float(np.sqrt(np.mean((predicted - true) ** 2)))
    jitter = np.random.default_rng(JITTER_SEED).uniform(-AGE_JITTER_YEARS, AGE_JITTER_YEARS, size=true.shape)

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(true + jitter, predicted, s=10, alpha=0.35, edgecolors="none")
    low = float(min(true.min(), predicted.min())) - 5
    high = float(max(true.max(), predicted.max())) + 5
    ax.plot([low, high], [low, high], color="black", linewidth=1, linestyle="--", label="y = x")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel(f"true age (years, jittered ±{AGE_JITTER_YEARS:g})")
    ax.set_ylabel("predicted age (years)")
    ax.set_title(f"Age (n={true.size}): RMSE {rmse:.2f} years")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_reliability(predictions: pd.DataFrame, path: Path) -> None:
    """Per head, accuracy against confidence in equal-width bins, before and (where fitted) after the
    out-of-corpus temperature, with each curve's expected calibration error in the legend."""
    from persona_cli.calibration import expected_calibration_error, reliability_bins

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, task in zip(axes, ("emotion", "gender")):
        labelled = predictions[f"{task}_true"].notna()
        correct = (predictions[f"{task}_pred"] == predictions[f"{task}_true"])[labelled].to_numpy()
        for column, label in ((f"{task}_confidence", "as trained"), (f"{task}_confidence_calibrated", "calibrated")):
            if column not in predictions or not labelled.any():
                continue
            confidence = predictions[column][labelled].to_numpy(dtype=float)
            bins = [b for b in reliability_bins(confidence, correct) if b["n"]]
            ece = expected_calibration_error(confidence, correct)
            ax.plot(
                [b["confidence"] for b in bins],
                [b["accuracy"] for b in bins],
                marker="o",
                label=f"{label} (ECE {ece:.3f})",
            )
        ax.plot([0, 1], [0, 1], color="black", linewidth=1, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"{task} confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{task.capitalize()} (n={int(labelled.sum())})")
        if ax.get_lines()[:-1]:  # the diagonal alone: no labelled clip of this task to draw
            ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    _save(fig, path)


def plot_learning_curves(histories: Sequence[TrainingHistory], path: Path) -> None:
    """Train (solid) and validation (dashed) loss per epoch, one colour per fold, best epoch circled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab10")
    for k, history in enumerate(histories):
        color = colors(k % 10)
        label = f"fold {k + 1}" if len(histories) > 1 else None
        train_epochs = np.arange(1, len(history.train_loss) + 1)
        ax.plot(train_epochs, history.train_loss, color=color, linewidth=1, label=label)
        if history.validation_loss:
            val_epochs = np.arange(1, len(history.validation_loss) + 1)
            ax.plot(val_epochs, history.validation_loss, color=color, linewidth=1, linestyle="--")
        # best_epoch is a 0-based index; without a validation part it is the last training epoch
        marked = history.validation_loss or history.train_loss
        if 0 <= history.best_epoch < len(marked):
            ax.plot(
                history.best_epoch + 1,
                marked[history.best_epoch],
                "o",
                color=color,
                markersize=6,
                markerfacecolor="none",
            )
    # a legend for the line styles, separate from the per-fold colours
    ax.plot([], [], color="gray", linewidth=1, label="train")
    ax.plot([], [], color="gray", linewidth=1, linestyle="--", label="validation")
    ax.plot([], [], "o", color="gray", markerfacecolor="none", label="best epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Learning curves")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    _save(fig, path)
