"""What `persona train` and `persona eval` do: read corpora, embed (cached), cross-validate, report.

Kept apart from cli.py so scripts and tests can run an experiment without a command line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from persona_cli.corpora import LabelledClip, read_corpora, summarize
from persona_cli.embedding_cache import EmbeddingCache
from persona_cli.encoders import Encoder, load_encoder
from persona_cli.errors import ModelLoadingError, UsageError
from persona_cli.labels import EMOTIONS, GENDERS, MISSING
from persona_cli.metrics import markdown_table, metrics_report
from persona_cli.model import PersonaModel, model_file_name
from persona_cli.normalization import input_width, network_inputs
from persona_cli.pipeline import PredictOptions, resolve_device
from persona_cli.train import TrainConfig, Targets, cross_validate, fit, prediction_table, score

log = logging.getLogger("persona")


@dataclass
class LabelledFeatures:
    """Clips that embedded successfully, with their embeddings in the same order."""

    clips: list[LabelledClip]
    features: np.ndarray  # (n_clips, encoder dim)
    encoder: str
    encoder_revision: str = ""


def encoder_for(name: str, options: PredictOptions) -> Encoder:
    """The encoder called `name`, on the device and from the weights the options ask for."""
    return load_encoder(name, device=resolve_device(options.device), source=options.encoder_source)


def embed_corpora(specs: Sequence[str], encoder: Encoder, options: PredictOptions) -> LabelledFeatures:
    """Read every corpus, print what was read, and embed each clip once (reusing the on-disk cache)."""
    clips = read_corpora(specs)
    log.info("read %d labelled clips:\n%s", len(clips), summarize(clips))
    cache = EmbeddingCache(encoder, encoder_source=options.encoder_source)
    results = cache.embed([c.path for c in clips], options)
    log.info("%s embeddings: %d reused from cache, %d computed", encoder.name, cache.hits, cache.misses)
    failed = [(c, r.error) for c, r in zip(clips, results) if r.vector is None]
    for clip, error in failed[:10]:
        log.warning("skipping %s: %s", clip.path, error)
    if len(failed) > 10:
        log.warning("... and %d more clips that could not be embedded", len(failed) - 10)
    kept = [(c, r.vector) for c, r in zip(clips, results) if r.vector is not None]
    if not kept:
        raise UsageError("none of the clips could be embedded")
    return LabelledFeatures([c for c, _ in kept], np.stack([v for _, v in kept]), encoder.name, encoder.revision)


def normalize(data: LabelledFeatures, how: str) -> LabelledFeatures:
    """The same clips with the network inputs of a normalisation (normalization.network_inputs):
    features z-normalised per corpus, or per speaker beside the raw ones; `none` leaves them alone."""
    corpora = [c.corpus for c in data.clips]
    if how == "speaker":
        # speakers with too few clips to normalise (Common Voice's one or two) fall back to their corpus
        groups, fallback = [f"{c.corpus}/{c.speaker}" for c in data.clips], corpora
    else:
        groups, fallback = corpora, None
    return dataclasses.replace(data, features=network_inputs(data.features, how, groups, fallback))


def cross_corpus(data: LabelledFeatures, test_corpus: str, config: TrainConfig) -> tuple[dict, pd.DataFrame]:
    """Train on every corpus but `test_corpus`, score on it: how the model fares on unseen recordings."""
    held_out = np.array([c.corpus == test_corpus for c in data.clips])
    if not held_out.any():
        found = ", ".join(sorted({c.corpus for c in data.clips}))
        raise UsageError(f"--test-corpus {test_corpus}: no clips from that corpus (read: {found})")
    if held_out.all():
        raise UsageError(f"--test-corpus {test_corpus}: that is all the data; give other corpora to train on")
    train_part = np.flatnonzero(~held_out)
    trained = Targets.from_clips([data.clips[i] for i in train_part])
    model, _ = fit(data.features[train_part], trained, [data.clips[i].speaker for i in train_part], data.encoder, config)
    test_clips = [c for c in data.clips if c.corpus == test_corpus]
    table = prediction_table(model, data.features[held_out], test_clips)
    # a task the training corpora never label was not learned: leave it out of the report
    if (trained.emotion == MISSING).all():
        table["emotion_true"][:] = MISSING
    if (trained.gender == MISSING).all():
        table["gender_true"][:] = MISSING
    if np.isnan(trained.age).all():
        table["age_true"][:] = np.nan
    overall, per_corpus = score(table, np.array([c.corpus for c in test_clips]), model.metadata.age_mean)
    trained_on = ", ".join(sorted({data.clips[i].corpus for i in train_part}))
    protocol = f"cross-corpus: trained on {trained_on}, tested on {test_corpus} (no clip of it seen in training)"
    return metrics_report(overall, per_corpus, protocol=protocol), predictions_frame(test_clips, table)


def predictions_frame(clips: Sequence[LabelledClip], table: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-file true and predicted labels, as names, for predictions.csv and the plots."""

    def names(indices: np.ndarray, labels: Sequence[str]) -> list[str | None]:
        return [labels[i] if i != MISSING else None for i in indices]

    frame = pd.DataFrame({
        "path": [str(c.path) for c in clips],
        "corpus": [c.corpus for c in clips],
        "speaker": [c.speaker for c in clips],
        "emotion_true": names(table["emotion_true"], EMOTIONS),
        "emotion_pred": names(table["emotion_pred"], EMOTIONS),
        "gender_true": names(table["gender_true"], GENDERS),
        "gender_pred": names(table["gender_pred"], GENDERS),
        "age_true": table["age_true"],
        "age_pred": np.round(table["age_pred"], 1),
    })
    if "fold" in table:
        frame.insert(3, "fold", table["fold"])
    return frame


def train_final_model(data: LabelledFeatures, config: TrainConfig, summary: dict) -> PersonaModel:
    """One model on all the data (its early-stopping part still held out by speaker)."""
    model, _ = fit(data.features, Targets.from_clips(data.clips), [c.speaker for c in data.clips],
                   data.encoder, config, training_summary=summary)
    model.metadata.encoder_revision = data.encoder_revision
    return model


def data_summary(data: LabelledFeatures) -> dict:
    """What a model was trained on, for its metadata."""
    corpora = sorted({c.corpus for c in data.clips})
    return {
        "clips": len(data.clips),
        "speakers": len({c.speaker for c in data.clips}),
        "corpora": {name: sum(c.corpus == name for c in data.clips) for name in corpora},
        "labelled": {
            "emotion": sum(c.emotion is not None for c in data.clips),
            "gender": sum(c.gender is not None for c in data.clips),
            "age": sum(c.age is not None for c in data.clips),
        },
    }


def evaluate(model: PersonaModel, data: LabelledFeatures) -> tuple[dict, pd.DataFrame]:
    """Score a trained model on labelled data it was (presumably) not trained on."""
    expected = input_width(model.metadata.encoder_dim, model.metadata.normalization)
    if data.features.shape[1] != expected:
        raise ModelLoadingError(f"model expects {expected}-d inputs, data has {data.features.shape[1]}-d")
    table = prediction_table(model, data.features, data.clips)
    corpora = np.array([c.corpus for c in data.clips])
    # the trivial age baseline is the model's own training mean, the honest "predict the mean" rival
    overall, per_corpus = score(table, corpora, model.metadata.age_mean)
    protocol = f"evaluation of model {model.name} (encoder {model.metadata.encoder}) on the given data, no training"
    return metrics_report(overall, per_corpus, protocol=protocol), predictions_frame(data.clips, table)


def comparison_table(rows: Sequence[dict]) -> str:
    """Markdown in the shape of the paper's Table 1: one row per encoder x head."""
    lines = ["| Encoder | Head | Emotion acc (%) | Emotion UAR (%) | Gender acc (%) | Age RMSE (years) | Age MAE (years) |",
             "|---|---|---|---|---|---|---|"]
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


def compare(specs: Sequence[str], encoders: Sequence[str], heads: Sequence[str], folds: int, split: str,
            options: PredictOptions, config: TrainConfig) -> list[dict]:
    """Cross-validate every encoder x head; encoders whose weights cannot be loaded are skipped."""
    rows = []
    for encoder_name in encoders:
        try:
            data = embed_corpora(specs, encoder_for(encoder_name, options), options)
        except ModelLoadingError as error:
            log.warning("skipping encoder %s: %s", encoder_name, error)
            continue
        for head in heads:
            head_config = dataclasses.replace(config, head=head)
            result = cross_validate(data.features, data.clips, encoder_name, folds, split, head_config)
            rows.append({"encoder": encoder_name, "head": head, "report": result.report})
    return rows


def headline_figures(report: dict) -> dict:
    """The scalar metrics of a CV report (no confusion matrices), to store in a model's metadata."""

    def scalars(tasks: dict) -> dict:
        return {task: {k: v for k, v in values.items() if isinstance(v, (int, float))} for task, values in tasks.items()}

    return {"protocol": report["protocol"], "overall": scalars(report["overall"]),
            "per_corpus": {name: scalars(tasks) for name, tasks in report["per_corpus"].items()}}


def write_model(model: PersonaModel, out_dir: Path) -> Path:
    return model.save(Path(out_dir) / model_file_name(model.metadata.encoder, model.metadata.normalization))


__all__ = ["LabelledFeatures", "compare", "comparison_table", "cross_corpus", "data_summary", "embed_corpora", "encoder_for",
           "evaluate", "headline_figures", "normalize", "predictions_frame", "train_final_model", "write_model"]
