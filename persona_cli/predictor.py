"""The Python API for prediction: `Predictor` loads an encoder and a model once and predicts files or
waveforms; `Embedder` does the same for the embeddings alone.

    import persona_cli as persona

    predictor = persona.Predictor()  # the bundled default model, on a GPU when there is one
    for prediction in predictor.predict_files(["a.wav", "b.flac"]):
        print(prediction.path, prediction.emotion, prediction.gender, prediction.age)

`persona predict`, `persona embed` and the Ray engine are built on these classes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import TypeVar

import numpy as np

from persona_cli import runtime
from persona_cli.audio import display_path
from persona_cli.conversation import ConversationPredictor
from persona_cli.embedding import EmbeddingResult, Progress, Waveform, batched, embed_files
from persona_cli.encoders import CHOICES, DEFAULT_ENCODER, Encoder, check_installed, is_encoder_name, load_encoder
from persona_cli.errors import ModelLoadingError, UsageError
from persona_cli.labels import EMOTIONS
from persona_cli.model import PersonaModel, bundled_model_path, load_model
from persona_cli.models_info import resolve_model_path
from persona_cli.normalization import MIN_GROUP_FILES, check_prediction_groups, network_inputs, prediction_groups
from persona_cli.options import PredictOptions, SpeakerCount
from persona_cli.results import Embedding, Prediction, Segment, SpeakerSummary

log = logging.getLogger("persona")

_Self = TypeVar("_Self", bound="Embedder")

# Seconds of speech (speech.py) below which a file is an error row, `no speech detected`, and below
# which its predictions carry a `little speech` warning. Chosen by measurement (docs/measurements.md,
# "Speech detection"): every real clip of the corpora in ../shared/data holds more than
# NO_SPEECH_SECONDS, and generated noise, tones, hum and synthesised music hold none. The warning
# matches PredictOptions.min_seconds, the shortest audio predicted at all.
NO_SPEECH_SECONDS = 0.2
LITTLE_SPEECH_SECONDS = 0.5


def build_encoder(options: PredictOptions, name: str | None = None) -> Encoder:
    """The encoder `name` (default: options.encoder) on the options' device, from their weights: the
    one place an encoder is built from settings, for predict, embed, train and eval alike."""
    name = name or options.encoder or DEFAULT_ENCODER
    device = runtime.resolve_device(options.device)
    return load_encoder(name, device=device, source=options.encoder_source, half=options.half)


class Embedder:
    """An encoder loaded once, embedding files or waveforms with the engine's batching and workers."""

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        *,
        encoder_source: str | None = None,
        device: str = "auto",
        batch_size: int = 32,
        workers: int | None = None,
        processes: bool = False,
        half: bool = False,
    ):
        """`encoder`: a name from encoders.ENCODER_NAMES, or `hf:ID_OR_DIR[@LAYER]`; `encoder_source`: a
        hub id or local folder for its weights; `device`: auto, cpu, cuda or cuda:N; `batch_size`: audio
        chunks per encoder call; `workers`: decoding and embedding threads (None: one per core; 0: the
        calling thread only); `processes`: make the workers processes forked from this one, which
        run faster than threads on a CPU (docs/speed.md) for a little more memory; `half`: float16
        network (GPUs)."""
        options = PredictOptions(
            encoder=encoder,
            encoder_source=encoder_source,
            device=device,
            batch_size=batch_size,
            workers=workers,
            processes=processes,
            half=half,
        )
        self._start(options)

    @classmethod
    def from_options(cls: type[_Self], options: PredictOptions) -> _Self:
        """Built from a PredictOptions (what the command line parses) instead of keyword arguments."""
        embedder = cls.__new__(cls)
        embedder._start(options)
        return embedder

    def _start(self, options: PredictOptions) -> None:
        # the cheap checks first, so a mistake is reported before any weights are read
        if options.encoder is not None and not is_encoder_name(options.encoder):
            raise UsageError(f"unknown encoder {options.encoder!r}; {CHOICES}")
        if options.encoder is not None:
            check_installed(options.encoder)
        device = runtime.resolve_device(options.device)
        if options.half and device == "cpu":
            # float16 is a GPU format: a CPU computes it slower than float32, and not at all for some ops
            raise UsageError(
                f"--half needs a GPU, and this run uses the CPU{'' if options.device == 'cpu' else ' (no GPU found)'}; "
                "drop --half"
            )
        if options.processes and (device != "cpu" or options.workers == 0):
            why = "the GPU cannot be shared with forked processes" if device != "cpu" else "--workers 0 has none"
            raise UsageError(f"--processes makes the workers processes, on a CPU only: {why}")
        self.options = dataclasses.replace(options, device=device, workers=runtime.configure(options.workers))
        self.encoder = self._load(self.options)
        runtime.collect_garbage_again()

    def _load(self, options: PredictOptions) -> Encoder:
        return build_encoder(options)

    @property
    def made_by(self) -> dict[str, str]:
        """What makes this object's rows what they are, by output column (for --resume's check)."""
        return {"encoder": self.encoder.name}

    def embed_files(self, paths: Iterable[str | PathLike], *, progress: Progress | None = None) -> Iterator[Embedding]:
        """One Embedding per file, lazily and in input order; a file that fails (or holds no speech)
        carries an `error`. `progress` is called with each chunk's seconds of audio as it is embedded."""
        for result in self._embed((Path(p) for p in paths), progress=progress):
            yield self._embedding(result)

    def _embed(
        self,
        sources: Iterable[Path | Waveform],
        options: PredictOptions | None = None,
        progress: Progress | None = None,
        encoder: Encoder | None = None,
    ) -> Iterator[EmbeddingResult]:
        """The engine's results (by `encoder`, default the model's), with a file holding (almost) no
        speech turned into an error or warned about."""
        for result in embed_files(sources, encoder or self.encoder, options or self.options, progress):
            yield self._speech_checked(result)

    @staticmethod
    def _speech_checked(result: EmbeddingResult) -> EmbeddingResult:
        """`result`, made an error when it holds (almost) no speech and warned about when it holds little."""
        if result.error is None and result.speech_s < NO_SPEECH_SECONDS:
            result.vector, result.warning, result.error = None, None, "no speech detected"
        elif result.error is None and result.speech_s < LITTLE_SPEECH_SECONDS:
            little = f"little speech: {result.speech_s:.2f} s"
            result.warning = f"{result.warning}; {little}" if result.warning else little
        return result

    def embed_waveform(self, wave: np.ndarray, sample_rate: int) -> Embedding:
        """The Embedding of audio in memory: 1-D (mono) or (frames, channels) samples at `sample_rate` Hz."""
        return self._embedding(self._embed_one(wave, sample_rate))

    def _embed_one(self, wave: np.ndarray, sample_rate: int) -> EmbeddingResult:
        # in the calling thread: a pool of workers for one waveform would only add its start-up
        in_this_thread = dataclasses.replace(self.options, workers=0)
        (result,) = self._embed([Waveform(wave, sample_rate)], in_this_thread)
        return result

    def _embedding(self, result: EmbeddingResult) -> Embedding:
        vector = None if result.vector is None else result.vector.astype(np.float32)
        return Embedding(
            path=_shown(result.path),
            duration_s=result.duration_s,
            encoder=self.encoder.name,
            vector=vector,
            error=result.error,
        )


class Predictor(Embedder):
    """A model and its encoder loaded once, predicting emotion, gender and age for files or waveforms."""

    def __init__(
        self,
        model: str | PathLike | None = None,
        encoder: str | None = None,
        *,
        device: str = "auto",
        normalize: str | None = None,
        encoder_source: str | None = None,
        batch_size: int = 32,
        workers: int | None = None,
        processes: bool = False,
        half: bool = False,
        speakers: Mapping[str, str] | None = None,
    ):
        """`model`: a checkpoint from `persona train`, or a bundled model's name such as "persona-ge2e"
        (`persona models` lists them; None: the bundled model for the encoder and
        normalisation); `encoder`: its encoder (None: the model's); `normalize`: none, corpus or
        speaker (None: what the model was trained with; not none: predictions depend on the other
        files of a group, so predict_files embeds every file before it yields any); `speakers`: the
        speaker of each absolute file or folder path, for `speaker` normalisation (else folders).
        The other settings are Embedder's."""
        options = PredictOptions(
            model=None if model is None else str(model),
            encoder=encoder,
            encoder_source=encoder_source,
            device=device,
            batch_size=batch_size,
            workers=workers,
            processes=processes,
            normalization=normalize,
            half=half,
            speakers=dict(speakers or {}),
        )
        self._start(options)

    _conversation_predictor: ConversationPredictor | None = None  # made on the first --per segment|speaker call

    def _load(self, options: PredictOptions) -> Encoder:
        self.model, model_file = _load_model(options)
        encoder_name = options.encoder or self.model.metadata.encoder
        if encoder_name != self.model.metadata.encoder:
            raise ModelLoadingError(
                f"model {model_file} was trained on {self.model.metadata.encoder!r} embeddings, "
                f"not {encoder_name!r}; drop --encoder or choose a model trained for it"
            )
        encoder = build_encoder(options, encoder_name)
        if encoder.dim != self.model.metadata.encoder_dim:
            raise ModelLoadingError(
                f"model {model_file} expects {self.model.metadata.encoder_dim}-d {encoder_name} embeddings, "
                f"but this encoder gives {encoder.dim}-d"
            )
        trained_on = self.model.metadata.encoder_revision
        if trained_on and trained_on != encoder.revision:
            log.warning(
                "model %s was trained on revision %s of the %s features, and this persona computes "
                "revision %s: its predictions will drift from the figures it was validated with; "
                "retrain it with `persona train`",
                model_file,
                trained_on,
                encoder_name,
                encoder.revision,
            )
        for task in self.model.untrained_heads:  # once per run, not per row
            columns = "column is" if len(_COLUMNS_OF[task]) == 1 else "columns are"
            log.warning("%s: this model saw no %s labels in training; the %s %s empty", task, task, task, columns)
        self.model.to(options.device)
        return encoder

    @property
    def made_by(self) -> dict[str, str]:
        return {"encoder": self.encoder.name, "model": self.model.name, "normalization": self.normalization}

    @property
    def normalization(self) -> str:
        """How this model's inputs are normalised: none, corpus or speaker."""
        return self.model.metadata.normalization

    def check_groups(self, paths: Iterable[str | PathLike]) -> None:
        """Refuse (UsageError), before any work, files whose normalisation groups are too small."""
        check_prediction_groups([Path(p) for p in paths], self.normalization, self.options.speakers)

    def predict_files(
        self, paths: Iterable[str | PathLike], *, progress: Progress | None = None
    ) -> Iterator[Prediction]:
        """One Prediction per file, lazily and in input order; a file that fails carries an `error`.
        `progress` is called with each chunk's seconds of audio as it is embedded (for progress bars).

        With `corpus` or `speaker` normalisation every file is embedded before any is predicted (a
        file's input depends on its group's statistics), so predictions come out only at the end.
        """
        files = (Path(p) for p in paths)
        if self.normalization != "none":
            yield from self._predict_normalized(list(files), progress)
            return
        for results in batched(self._embed(files, progress=progress), self.options.batch_size):
            yield from self._predictions(results)

    def predict_segments(
        self,
        paths: Iterable[str | PathLike],
        *,
        num_speakers: int | None = None,
        min_speakers: int = 1,
        max_speakers: int | None = None,
        progress: Progress | None = None,
    ) -> Iterator[Segment]:
        """Who speaks when in each recording, one Segment per stretch of one speaker's speech (at most
        a few seconds), with its emotion and the speaker's gender and age, lazily and in input order.
        `num_speakers` fixes the number of speakers in each recording; otherwise it is estimated,
        between `min_speakers` and `max_speakers`. A recording that fails gets one row with an `error`."""
        count = SpeakerCount(num_speakers, min_speakers, max_speakers)
        return self._conversations().segments(paths, count, progress)

    def predict_speakers(
        self,
        paths: Iterable[str | PathLike],
        *,
        num_speakers: int | None = None,
        min_speakers: int = 1,
        max_speakers: int | None = None,
        progress: Progress | None = None,
    ) -> Iterator[SpeakerSummary]:
        """One SpeakerSummary per speaker of each recording: how long and when they speak, their gender
        and age from all of their speech, and their emotions' shares. Arguments as predict_segments."""
        count = SpeakerCount(num_speakers, min_speakers, max_speakers)
        return self._conversations().speakers(paths, count, progress)

    def _conversations(self) -> ConversationPredictor:
        if self._conversation_predictor is None:
            self._conversation_predictor = ConversationPredictor(self)
        return self._conversation_predictor

    def predict_waveform(self, wave: np.ndarray, sample_rate: int) -> Prediction:
        """The Prediction for audio in memory: 1-D (mono) or (frames, channels) samples at `sample_rate` Hz."""
        if self.normalization != "none":
            raise UsageError(
                f"model {self.model.name} normalises over groups of files ({self.normalization}); "
                "use predict_files, or a model trained without --normalize"
            )
        (prediction,) = self._predictions([self._embed_one(wave, sample_rate)])
        return prediction

    def _predict_normalized(self, paths: list[Path], progress: Progress | None) -> Iterator[Prediction]:
        how = self.normalization
        results = list(self._embed(paths, progress=progress))
        groups = prediction_groups(paths, how, self.options.speakers)
        good = [i for i, r in enumerate(results) if r.vector is not None]
        sizes = Counter(groups[i] for i in good)
        usable = [i for i in good if sizes[groups[i]] >= MIN_GROUP_FILES]
        for i in set(good) - set(usable):  # its group lost too many files to errors to be normalised
            too_few = f"too few usable files in its {how} group to normalise ({sizes[groups[i]]} < {MIN_GROUP_FILES})"
            results[i].vector, results[i].warning, results[i].error = None, None, too_few
        if usable:
            vectors = np.stack([v for i in usable if (v := results[i].vector) is not None])
            inputs = network_inputs(vectors, how, [groups[i] for i in usable])
            for i, vector in zip(usable, inputs):
                results[i].vector = vector
        for start in range(0, len(results), self.options.batch_size):
            yield from self._predictions(results[start : start + self.options.batch_size])

    def _predictions(self, results: list[EmbeddingResult]) -> list[Prediction]:
        good = [r for r in results if r.vector is not None]
        outputs = self.model.predict(np.stack([v for r in good if (v := r.vector) is not None])) if good else None
        index = {id(r): i for i, r in enumerate(good)}
        emotions, genders = self.model.metadata.emotions, self.model.metadata.genders
        predictions = []
        for result in results:
            values: dict = {}
            if outputs is not None and id(result) in index:
                i = index[id(result)]
                emotion_probs, gender_probs = outputs.emotion_probs[i], outputs.gender_probs[i]
                values = {f"prob_{e}": round(float(p), 4) for e, p in zip(emotions, emotion_probs)}
                values.update(
                    emotion=emotions[int(emotion_probs.argmax())],
                    emotion_confidence=round(float(emotion_probs.max()), 4),
                    gender=genders[int(gender_probs.argmax())],
                    gender_confidence=round(float(gender_probs.max()), 4),
                    age=round(float(outputs.age_years[i]), 1),
                )
                for task in self.model.untrained_heads:  # a head that never saw a label outputs noise
                    values.update(dict.fromkeys(_COLUMNS_OF[task]))
            predictions.append(
                _prediction(
                    path=_shown(result.path),
                    duration_s=result.duration_s,
                    encoder=self.encoder.name,
                    model=self.model.name,
                    normalization=self.normalization,
                    error=result.error,
                    warning=result.warning,
                    **values,
                )
            )
        return predictions


_NO_PREDICTION = {f.name: None for f in dataclasses.fields(Prediction)}
#: the output columns each head fills
_COLUMNS_OF = {
    "emotion": ["emotion", "emotion_confidence", *(f"prob_{e}" for e in EMOTIONS)],
    "gender": ["gender", "gender_confidence"],
    "age": ["age"],
}


def _prediction(**values) -> Prediction:
    """A Prediction whose columns not given are empty (a failed file has no probabilities)."""
    return Prediction(**{**_NO_PREDICTION, **values})


def _shown(path: Path | None) -> str | None:
    return None if path is None else display_path(path)


def _load_model(options: PredictOptions) -> tuple[PersonaModel, str]:
    """The model the options name (a checkpoint, or the bundled model for their encoder and
    normalisation), checked against the normalisation they ask for, and its file name."""
    if options.model is None:
        encoder_name = options.encoder or DEFAULT_ENCODER
        normalization = options.normalization or "none"
        model_path = bundled_model_path(encoder_name, normalization)
        if not model_path.exists():
            flag = "" if normalization == "none" else f" --normalize {normalization}"
            raise UsageError(
                f"no bundled model for encoder {encoder_name!r}{' with' + flag if flag else ''}; "
                f"pass --model FILE trained with `persona train --encoder {encoder_name}{flag}`"
            )
    else:
        model_path = resolve_model_path(options.model)  # a path, or a bundled model's name
    model = load_model(model_path)
    if options.normalization is not None and options.normalization != model.metadata.normalization:
        raise UsageError(
            f"--normalize {options.normalization}: model {model_path.name} was trained with "
            f"{model.metadata.normalization} normalisation, and its inputs must be normalised the same way "
            f"(drop --normalize, or train a model with --normalize {options.normalization})"
        )
    return model, model_path.name


__all__ = ["Embedder", "Predictor", "build_encoder"]
