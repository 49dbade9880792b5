"""Predictions per speaker and per stretch of speech in a recording: `persona predict --per segment`
and `--per speaker`, and `Predictor.predict_segments` / `predict_speakers`.

Each recording is heard in two passes, so that memory does not grow with its length:

1. `diarization.listen` streams it once for voice flags and speaker vectors, and `diarize` says who
   speaks when (`Turn`s);
2. it is streamed again, each turn's audio cut out as it passes and embedded by the predictor's
   encoder, on all its workers: the emotion of each segment is read from its own audio, and each
   speaker's gender and age from all of their segments pooled as one long file would be
   (Encoder.pool), since a few seconds say less about a voice than minutes do.

Where the encoder is made of what the listening pass measures anyway (the default
`ge2e-layers+prosody` is), the segments' vectors come from those measures and the recording is
read once (segment_features.py); only an encoder's other parts need the second reading.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from persona_cli import diarization
from persona_cli.audio import SAMPLE_RATE, SignalStats, display_path, iter_chunks
from persona_cli.diarization import Turn
from persona_cli.embedding import ENCODER_ERRORS, EmbeddingResult, Waveform, first_line
from persona_cli.encoders.base import Encoder, Pooling
from persona_cli.encoders.ge2e import GE2EEncoder
from persona_cli.errors import AudioLoadError, UsageError
from persona_cli.labels import EMOTIONS
from persona_cli.memory import return_free_memory
from persona_cli.options import PredictOptions, SpeakerCount
from persona_cli.results import Prediction, Segment, SpeakerSummary
from persona_cli.segment_features import HeardFeatures, SegmentRecipe

if TYPE_CHECKING:
    from persona_cli.predictor import Predictor

log = logging.getLogger("persona")

#: chunks of this length: a whole number of voice flags (diarization.listen's alignment)
CHUNK_SECONDS = 30.0
#: a group of the embedding engine: at most this many segments and this much of their audio. What a
#: job holds while its network runs follows its audio, and over an hour's hundreds of groups both
#: workers meet their largest at once, which a minute's few groups seldom do; small groups keep the
#: hour's peak near the minute's (docs/long-recordings.md, "Memory")
SEGMENTS_PER_GROUP = 16
GROUP_SECONDS = 12.0
#: segments per call of the model (after embedding)
PREDICTIONS_PER_CALL = 64
Progress = Callable[[float], None]
#: no bounds on the number of speakers: estimated for each recording
ANY_NUMBER = SpeakerCount()


@dataclasses.dataclass
class _Recording:
    """One recording's turns, what was predicted for each, and its speakers'."""

    path: Path
    turns: list[Turn]
    segments: list[Prediction]  # one per turn
    speakers: dict[int, Prediction]  # by Turn.speaker: the pooled prediction
    warning: str | None


class ConversationPredictor:
    """Diarizes recordings and predicts per segment and per speaker, with a Predictor's model."""

    def __init__(self, predictor: Predictor):
        if predictor.normalization != "none":
            raise UsageError(
                f"--per segment|speaker needs a model without normalisation; {predictor.model.name} "
                f"normalises over groups of files ({predictor.normalization})"
            )
        self.predictor = predictor
        #: None where every column of a segment's vector is computed from its audio
        self.recipe = SegmentRecipe.of(predictor.encoder)
        # The speaker vectors come from GE2E whatever the model's encoder: they are what it was
        # trained for. The model's own GE2E part where it has one, so that it runs once.
        self.speaker_encoder = self.recipe.listener if self.recipe else GE2EEncoder(device=predictor.options.device)

    def segments(
        self, paths: Iterable[str | PathLike], count: SpeakerCount = ANY_NUMBER, progress: Progress | None = None
    ) -> Iterator[Segment]:
        """One Segment per turn of each recording, in time order; one row with an `error` for a
        recording that fails or holds no speech."""
        for path in paths:
            recording = self._recording(Path(path), count, progress)
            if isinstance(recording, str):
                yield _failed(Segment, Path(path), recording, self.predictor)
                continue
            for number, (turn, prediction) in enumerate(zip(recording.turns, recording.segments), start=1):
                voice = recording.speakers[turn.speaker]
                values: dict[str, Any] = {f"prob_{e}": getattr(prediction, f"prob_{e}") for e in EMOTIONS}
                values.update(self.predictor.made_by)
                yield Segment(
                    path=display_path(path),
                    segment=number,
                    start_s=round(turn.start_s, 2),
                    end_s=round(turn.end_s, 2),
                    speaker=_speaker_name(turn.speaker),
                    emotion=prediction.emotion,
                    emotion_confidence=prediction.emotion_confidence,
                    gender=voice.gender,
                    gender_confidence=voice.gender_confidence,
                    age=voice.age,
                    warning=_joined(recording.warning, prediction.error or prediction.warning),
                    **values,
                )

    def speakers(
        self, paths: Iterable[str | PathLike], count: SpeakerCount = ANY_NUMBER, progress: Progress | None = None
    ) -> Iterator[SpeakerSummary]:
        """One SpeakerSummary per speaker of each recording, in order of first speech."""
        for path in paths:
            recording = self._recording(Path(path), count, progress)
            if isinstance(recording, str):
                yield _failed(SpeakerSummary, Path(path), recording, self.predictor)
                continue
            turns_of: dict[int, list[tuple[Turn, Prediction]]] = defaultdict(list)
            for turn, prediction in zip(recording.turns, recording.segments):
                turns_of[turn.speaker].append((turn, prediction))
            for speaker, voice in sorted(recording.speakers.items()):
                own = turns_of[speaker]
                shares = _emotion_shares(own)
                values: dict[str, Any] = {f"share_{e}": shares[e] for e in EMOTIONS}
                values.update(self.predictor.made_by)
                yield SpeakerSummary(
                    path=display_path(path),
                    speaker=_speaker_name(speaker),
                    speech_s=round(sum(turn.duration_s for turn, _ in own), 2),
                    n_segments=len(own),
                    first_s=round(own[0][0].start_s, 2),
                    last_s=round(own[-1][0].end_s, 2),
                    gender=voice.gender,
                    gender_confidence=voice.gender_confidence,
                    age=voice.age,
                    emotion=max(shares, key=lambda e: shares[e] or 0.0) if any(shares.values()) else None,
                    warning=_joined(recording.warning, voice.warning),
                    **values,
                )

    def _recording(self, path: Path, count: SpeakerCount, progress: Progress | None) -> _Recording | str:
        """The recording diarized and predicted, or why it could not be."""
        heard = None
        if self.recipe is not None:
            try:
                heard = HeardFeatures(self.recipe)
            except OSError as error:  # no temporary files: each segment is embedded from its audio
                log.warning("persona: %s: no temporary files for the listening pass (%s)", path, error)
        try:
            return self._heard_and_predicted(path, count, progress, heard)
        except OSError as error:  # a temporary file could not be written or read (a full disk)
            return f"could not keep the listening pass's measures: {error}"
        finally:
            if heard is not None:
                heard.close()

    def _heard_and_predicted(
        self, path: Path, count: SpeakerCount, progress: Progress | None, heard: HeardFeatures | None
    ) -> _Recording | str:
        stats = SignalStats()
        options = self.predictor.options
        half_of = None if progress is None else (lambda seconds: progress(seconds / 2))
        try:
            listening = diarization.listen(
                iter_chunks(path, CHUNK_SECONDS, stats), self.speaker_encoder, options.workers or 0, half_of, heard
            )
        except AudioLoadError as error:
            return str(error)
        seconds = stats.frames / stats.sample_rate if stats.sample_rate else 0.0
        if seconds < options.min_seconds:
            return f"too short: {seconds:.2f} s < {options.min_seconds:g} s"
        try:
            turns = diarization.diarize(listening, count.exactly, count.at_least, count.at_most)
        except ENCODER_ERRORS as error:  # a defect of ours, as in embedding: this file's row says so, the rest go on
            log.debug("diarizing %s failed", path, exc_info=True)
            return f"diarization failed: {first_line(error)}"
        if not turns:
            return "no speech detected"
        # Segments are cut before they are queued, so each group in flight holds its audio: small
        # groups keep a long recording's peak memory near a short one's.
        in_small_groups = dataclasses.replace(options, batch_size=SEGMENTS_PER_GROUP, group_seconds=GROUP_SECONDS)
        # what the clustering freed goes back to the OS before the segments are embedded, not kept
        # through the pass
        return_free_memory()
        segments: list[Prediction] = []
        voices = _Voices(self.predictor.encoder)
        waiting: list[EmbeddingResult] = []  # embedded, not yet predicted
        try:
            for turn, result in zip(turns, self._embedded(path, turns, listening, heard, in_small_groups), strict=True):
                voices.add(turn, result)
                waiting.append(result)
                # predicted as they come, a few at a time: the model's work for all of an hour's
                # segments at once would make the peak grow with the recording
                if len(waiting) >= PREDICTIONS_PER_CALL:
                    segments += self.predictor._predictions(waiting)
                    waiting = []
        except AudioLoadError as error:  # it decoded once; a file changed under us
            return str(error)
        finally:
            if half_of is not None:
                half_of(seconds)
        segments += self.predictor._predictions(waiting)
        speakers = self._pooled(sorted({turn.speaker for turn in turns}), voices)
        return _Recording(path, turns, segments, speakers, "; ".join(stats.warnings()) or None)

    def _embedded(
        self,
        path: Path,
        turns: Sequence[Turn],
        listening: diarization.Listening,
        heard: HeardFeatures | None,
        options: PredictOptions,
    ) -> Iterator[EmbeddingResult]:
        """Each turn's embedding by the model's encoder: from what the listening pass measured, with
        the encoder's other parts (if any) embedded from the turn's audio; or wholly from its audio,
        without `heard` or for a turn that no listening window reaches."""
        if heard is None:
            yield from self.predictor._embed(_turn_audio(path, turns), options)
            return
        reached = [heard.reaches(listening, turn) for turn in turns]
        unheard = [turn for turn, heard_it in zip(turns, reached) if not heard_it]
        heard_turns = [turn for turn, heard_it in zip(turns, reached) if heard_it]
        from_audio = iter(self.predictor._embed(_turn_audio(path, unheard), options) if unheard else [])
        rest = heard.recipe.rest
        if rest is None:  # nothing to read from the audio again
            results: Iterable[EmbeddingResult] = (
                EmbeddingResult(None, turn.duration_s, speech_s=listening.speech_between(turn.start_s, turn.end_s))
                for turn in heard_turns
            )
        else:
            results = self.predictor._embed(_turn_audio(path, heard_turns), options, encoder=rest)
        heard_results = iter(results)
        for turn, heard_it in zip(turns, reached):
            if not heard_it:
                yield next(from_audio)
                continue
            result = next(heard_results)
            if result.error is None:
                result.vector = heard.vector(listening, turn, result.vector)
            # the engine checks the speech of what it embeds; here the listening pass's flags say it
            yield self.predictor._speech_checked(result) if rest is None else result

    def _pooled(self, speakers: list[int], voices: _Voices) -> dict[int, Prediction]:
        """Each speaker's prediction from their pooled voice (all of their segments, pooled as the
        encoder pools a long file's chunks)."""
        pooled = []
        for speaker in speakers:
            vector = voices.pooled(speaker)
            if vector is not None:
                pooled.append(EmbeddingResult(None, vector=vector))
            else:
                pooled.append(EmbeddingResult(None, error="too little speech to read this voice"))
        return dict(zip(speakers, self.predictor._predictions(pooled)))


class _Voices:
    """Each speaker's pooled voice, gathered as their segments are embedded: running sums per
    speaker (Pooling), not every segment's vector, so what is kept does not grow with the recording."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder
        self.poolings: dict[int, Pooling] = {}

    def add(self, turn: Turn, result: EmbeddingResult) -> None:
        if result.vector is not None:
            if turn.speaker not in self.poolings:
                self.poolings[turn.speaker] = self.encoder.pooling()
            self.poolings[turn.speaker].add(result.vector[None], np.array([turn.duration_s]))

    def pooled(self, speaker: int) -> np.ndarray | None:
        """The speaker's vector, as the encoder pools a long file's chunks; None without any segment."""
        pooling = self.poolings.get(speaker)
        return None if pooling is None else pooling.result()


def _turn_audio(path: Path, turns: Sequence[Turn]) -> Iterator[Waveform]:
    """Each turn's samples, in order, cut from the recording as it streams past (the turns are in
    time order and do not overlap): at most one chunk and one turn are held at a time."""
    held = np.zeros(0, np.float32)
    held_from = 0  # the recording's sample at held[0]
    chunks = iter_chunks(path, CHUNK_SECONDS)
    for turn in turns:
        first, last = round(turn.start_s * SAMPLE_RATE), round(turn.end_s * SAMPLE_RATE)
        while held_from + len(held) < last:
            chunk = next(chunks, None)
            if chunk is None:
                break
            held = np.concatenate([held, chunk])
        yield Waveform(held[first - held_from : last - held_from].copy(), SAMPLE_RATE)
        held, held_from = held[last - held_from :], last


def _emotion_shares(turns: Sequence[tuple[Turn, Prediction]]) -> dict[str, float | None]:
    """The share of a speaker's speech time in each emotion, over the segments that have one."""
    time_in: dict[str, float] = dict.fromkeys(EMOTIONS, 0.0)
    for turn, prediction in turns:
        if prediction.emotion is not None:
            time_in[prediction.emotion] += turn.duration_s
    total = sum(time_in.values())
    return {e: round(time_in[e] / total, 4) if total else None for e in EMOTIONS}


def _speaker_name(index: int) -> str:
    return f"S{index + 1}"


def _joined(*warnings: str | None) -> str | None:
    return "; ".join(w for w in warnings if w) or None


def _failed(row_type: type, path: Path, error: str, predictor: Predictor):
    """The one row of a recording that could not be diarized."""
    empty = {f.name: None for f in dataclasses.fields(row_type)}
    return row_type(**{**empty, **predictor.made_by, "path": display_path(path), "error": error})


__all__ = ["ConversationPredictor"]
