"""What persona returns: one frozen dataclass per output row, and the table schemas derived from them.

The fields are the output columns, in order. The writers take their rows from `row()`, and the
Arrow schemas below are built from the fields, so the Python API and the CSV/JSONL/Parquet files
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from persona_cli.labels import EMOTIONS


@dataclass(frozen=True)
class Prediction:
    """One audio file's (or waveform's) emotion, gender and age, or why there are none."""

    path: str | None  # the input file as given (printable); None for a waveform given in memory
    duration_s: float | None  # decoded length in seconds
    emotion: str | None  # most likely of anger, disgust, fear, happy, neutral, sad
    emotion_confidence: float | None  # its probability
    prob_anger: float | None  # the six emotion probabilities, which sum to 1
    prob_disgust: float | None
    prob_fear: float | None
    prob_happy: float | None
    prob_neutral: float | None
    prob_sad: float | None
    gender: str | None  # female or male: the speaker's voice, as the training corpora label it
    gender_confidence: float | None  # its probability
    age: float | None  # estimated age in years
    encoder: str  # the embedding backend that produced the row
    model: str  # the model checkpoint that produced the row
    normalization: str  # none, corpus or speaker: how the features were normalised
    error: str | None = None  # why there are no predictions (`not an audio file`, `too short: ...`)
    warning: str | None = None  # why the predictions may be unreliable (`silent`, `clipped: ...`)

    @property
    def emotion_probabilities(self) -> dict[str, float | None]:
        """The six emotion probabilities by name."""
        return {emotion: getattr(self, f"prob_{emotion}") for emotion in EMOTIONS}

    def row(self) -> dict[str, Any]:
        """The output row: one value per column of PREDICTION_SCHEMA."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class Embedding:
    """One audio file's (or waveform's) embedding vector, or why there is none."""

    path: str | None  # the input file as given (printable); None for a waveform given in memory
    duration_s: float | None  # decoded length in seconds
    encoder: str  # the embedding backend
    vector: np.ndarray | None  # float32 embedding; None when the file failed
    error: str | None = None  # why there is no vector

    def row(self) -> dict[str, Any]:
        """The output row: one value per column of EMBEDDING_SCHEMA (the vector as a list of floats)."""
        vector = None if self.vector is None else self.vector.astype(np.float32).tolist()
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "vector": vector}


# column types by field annotation (optional or not: every column is nullable)
_ARROW_TYPES = {"str": pa.string(), "float": pa.float64(), "np.ndarray": pa.list_(pa.float32())}


def _schema(result_type: type) -> pa.Schema:
    return pa.schema(
        [(f.name, _ARROW_TYPES[str(f.type).removesuffix(" | None")]) for f in dataclasses.fields(result_type)]
    )


PREDICTION_SCHEMA = _schema(Prediction)
EMBEDDING_SCHEMA = _schema(Embedding)

__all__ = ["EMBEDDING_SCHEMA", "PREDICTION_SCHEMA", "Embedding", "Prediction"]
