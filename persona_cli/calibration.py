"""Do the confidences mean what they say? Expected calibration error, reliability bins, and the
temperature that makes a head's softmax honest on recordings it was not trained on.

A network trained to fit a few acted corpora is over-confident on anything else. Dividing its logits
by one temperature per head (Guo et al. 2017) keeps every prediction's ranking and rescales its
confidence. The temperature must be fitted on predictions for corpora the model did not train on —
the out-of-corpus predictions of leave-one-corpus-out — or it learns the in-corpus confidence again.
"""

from __future__ import annotations

import numpy as np
import torch

#: equal-width confidence bins of the calibration error and the reliability plot
CALIBRATION_BINS = 10
#: the temperatures searched (log-spaced): from sharpening by 4 to flattening by 20
TEMPERATURE_RANGE = (0.25, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Per equal-width confidence bin: how many predictions, their mean confidence and their accuracy."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # a confidence of exactly 1.0 belongs to the last bin
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    table = []
    for b in range(bins):
        members = index == b
        n = int(members.sum())
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": n,
                "confidence": float(confidence[members].mean()) if n else None,
                "accuracy": float(correct[members].mean()) if n else None,
            }
        )
    return table


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """The gap between confidence and accuracy, averaged over bins weighted by their share of predictions."""
    table = reliability_bins(confidence, correct, bins)
    total = sum(row["n"] for row in table)
    if total == 0:
        return float("nan")
    return float(sum(row["n"] * abs(row["confidence"] - row["accuracy"]) for row in table if row["n"]) / total)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels` (class indices) under
    softmax(logits / T); 1.0 when there is nothing to fit on."""
    if len(labels) == 0:
        return 1.0
    logits_t = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    # one parameter on a smooth convex-in-log-T curve: a dense grid, then a finer one around its best
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    for _ in range(3):
        grid = np.linspace(low, high, 41)
        losses = [torch.nn.functional.cross_entropy(logits_t / float(np.exp(g)), labels_t).item() for g in grid]
        best = int(np.argmin(losses))
        step = grid[1] - grid[0]
        low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        if step < 1e-4:
            break
    return float(np.exp(grid[best]))


__all__ = ["expected_calibration_error", "fit_temperature", "reliability_bins", "softmax"]
