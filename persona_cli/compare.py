"""`persona train --compare`: every encoder with both heads, cross-validated on the same folds, as a
table shaped like the paper's Table 1.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from persona_cli.corpora import read_corpora
from persona_cli.cross_validation import checked_folds, cross_validate
from persona_cli.encoders import check_installed
from persona_cli.errors import ModelLoadingError, UsageError
from persona_cli.experiments import embed_clips, normalize_features, training_recipe
from persona_cli.options import PredictOptions
from persona_cli.predictor import build_encoder
from persona_cli.report import check_output_folder

log = logging.getLogger("persona")

#: the encoders of the paper's Table 1, in its order
COMPARED_ENCODERS = ("mfcc", "ge2e", "xvector", "ecapa")


def compare_encoders(
    data: Sequence[str],
    *,
    folds: int = 5,
    split: str = "speaker",
    encoder_source: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    command: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    **recipe,
) -> str:
    """Cross-validate every encoder (mfcc, ge2e, and xvector/ecapa where their weights load) with both
    heads; returns a Markdown table shaped like the paper's Table 1 (also written to `out`).
    `recipe`: train()'s other settings (epochs, seed, normalize, paper_recipe; head is ignored)."""
    if folds < 2:
        raise UsageError("--compare needs --folds 2 or more")
    for encoder_name in COMPARED_ENCODERS:  # a missing extra: one line now, not a traceback after hours of work
        check_installed(encoder_name)
    recipe.pop("head", None)
    config = training_recipe(head="fcn", **recipe)
    options = PredictOptions(encoder_source=encoder_source, device=device, batch_size=batch_size)
    check_output_folder(out, overwrite)
    clips = read_corpora(data)
    checked_folds(clips, folds, split, config.seed)
    rows: list[dict[str, Any]] = []
    for encoder_name in COMPARED_ENCODERS:
        try:
            labelled = embed_clips(clips, build_encoder(options, encoder_name), options)
        except ModelLoadingError as error:
            log.warning("skipping encoder %s: %s", encoder_name, error)
            continue
        labelled = normalize_features(labelled, config.normalization)
        for head in ("cnn", "fcn"):
            result = cross_validate(
                labelled.features, labelled.clips, encoder_name, folds, split, dataclasses.replace(config, head=head)
            )
            rows.append({"encoder": encoder_name, "head": head, "report": result.report})
    table = f"{rows[0]['report']['protocol'] if rows else ''}\n\n{comparison_table(rows)}"
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "compare.md").write_text(f"`{command}`\n\n{comparison_table(rows)}\n")
        Path(out, "compare.json").write_text(json.dumps(rows, indent=2))
    return table


def comparison_table(rows: Sequence[dict]) -> str:
    """Markdown in the shape of the paper's Table 1: one row per encoder x head."""
    lines = [
        "| Encoder | Head | Emotion acc (%) | Emotion UAR (%) | Gender acc (%) | Age RMSE (years) | Age MAE (years) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        overall = row["report"]["overall"]
        emotion, gender, age = overall.get("emotion"), overall.get("gender"), overall.get("age")
        lines.append(
            f"| {row['encoder']} | {row['head']} | "
            f"{_pct(emotion, 'accuracy')} | {_pct(emotion, 'uar')} | {_pct(gender, 'accuracy')} | "
            f"{_years(age, 'rmse')} | {_years(age, 'mae')} |"
        )
    return "\n".join(lines)


def _pct(task: dict | None, key: str) -> str:
    return "–" if task is None else f"{100 * task[key]:.1f}"


def _years(task: dict | None, key: str) -> str:
    return "–" if task is None else f"{task[key]:.2f}"


__all__ = ["COMPARED_ENCODERS", "compare_encoders", "comparison_table"]
