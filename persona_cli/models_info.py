"""Persona models found by name or path, and described from their own metadata (`persona models`).

A checkpoint's metadata is JSON in its safetensors header (model.py), so describing a model reads a
few kilobytes and needs neither torch nor the weights. `--model` finds a model as whisper's
`load_model` does: a path that exists wins; otherwise a bundled model's name, with or without
`.safetensors`; anything else is one line naming the bundled models.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from safetensors import SafetensorError, safe_open

from persona_cli.encoders import DEFAULT_ENCODER, encoder_slug
from persona_cli.errors import ModelLoadingError
from persona_cli.labels import TASKS
from persona_cli.metrics import markdown_table

BUNDLED_MODELS = Path(__file__).parent / "models"
METADATA_KEY = "persona"
SUFFIX = ".safetensors"


def model_file_name(encoder: str, normalization: str = "none") -> str:
    """`persona-ENCODER[-NORMALIZATION].safetensors`: how trained and bundled models are named (an
    `hf:` encoder's name is shortened to a safe file name, `encoder_slug`)."""
    suffix = "" if normalization == "none" else f"-{normalization}"
    return f"persona-{encoder_slug(encoder)}{suffix}{SUFFIX}"


def bundled_model_path(encoder: str, normalization: str = "none") -> Path:
    """Where the model shipped for `encoder` and `normalization` lives (not every pair has one)."""
    return BUNDLED_MODELS / model_file_name(encoder, normalization)


def bundled_model_names() -> list[str]:
    """The names `--model` accepts for the models shipped with persona."""
    return sorted(path.stem for path in BUNDLED_MODELS.glob(f"*{SUFFIX}"))


def resolve_model_path(model: str | PathLike) -> Path:
    """The checkpoint `model` names: a path that exists, else a bundled model called `model` (with or
    without `.safetensors`). A path that does not exist is returned for load_model to report; a bare
    name that is neither a file here nor a bundled model is a ModelLoadingError listing the names."""
    path = Path(model).expanduser()
    if path.exists() or len(path.parts) != 1:
        return path
    bundled = BUNDLED_MODELS / (path.name if path.name.endswith(SUFFIX) else path.name + SUFFIX)
    if bundled.is_file():
        return bundled
    raise ModelLoadingError(
        f"model file not found: {model}, and no bundled model has that name "
        f"(bundled: {', '.join(bundled_model_names()) or 'none'}; `persona models` describes them)"
    )


@dataclass(frozen=True)
class ModelInfo:
    """A checkpoint's description of itself, as `persona models` shows it."""

    name: str  # the `model` column of its predictions: the name set at training, else the file's stem
    path: Path
    bundled: bool  # shipped with persona: `--model NAME` finds it
    default: bool  # what predict and eval use without --model, --encoder or --normalize
    encoder: str  # the embedding backend it was trained on
    head: str  # fcn or cnn
    normalization: str  # none, corpus or speaker
    calibrated: bool  # softmax temperatures fitted on out-of-corpus predictions
    trained_heads: list[str] | None  # the tasks that had labels in training (None: older models, all)
    persona_version: str  # the persona that trained it
    # as stored at training: clips, speakers, corpora (clips each), labelled (clips per task), recipe,
    # command and cross_validation (the headline figures); empty for a model saved without it
    training: dict = field(default_factory=dict)

    @property
    def figures(self) -> dict | None:
        """The cross-validated figures stored with the model (metrics.headline_figures), if any."""
        return self.training.get("cross_validation") or None


def read_model_info(model: str | PathLike) -> ModelInfo:
    """The metadata of the checkpoint `model` names (a path or a bundled model's name)."""
    path = resolve_model_path(model)
    if not path.is_file():
        raise ModelLoadingError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as checkpoint:
            header = checkpoint.metadata() or {}
        stored = json.loads(header[METADATA_KEY])
        if not isinstance(stored, dict):
            raise ValueError(f"metadata is a JSON {type(stored).__name__}, not an object")
    except KeyError:
        raise ModelLoadingError(f"not a persona checkpoint (no '{METADATA_KEY}' metadata): {path}") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelLoadingError(f"not a readable persona checkpoint: {path} ({error})") from None
    resolved = path.resolve()
    return ModelInfo(
        name=str(stored.get("name") or path.stem),
        path=path,
        bundled=resolved.parent == BUNDLED_MODELS.resolve(),
        default=resolved == bundled_model_path(DEFAULT_ENCODER).resolve(),
        encoder=str(stored.get("encoder", "?")),
        head=str(stored.get("head", "?")),
        normalization=str(stored.get("normalization", "none")),
        calibrated=stored.get("emotion_temperature", 1.0) != 1.0 or stored.get("gender_temperature", 1.0) != 1.0,
        trained_heads=stored.get("trained_heads"),
        persona_version=str(stored.get("persona_version", "?")),
        training=stored.get("training") or {},
    )


def bundled_models() -> list[ModelInfo]:
    """The models shipped with persona, the default first."""
    models = [read_model_info(BUNDLED_MODELS / f"{name}{SUFFIX}") for name in bundled_model_names()]
    return sorted(models, key=lambda info: (not info.default, info.name))


def describe_models(models: Sequence[str | PathLike] | None = None) -> str:
    """`persona models`: the bundled models in short, or each model given in full (with its
    per-corpus figures and the command that trained it)."""
    if models:
        return "\n\n".join(describe_model(read_model_info(model), full=True) for model in models)
    found = bundled_models()
    if not found:
        return f"no bundled models in {BUNDLED_MODELS}"
    listing = "\n\n".join(describe_model(info) for info in found)
    return f"{listing}\n\n`persona models NAME` shows a model's per-corpus figures; `--model NAME` picks it."


def describe_model(info: ModelInfo, *, full: bool = False) -> str:
    """A few labelled lines about one model; with `full`, also its per-corpus table and training command."""
    training, figures = info.training, info.figures
    rows = [
        ("file", str(info.path)),
        ("picked by", _picked_by(info)),
        ("encoder", f"{info.encoder}, {info.head} head"),
        ("normalisation", info.normalization),
        ("trained on", _corpora(training)),
        ("validated", figures["protocol"] if figures else "no cross-validated figures stored with this model"),
    ]
    if figures:
        rows.append(("overall", _headline(figures.get("overall", {}))))
    if info.trained_heads is not None and set(info.trained_heads) != set(TASKS):
        rows.append(("predicts", ", ".join(info.trained_heads) + " (the other heads had no labels in training)"))
    rows.append(("calibrated", "yes: temperatures fitted on held-out corpora" if info.calibrated else "no"))
    if full:
        labelled = ", ".join(f"{task} {count}" for task, count in training.get("labelled", {}).items())
        rows.append(("labelled clips", labelled or "not recorded"))
        rows.append(("trained with", training.get("command") or "not recorded"))
        rows.append(("persona", info.persona_version))
    lines = [info.name + ("  (the default)" if info.default else "")]
    for label, value in rows:
        indent = f"  {label + ':':<17}"
        lines.append(
            textwrap.fill(
                value, 100, initial_indent=indent, subsequent_indent=" " * len(indent), break_on_hyphens=False
            )
        )
    if full and figures and figures.get("per_corpus"):
        lines += ["", markdown_table(figures).rstrip()]
    return "\n".join(lines)


def _picked_by(info: ModelInfo) -> str:
    if not info.bundled:
        return f"--model {info.path}"
    flags = []
    # predict picks the bundled model named for its encoder and normalisation (predictor._load_model)
    if info.path.name == model_file_name(info.encoder, info.normalization):
        flags += [] if info.encoder == DEFAULT_ENCODER else [f"--encoder {info.encoder}"]
        flags += [] if info.normalization == "none" else [f"--normalize {info.normalization}"]
    by_name = f"--model {info.name}"
    if info.default:
        return f"default (or {by_name})"
    return f"{' '.join(flags)} (or {by_name})" if flags else by_name


def _corpora(training: dict) -> str:
    corpora = training.get("corpora") or {}
    if not corpora:
        return "not recorded"
    listed = ", ".join(f"{name} {clips}" for name, clips in corpora.items())
    return (
        f"{training.get('clips', '?')} clips of {training.get('speakers', '?')} speakers from "
        f"{len(corpora)} corpora: {listed}"
    )


def _headline(overall: dict) -> str:
    """The overall figures in words: emotion accuracy and UAR, gender accuracy, age MAE against guessing the mean."""
    parts = []
    if emotion := overall.get("emotion"):
        parts.append(f"emotion accuracy {_pct(emotion, 'accuracy')}, UAR {_pct(emotion, 'uar')}")
    if gender := overall.get("gender"):
        parts.append(f"gender accuracy {_pct(gender, 'accuracy')}")
    if (age := overall.get("age")) and "mae" in age:
        baseline = f" (always guessing the training mean: {age['baseline_mae']:.1f})" if "baseline_mae" in age else ""
        parts.append(f"age MAE {age['mae']:.1f} years{baseline}")
    return "; ".join(parts) or "none stored"


def _pct(task: dict, key: str) -> str:
    return f"{100 * task[key]:.1f} %" if key in task else "?"


__all__ = [
    "BUNDLED_MODELS",
    "METADATA_KEY",
    "ModelInfo",
    "bundled_model_names",
    "bundled_model_path",
    "bundled_models",
    "describe_model",
    "describe_models",
    "model_file_name",
    "read_model_info",
    "resolve_model_path",
]
