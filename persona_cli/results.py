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


@dataclass(frozen=True)
class Segment:
    """One stretch of one speaker's speech in a recording (`--per segment`): its emotion, and its
    speaker's gender and age (read from all of that speaker's speech)."""

    path: str | None  # the recording; None for a waveform given in memory
    segment: int | None  # 1, 2, ... in time order within the recording
    start_s: float | None  # from the start of the recording
    end_s: float | None
    speaker: str | None  # S1, S2, ... in order of first speech; stable within one recording
    emotion: str | None  # of this stretch of speech
    emotion_confidence: float | None
    prob_anger: float | None
    prob_disgust: float | None
    prob_fear: float | None
    prob_happy: float | None
    prob_neutral: float | None
    prob_sad: float | None
    gender: str | None  # the speaker's
    gender_confidence: float | None
    age: float | None  # the speaker's
    encoder: str
    model: str
    normalization: str
    error: str | None = None  # why the recording has no segments (then the only row of its path)
    warning: str | None = None

    def row(self) -> dict[str, Any]:
        """The output row: one value per column of SEGMENT_SCHEMA."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SpeakerSummary:
    """One speaker of a recording (`--per speaker`): how much they speak, and when, their gender and
    age read from all their speech together, and the share of their speech in each emotion."""

    path: str | None
    speaker: str | None  # S1, S2, ... as in the recording's segments
    speech_s: float | None  # seconds of this speaker's speech
    n_segments: int | None
    first_s: float | None  # start of their first segment
    last_s: float | None  # end of their last segment
    gender: str | None
    gender_confidence: float | None
    age: float | None
    emotion: str | None  # the emotion of most of their speech
    share_anger: float | None  # shares of their speech time, summing to 1 over the segments with an emotion
    share_disgust: float | None
    share_fear: float | None
    share_happy: float | None
    share_neutral: float | None
    share_sad: float | None
    encoder: str
    model: str
    normalization: str
    error: str | None = None
    warning: str | None = None

    def row(self) -> dict[str, Any]:
        """The output row: one value per column of SPEAKER_SCHEMA."""
        return dataclasses.asdict(self)


# column types by field annotation (optional or not: every column is nullable)
_ARROW_TYPES = {"str": pa.string(), "float": pa.float64(), "int": pa.int64(), "np.ndarray": pa.list_(pa.float32())}


def _schema(result_type: type) -> pa.Schema:
    return pa.schema(
        [(f.name, _ARROW_TYPES[str(f.type).removesuffix(" | None")]) for f in dataclasses.fields(result_type)]
    )


PREDICTION_SCHEMA = _schema(Prediction)
EMBEDDING_SCHEMA = _schema(Embedding)
SEGMENT_SCHEMA = _schema(Segment)
SPEAKER_SCHEMA = _schema(SpeakerSummary)

__all__ = [
    "EMBEDDING_SCHEMA",
    "PREDICTION_SCHEMA",
    "SEGMENT_SCHEMA",
    "SPEAKER_SCHEMA",
    "Embedding",
    "Prediction",
    "Segment",
    "SpeakerSummary",
]
