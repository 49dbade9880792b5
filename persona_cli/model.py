"""The paper's multi-task network and its checkpoint format.

A checkpoint is one `.safetensors` file: the weights as tensors, and everything needed to use them
(encoder name and dimension, label names, age scaling, what it was trained on) as JSON in the
safetensors header. Loading reads tensors and JSON only, so a checkpoint can never run code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from persona_cli import __version__
from persona_cli.errors import ModelLoadingError
from persona_cli.labels import EMOTIONS, GENDERS, TASKS

# where models are found and how they are named live in models_info.py, which needs no torch
from persona_cli.models_info import (  # noqa: F401 - re-exported: callers import them from here
    BUNDLED_MODELS,
    METADATA_KEY,
    bundled_model_path,
    model_file_name,
    resolve_model_path,
)
from persona_cli.normalization import input_width

HEADS = ("cnn", "fcn")


@dataclass
class ModelMetadata:
    """What a checkpoint says about itself; stored as JSON beside the weights."""

    encoder: str  # registry name of the embedding backend the model was trained on
    encoder_dim: int  # length of that backend's vectors
    # the encoder's revision when the model was trained (Encoder.revision; "" in models from before
    # persona recorded it): features of another revision are close, not the ones the model learnt
    encoder_revision: str = ""
    head: str = "cnn"  # "cnn" (the paper's conv + dense net) or "fcn" (dense layers only)
    emotions: list[str] = field(default_factory=lambda: list(EMOTIONS))
    genders: list[str] = field(default_factory=lambda: list(GENDERS))
    age_mean: float = 0.0  # the network predicts standardised age: years = z * age_std + age_mean
    age_std: float = 1.0
    normalization: str = "none"  # how features were normalised in training: none, corpus or speaker
    # softmax temperatures fitted on out-of-corpus predictions (calibration.py); 1.0: not calibrated
    emotion_temperature: float = 1.0
    gender_temperature: float = 1.0
    training: dict = field(default_factory=dict)  # data summary, recipe, cross-validated figures
    # the heads that saw at least one label in training (of "emotion", "gender", "age"); None in models
    # from before persona recorded it, whose heads all count as trained. An untrained head still
    # outputs numbers (its random initial weights'), which the predictor must not pass off as estimates.
    trained_heads: list[str] | None = None
    # shown in each output row's `model` column; "" (bundled and older models): the file's stem
    name: str = ""
    persona_version: str = __version__


class PersonaNet(nn.Module):
    """Shared trunk over one embedding, three heads: emotion (softmax), gender (softmax), age (linear).

    The "cnn" trunk follows the paper: the embedding is read as a 1-channel sequence by two
    Conv1d + MaxPool blocks, then dense layers of 200, 128 and 56 units. "fcn" drops the conv blocks.
    Inputs are standardised with the training set's feature mean and std, kept as buffers so they
    travel inside the checkpoint.
    """

    # declared for type checkers: the buffers are registered in __init__, and conv is None for "fcn"
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    conv: nn.Sequential | None

    def __init__(
        self,
        input_dim: int,
        head: str = "cnn",
        n_emotions: int = 6,
        n_genders: int = 2,
        conv_channels: tuple[int, int] = (16, 32),
        dropout: float = 0.3,
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {head!r}")
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_std", torch.ones(input_dim))
        if head == "cnn":
            first, second = conv_channels
            self.conv = nn.Sequential(
                nn.Conv1d(1, first, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool1d(2),
                nn.Conv1d(first, second, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool1d(2),
                nn.Flatten(),
            )
            trunk_input = second * (input_dim // 4)
        else:
            self.conv = None
            trunk_input = input_dim
        self.trunk = nn.Sequential(
            nn.Linear(trunk_input, 200),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(200, 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(128, 56),
            nn.ReLU(),
        )
        self.emotion = nn.Linear(56, n_emotions)
        self.gender = nn.Linear(56, n_genders)
        self.age = nn.Linear(56, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch, input_dim) -> emotion logits, gender logits, standardised age (batch,)."""
        return self.heads(self.shared(features))

    def shared(self, features: torch.Tensor) -> torch.Tensor:
        """The trunk's output, which all three heads read (and a training-time adversary may too)."""
        x = (features - self.feature_mean) / self.feature_std
        if self.conv is not None:
            x = self.conv(x.unsqueeze(1))
        return self.trunk(x)

    def heads(self, shared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.emotion(shared), self.gender(shared), self.age(shared).squeeze(1)


@dataclass
class Predictions:
    """Model outputs for a batch of files, as numpy arrays."""

    emotion_probs: np.ndarray  # (n, len(emotions)), rows sum to 1, after the model's temperature
    gender_probs: np.ndarray  # (n, len(genders))
    age_years: np.ndarray  # (n,)
    emotion_logits: np.ndarray  # (n, len(emotions)), before any temperature: what calibration fits
    gender_logits: np.ndarray  # (n, len(genders))


class PersonaModel:
    """A network with its metadata: what `persona predict` runs over a batch of embeddings."""

    def __init__(self, network: PersonaNet, metadata: ModelMetadata, name: str = "unsaved"):
        self.network = network.eval()
        self.metadata = metadata
        self.name = metadata.name or name  # shown in each output row's `model` column

    @property
    def untrained_heads(self) -> list[str]:
        """The heads that never saw a label in training (none for models that do not record it)."""
        trained = self.metadata.trained_heads
        return [] if trained is None else [task for task in TASKS if task not in trained]

    def to(self, device: str | torch.device) -> PersonaModel:
        self.network.to(device)
        return self

    @torch.inference_mode()
    def predict(self, embeddings: np.ndarray) -> Predictions:
        device = self.network.feature_mean.device
        emotion, gender, age_z = self.network(torch.as_tensor(embeddings, dtype=torch.float32, device=device))
        return Predictions(
            emotion_probs=torch.softmax(emotion / self.metadata.emotion_temperature, 1).cpu().numpy(),
            gender_probs=torch.softmax(gender / self.metadata.gender_temperature, 1).cpu().numpy(),
            age_years=(age_z * self.metadata.age_std + self.metadata.age_mean).cpu().numpy(),
            emotion_logits=emotion.cpu().numpy(),
            gender_logits=gender.cpu().numpy(),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, str(path), metadata={METADATA_KEY: json.dumps(dataclasses.asdict(self.metadata))})
        # safetensors creates the file owner-only (0600); a model is meant to be shared like any output
        path.chmod(0o666 & ~_current_umask())
        return path


def _current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def build_network(metadata: ModelMetadata) -> PersonaNet:
    return PersonaNet(
        input_width(metadata.encoder_dim, metadata.normalization),
        metadata.head,
        len(metadata.emotions),
        len(metadata.genders),
    )


def load_model(path: str | Path) -> PersonaModel:
    """Read a checkpoint (a path, or a bundled model's name); any problem becomes one ModelLoadingError line."""
    path = resolve_model_path(path)
    if not path.is_file():
        raise ModelLoadingError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as checkpoint:
            header = checkpoint.metadata() or {}
            state = {key: checkpoint.get_tensor(key) for key in checkpoint.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelLoadingError(f"not a readable persona checkpoint: {path} ({error})") from None
    if METADATA_KEY not in header:
        raise ModelLoadingError(f"not a persona checkpoint (no '{METADATA_KEY}' metadata): {path}")
    try:
        fields = json.loads(header[METADATA_KEY])
        if not isinstance(fields, dict):
            raise ValueError(f"metadata is a JSON {type(fields).__name__}, not an object")
        known = {f.name for f in dataclasses.fields(ModelMetadata)}
        metadata = ModelMetadata(**{k: v for k, v in fields.items() if k in known})
        network = build_network(metadata)
        network.load_state_dict(state)
    except (json.JSONDecodeError, TypeError, ValueError, RuntimeError) as error:
        raise ModelLoadingError(f"damaged persona checkpoint {path}: {str(error).splitlines()[0]}") from None
    return PersonaModel(network, metadata, name=path.stem)  # metadata.name, where set, wins
