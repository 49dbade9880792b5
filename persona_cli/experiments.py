"""What `persona train` and `persona eval` do: read corpora, embed (cached), cross-validate, report.

`train()` and `evaluate()` are the Python API for both commands and return the metrics that
`metrics.json` holds; the helpers below them let scripts run one step of an experiment.
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
from persona_cli.cross_validation import (
    checked_folds,
    cross_validate,
    emotion_shares,
    forget_untrained_tasks,
    prediction_table,
    score,
)
from persona_cli.embedding_cache import EmbeddingCache
from persona_cli.encoders import DEFAULT_ENCODER, Encoder, check_installed
from persona_cli.encoders.ge2e import float32_lstm
from persona_cli.errors import ModelLoadingError, UsageError
from persona_cli.labels import WEAK_NEUTRAL
from persona_cli.metrics import metrics_report
from persona_cli.model import PersonaModel, model_file_name
from persona_cli.normalization import check_normalization, input_width, network_inputs, training_groups
from persona_cli.options import Head, PredictOptions, Split, plain
from persona_cli.predictor import Predictor, build_encoder
from persona_cli.report import check_output_folder
from persona_cli.run_tables import data_summary, headline_figures, predictions_frame, untested_report
from persona_cli.training import PAPER_RECIPE, Targets, TrainConfig, TrainingHistory, fit

log = logging.getLogger("persona")


@dataclass
class LabelledFeatures:
    """Clips that embedded successfully, with their embeddings in the same order."""

    clips: list[LabelledClip]
    features: np.ndarray  # (n_clips, encoder dim)
    encoder: str
    encoder_revision: str = ""


def train(
    data: Sequence[str],
    *,
    folds: int = 5,
    split: str = "speaker",
    encoder: str = DEFAULT_ENCODER,
    encoder_source: str | None = None,
    head: str | None = None,
    epochs: int = 20,
    paper_recipe: bool = False,
    seed: int = 0,
    normalize: str = "none",
    test_corpus: str | None = None,
    weak_neutral: Sequence[str] = (),
    out: str | Path | None = None,
    overwrite: bool = False,
    name: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    command: str | None = None,
) -> dict:
    """Cross-validate the multi-task model on labelled corpora and return the metrics (what
    `metrics.json` holds; with `folds` < 2 and no `test_corpus`, no scores: only the protocol and
    the training data).

    `data`: corpus folders or manifest CSVs (`NAME:PATH` forces a reader); `split`: speaker or
    random folds; `head`: fcn or cnn (default: the recipe's); `paper_recipe`: the paper's optimiser
    and early stopping; `normalize`: none, corpus or speaker; `test_corpus`: train on the other
    corpora and score on this one instead of cross-validating; `weak_neutral`: corpora whose clips
    without an emotion label train as neutral (read speech); `out`: a folder for the report
    (metrics.json, report.md, plots) and, unless `test_corpus`, a final model trained on all the data;
    `overwrite`: write into a non-empty `out`; `name`: the final model's name, shown in the `model`
    column of its predictions (default: the name of `out`).
    """
    split, normalize, head = plain(split), plain(normalize), plain(head)
    if split not in tuple(Split):
        raise UsageError(f"--split must be one of {', '.join(s.value for s in Split)}, not {split!r}")
    config = training_recipe(head=head, epochs=epochs, seed=seed, normalize=normalize, paper_recipe=paper_recipe)
    check_installed(encoder)  # a missing extra before the corpora are read
    options = PredictOptions(encoder=encoder, encoder_source=encoder_source, device=device, batch_size=batch_size)
    check_output_folder(out, overwrite)
    cross_validating = not test_corpus and (folds >= 2 or split == "corpus")  # leave-one-corpus-out ignores --folds
    if not test_corpus and not cross_validating and out is None:
        raise UsageError(
            f"--folds {folds} without -o would train a model and keep nothing: add -o DIR to save it, "
            "or use --folds 2 or more to cross-validate"
        )
    clips = read_corpora(data)
    if cross_validating:
        checked_folds(clips, folds, split, seed)
    check_weak_neutral(weak_neutral, {c.corpus for c in clips})
    labelled = embed_clips(clips, build_encoder(options), options)
    labelled = normalize_features(weakly_neutral(labelled, weak_neutral), normalize)
    if test_corpus:
        report, predictions = cross_corpus(labelled, test_corpus, config)
        report["normalization"] = normalize
        _write_report(
            out,
            report,
            predictions,
            title=f"persona train: {encoder} + {config.head}, tested on {test_corpus}",
            command=command,
        )
        return report
    summary = {**data_summary(labelled.clips), "recipe": dataclasses.asdict(config), "command": command}
    title = f"persona train: {encoder} + {config.head}"
    if not cross_validating:  # out is set: checked above
        model, history = _train_final(labelled, config, summary)
        report = untested_report(folds, summary)
        log.info("%s", report["protocol"])
        _write_report(out, report, None, [history], title=title, command=command)
    else:
        result = cross_validate(labelled.features, labelled.clips, encoder, folds, split, config)
        report = {**result.report, "training_data": data_summary(labelled.clips)}
        _write_report(
            out,
            report,
            predictions_frame(labelled.clips, result.predictions),
            result.histories,
            title=title,
            command=command,
        )
        if out is None:
            return report
        summary["cross_validation"] = headline_figures(report)
        model, _ = _train_final(labelled, config, summary, result.temperatures)
    assert out is not None
    model.metadata.name = model.name = name or Path(out).resolve().name
    path = write_model(model, Path(out))
    log.info("final model %r (trained on all %d clips) saved to %s", model.name, len(labelled.clips), path)
    return report


def training_recipe(
    *, head: str | None, epochs: int = 20, seed: int = 0, normalize: str = "none", paper_recipe: bool = False
) -> TrainConfig:
    """The training recipe the settings ask for, checked."""
    recipe = PAPER_RECIPE if paper_recipe else TrainConfig()
    head = head or recipe.head
    if head not in tuple(Head):
        raise UsageError(f"--head must be cnn or fcn, not {head!r}")
    check_normalization(normalize)
    return dataclasses.replace(recipe, head=head, epochs=epochs, seed=seed, normalization=normalize)


def evaluate(
    data: Sequence[str],
    *,
    model: str | Path | None = None,
    encoder_source: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
    batch_size: int = 32,
    command: str | None = None,
) -> dict:
    """Score a trained model (default: the bundled one) on labelled corpora and return the metrics
    (what `metrics.json` holds); `out`: a folder for the report, plots and per-file predictions
    (`overwrite`: even if it is not empty)."""
    check_output_folder(out, overwrite)
    predictor = Predictor(model, encoder_source=encoder_source, device=device, batch_size=batch_size)
    labelled = normalize_features(embed_corpora(data, predictor.encoder, predictor.options), predictor.normalization)
    report, predictions = score_model(predictor.model.to("cpu"), labelled)
    _write_report(out, report, predictions, title=f"persona eval: {predictor.model.name}", command=command)
    return report


def _write_report(
    out: str | Path | None,
    report: dict,
    predictions: pd.DataFrame,
    histories: Sequence[TrainingHistory] = (),
    *,
    title: str,
    command: str | None,
) -> None:
    if out is not None:
        from persona_cli.report import write_report

        write_report(Path(out), report, predictions, histories, command=command, title=title)


def embed_corpora(specs: Sequence[str], encoder: Encoder, options: PredictOptions) -> LabelledFeatures:
    """Read every corpus and embed each clip once (reusing the on-disk cache)."""
    return embed_clips(read_corpora(specs), encoder, options)


def embed_clips(clips: Sequence[LabelledClip], encoder: Encoder, options: PredictOptions) -> LabelledFeatures:
    """Print what was read, and embed each clip once (reusing the on-disk cache). GE2E runs in float32
    here on every CPU, so that what is trained and cross-validated does not depend on the machine."""
    log.info("read %d labelled clips:\n%s", len(clips), summarize(clips))
    encoder = float32_lstm(encoder)
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


def check_weak_neutral(names: Sequence[str], corpora_read: set[str]) -> None:
    """A usage error naming the --weak-neutral corpora of which no clip was read."""
    unknown = set(names) - corpora_read
    if unknown:
        raise UsageError(f"--weak-neutral {', '.join(sorted(unknown))}: no clips of that corpus")


def weakly_neutral(data: LabelledFeatures, corpora: Sequence[str]) -> LabelledFeatures:
    """The clips of `corpora` that carry no emotion label, labelled neutral: read speech (audiobooks,
    read prompts) is overwhelmingly neutral, and without such examples the emotion head has only acted
    neutral to learn from, so ordinary speech comes out as whatever it resembles most."""
    check_weak_neutral(corpora, {c.corpus for c in data.clips})
    clips = [
        dataclasses.replace(c, emotion="neutral", emotion_raw=WEAK_NEUTRAL)
        if c.corpus in corpora and c.emotion is None and c.emotion_raw is None
        else c
        for c in data.clips
    ]
    return dataclasses.replace(data, clips=clips)


def normalize_features(data: LabelledFeatures, how: str) -> LabelledFeatures:
    """The same clips with the network inputs of a normalisation (normalization.network_inputs):
    features z-normalised per corpus, or per speaker beside the raw ones; `none` leaves them alone."""
    groups, fallback = training_groups([c.corpus for c in data.clips], [c.speaker for c in data.clips], how)
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
    model, _ = fit(
        data.features[train_part], trained, [data.clips[i].speaker for i in train_part], data.encoder, config
    )
    test_clips = [c for c in data.clips if c.corpus == test_corpus]
    table = prediction_table(model, data.features[held_out], test_clips)
    forget_untrained_tasks(table, trained)
    corpora = np.array([c.corpus for c in test_clips])
    overall, per_corpus = score(table, corpora, model.metadata.age_mean)
    trained_on = ", ".join(sorted({data.clips[i].corpus for i in train_part}))
    protocol = f"cross-corpus: trained on {trained_on}, tested on {test_corpus} (no clip of it seen in training)"
    report = metrics_report(overall, per_corpus, protocol=protocol)
    report["emotion_predicted"] = emotion_shares(table, corpora)
    return report, predictions_frame(test_clips, table)


def train_final_model(
    data: LabelledFeatures, config: TrainConfig, summary: dict, temperatures: dict[str, float] | None = None
) -> PersonaModel:
    """One model on all the data (its early-stopping part still held out by speaker), with the
    softmax temperatures leave-one-corpus-out fitted, if any."""
    return _train_final(data, config, summary, temperatures)[0]


def _train_final(
    data: LabelledFeatures, config: TrainConfig, summary: dict, temperatures: dict[str, float] | None = None
) -> tuple[PersonaModel, TrainingHistory]:
    model, history = fit(
        data.features,
        Targets.from_clips(data.clips),
        [c.speaker for c in data.clips],
        data.encoder,
        config,
        training_summary=summary,
    )
    model.metadata.encoder_revision = data.encoder_revision
    model.metadata.emotion_temperature = (temperatures or {}).get("emotion", 1.0)
    model.metadata.gender_temperature = (temperatures or {}).get("gender", 1.0)
    return model, history


def score_model(model: PersonaModel, data: LabelledFeatures) -> tuple[dict, pd.DataFrame]:
    """Score a trained model on labelled data it was (presumably) not trained on."""
    expected = input_width(model.metadata.encoder_dim, model.metadata.normalization)
    if data.features.shape[1] != expected:
        raise ModelLoadingError(f"model expects {expected}-d inputs, data has {data.features.shape[1]}-d")
    table = prediction_table(model, data.features, data.clips)
    corpora = np.array([c.corpus for c in data.clips])
    # prediction_table leaves such heads' columns empty: their outputs are their initial weights' noise
    warnings = [f"{task}: this model saw no {task} labels in training; not scored" for task in model.untrained_heads]
    # the trivial age baseline is the model's own training mean, the honest "predict the mean" rival
    overall, per_corpus = score(table, corpora, model.metadata.age_mean)
    protocol = f"evaluation of model {model.name} (encoder {model.metadata.encoder}) on the given data, no training"
    report = metrics_report(overall, per_corpus, protocol=protocol)
    report["emotion_predicted"] = emotion_shares(table, corpora)
    # corpora are matched by reader name: another copy of a corpus the model learnt is still that corpus
    seen = sorted(set(model.metadata.training.get("corpora", {})) & set(corpora))
    report["in_training_data"] = seen
    if seen:
        warnings.insert(0, f"the model was trained on {', '.join(seen)}: these figures are in-corpus, not a test")
    for warning in warnings:
        log.warning("%s", warning)
    if warnings:
        report["warnings"] = warnings
    return report, predictions_frame(data.clips, table)


def write_model(model: PersonaModel, out_dir: Path) -> Path:
    return model.save(Path(out_dir) / model_file_name(model.metadata.encoder, model.metadata.normalization))


__all__ = [
    "LabelledFeatures",
    "cross_corpus",
    "data_summary",
    "embed_corpora",
    "evaluate",
    "headline_figures",
    "normalize_features",
    "predictions_frame",
    "score_model",
    "train",
    "train_final_model",
    "training_recipe",
    "write_model",
]
