"""The settings of a run, and the named choices the command line offers for them.

Choices are `str` enums (as pyannote's CLI does) so that Typer checks them and lists them in
`--help`; library callers may pass the plain strings, which compare equal to the members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from persona_cli.errors import UsageError


class Normalization(str, Enum):
    """How features are z-normalised before the network sees them (normalization.py)."""

    none = "none"
    corpus = "corpus"  # over every file of the run (or of the training corpus)
    speaker = "speaker"  # over each speaker's files, beside the raw features


class Split(str, Enum):
    """How cross-validation folds are drawn."""

    speaker = "speaker"  # no speaker in both train and test: the honest protocol
    corpus = "corpus"  # leave-one-corpus-out: how the model fares on recordings unlike its training
    random = "random"  # the paper's protocol; every report says so


class Head(str, Enum):
    """The network on top of the embeddings (model.PersonaNet)."""

    fcn = "fcn"  # dense layers only
    cnn = "cnn"  # the paper's conv + dense net


class Per(str, Enum):
    """What one row of `persona predict` describes."""

    file = "file"  # a whole recording
    speaker = "speaker"  # one speaker of a recording (conversation.py)
    segment = "segment"  # a few seconds of one speaker's speech


@dataclass(frozen=True)
class SpeakerCount:
    """What the caller knows of the number of speakers in each recording (`--per speaker|segment`)."""

    exactly: int | None = None  # --speakers
    at_least: int = 1  # --min-speakers
    at_most: int | None = None  # --max-speakers

    def __post_init__(self) -> None:
        for flag, value in (
            ("speakers", self.exactly),
            ("min-speakers", self.at_least),
            ("max-speakers", self.at_most),
        ):
            if value is not None and value < 1:
                raise UsageError(f"--{flag} must be at least 1, got {value}")
        if self.at_most is not None and self.at_least > self.at_most:
            raise UsageError(f"--min-speakers {self.at_least} is more than --max-speakers {self.at_most}")

    @property
    def given(self) -> bool:
        return self != SpeakerCount()


class Engine(str, Enum):
    """Where `persona predict` runs."""

    local = "local"  # this machine, a pool of threads
    ray = "ray"  # a Ray cluster through Ray Data (ray_engine.py)


def plain(choice):
    """A choice as its plain string (`Normalization.corpus` -> "corpus"), whatever the caller passed:
    file names and messages are built from it, and a str enum would format as its member name."""
    return choice.value if isinstance(choice, Enum) else choice


@dataclass
class PredictOptions:
    """Settings for predicting and embedding, shared by the Python API and `persona predict/embed`."""

    encoder: str | None = None  # None: the model's encoder (or DEFAULT_ENCODER when no model is named)
    encoder_source: str | None = None  # hub id or local folder for the encoder's weights
    model: str | None = None  # checkpoint path or a bundled model's name; None: the bundled model for the encoder
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 32  # chunks (of up to chunk_seconds each) per encoder forward call
    chunk_seconds: float = 30.0  # long files are embedded in windows this long, then pooled
    # at most this much audio in one worker's group of short sources (without workers: an encoder
    # call runs once this much is waiting); None: batch_size of them, however long. What a job holds
    # while the network runs follows its audio, so this bounds it
    group_seconds: float | None = None
    min_seconds: float = 0.5  # shorter audio is an error: too little speech to characterise
    workers: int | None = None  # threads that each decode and embed groups of files (None: one per core; 0: none)
    processes: bool = False  # the workers are processes forked from this one instead of threads (CPU only)
    normalization: str | None = None  # none, corpus or speaker; None: what the model was trained with
    half: bool = False  # run the encoder network in float16 (for GPUs; encoders.HALF_PRECISION only)
    # speaker per absolute file or folder path, from a --files-from CSV: the groups of `speaker`
    # normalisation (files it does not cover are grouped by their parent folder)
    speakers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.normalization = plain(self.normalization)


__all__ = ["Engine", "Head", "Normalization", "Per", "PredictOptions", "SpeakerCount", "Split", "plain"]
