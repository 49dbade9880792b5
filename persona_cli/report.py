"""The report folder that `persona train` and `persona eval` leave behind.

One call, `write_report`, turns a metrics document (see `metrics.metrics_report`), the per-clip
predictions and the training histories into files a person can read:

    metrics.json           the metrics document, exactly
    report.md              title, warnings, command, protocol, table, per-fold lines, training data, plots
    confusion_emotion.png  row-normalised emotion confusion matrix (only if emotion was scored)
    confusion_gender.png   the same for gender (only if gender was scored)
    age_scatter.png        predicted vs true age (only if some clip has a true age)
    reliability.png        accuracy against confidence (only with confidences)
    learning_curves.png    train and held-out loss per epoch, one colour per fold (only with histories)
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

from persona_cli.errors import UsageError

if TYPE_CHECKING:  # train imports torch; the report needs only the dataclass's fields
    import pandas as pd

    from persona_cli.training import TrainingHistory

log = logging.getLogger("persona")

METRICS_FILE = "metrics.json"
MARKDOWN_FILE = "report.md"
CONFUSION_FILE = "confusion_emotion.png"
GENDER_CONFUSION_FILE = "confusion_gender.png"
AGE_SCATTER_FILE = "age_scatter.png"
LEARNING_CURVES_FILE = "learning_curves.png"
RELIABILITY_FILE = "reliability.png"
PREDICTIONS_FILE = "predictions.csv"
#: every file a report may hold: an overwritten report loses those the new one does not write
REPORT_FILES = (
    METRICS_FILE,
    MARKDOWN_FILE,
    CONFUSION_FILE,
    GENDER_CONFUSION_FILE,
    AGE_SCATTER_FILE,
    LEARNING_CURVES_FILE,
    RELIABILITY_FILE,
    PREDICTIONS_FILE,
)

DPI = 120
AGE_JITTER_YEARS = 1.5  # Common Voice ages are decade midpoints; spread the columns a little
JITTER_SEED = 0  # fixed so the same predictions always draw the same picture


def check_output_folder(out_dir: str | Path | None, overwrite: bool = False) -> None:
    """Refuse (UsageError, before any work) a report folder that already holds something, unless
    `overwrite`: a run must not silently replace an earlier run's report and model."""
    if out_dir is None:
        return
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir}: that is a file; give a folder for the report")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise UsageError(
            f"-o {out_dir}: the folder is not empty; add --overwrite to replace its report, or pick another"
        )


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
    for name in REPORT_FILES:  # an earlier report's plot that this one does not draw must not stay behind
        (out_dir / name).unlink(missing_ok=True)
    written: list[Path] = []

    metrics_path = out_dir / METRICS_FILE
    with metrics_path.open("w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    written.append(metrics_path)

    plots: list[tuple[str, Path]] = []
    for task, name in (("emotion", CONFUSION_FILE), ("gender", GENDER_CONFUSION_FILE)):
        scores = report.get("overall", {}).get(task)
        if scores is not None:
            plot_confusion(scores, out_dir / name, task)
            plots.append((f"{task.capitalize()} confusion matrix (rows: true {task}, normalised)", out_dir / name))
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
    parts += [f"> **Warning:** {warning}\n" for warning in report.get("warnings", ())]
    if command:
        parts.append(f"Produced by:\n\n```\n{command}\n```\n")
    # markdown_table starts with the "Protocol: ..." line
    parts.append(markdown_table(report))
    folds = report.get("folds")
    if folds:
        parts.append("## Folds\n\n" + "\n".join(f"- {_fold_line(i, fold)}" for i, fold in enumerate(folds, 1)) + "\n")
    if report.get("training_data"):
        parts.append(_training_data(report["training_data"]))
    if plots:
        parts.append("## Plots\n\n" + "\n\n".join(f"![{caption}]({path.name})" for caption, path in plots) + "\n")
    return "\n".join(parts)


def _fold_line(number: int, fold: Mapping[str, Any]) -> str:
    """'Fold 2: emotion acc 61.2%, UAR 58.0%; gender acc 93.1%; age RMSE 9.84 years', absent tasks as '–'.
    `fold` is one entry of the report's "folds" (its scores under "overall"), or the scores themselves."""
    scores = fold.get("overall", fold)
    emotion, gender, age = scores.get("emotion"), scores.get("gender"), scores.get("age")
    dash = "–"
    emotion_text = f"emotion acc {emotion['accuracy']:.1%}, UAR {emotion['uar']:.1%}" if emotion else f"emotion {dash}"
    gender_text = f"gender acc {gender['accuracy']:.1%}" if gender else f"gender {dash}"
    age_text = f"age RMSE {age['rmse']:.2f} years" if age else f"age {dash}"
    return f"Fold {number}: {emotion_text}; {gender_text}; {age_text}"


def _training_data(summary: Mapping[str, Any]) -> str:
    """The training set in a few lines: clips, speakers, clips per corpus, labels per task."""
    corpora = ", ".join(f"{name} {count}" for name, count in summary.get("corpora", {}).items())
    labelled = ", ".join(f"{task} {count}" for task, count in summary.get("labelled", {}).items())
    lines = [f"- {summary.get('clips', '?')} clips of {summary.get('speakers', '?')} speakers"]
    lines += [f"- clips per corpus: {corpora}"] if corpora else []
    lines += [f"- clips labelled per task: {labelled}"] if labelled else []
    return "## Training data\n\n" + "\n".join(lines) + "\n"


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


def plot_confusion(scores: Mapping[str, Any], path: Path, task: str = "emotion") -> None:
    """Row-normalised confusion matrix; each cell shows its count and its share of the true class."""
    plt = _pyplot()
    counts = np.asarray(scores["confusion"], dtype=float)
    labels = list(scores.get("labels") or [str(i) for i in range(len(counts))])
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
    ax.set_xlabel(f"predicted {task}")
    ax.set_ylabel(f"true {task}")
    uar = f", UAR {scores['uar']:.1%}" if "uar" in scores else ""
    ax.set_title(
        f"{task.capitalize()} (n={scores.get('n', int(counts.sum()))}): accuracy {scores['accuracy']:.1%}{uar}"
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


def plot_learning_curves(histories: Sequence[TrainingHistory], path: Path) -> list[str]:
    """Train (solid) and held-out test fold (dashed) loss per epoch, one colour per fold; with an
    early-stopping part, its loss (dotted) and the epoch kept (circled). Returns the legend's entries,
    which name only what is drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab10")
    for k, history in enumerate(histories):
        color = colors(k % 10)
        label = f"fold {k + 1}" if len(histories) > 1 else None
        ax.plot(_epochs(history.train_loss), history.train_loss, color=color, linewidth=1, label=label)
        if history.held_out_loss:
            ax.plot(_epochs(history.held_out_loss), history.held_out_loss, color=color, linewidth=1, linestyle="--")
        if history.validation_loss:
            ax.plot(_epochs(history.validation_loss), history.validation_loss, color=color, linewidth=1, linestyle=":")
            # best_epoch is a 0-based index: the state early stopping kept
            if 0 <= history.best_epoch < len(history.validation_loss):
                best = history.validation_loss[history.best_epoch]
                ax.plot(history.best_epoch + 1, best, "o", color=color, markersize=6, markerfacecolor="none")
    # a legend for the line styles, separate from the per-fold colours, and only for what was drawn
    ax.plot([], [], color="gray", linewidth=1, label="train")
    if any(h.held_out_loss for h in histories):
        ax.plot([], [], color="gray", linewidth=1, linestyle="--", label="held-out test fold")
    if any(h.validation_loss for h in histories):
        ax.plot([], [], color="gray", linewidth=1, linestyle=":", label="early-stopping part")
        ax.plot([], [], "o", color="gray", markerfacecolor="none", label="epoch kept")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Learning curves")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=8, ncol=2)
    _save(fig, path)
    return [text.get_text() for text in legend.get_texts()]


def _epochs(losses: Sequence[float]) -> np.ndarray:
    return np.arange(1, len(losses) + 1)
