"""A segment's vector made from what the listening pass measured, not from its audio read again.

`--per segment` has to hear a whole recording before it knows its segments: `diarization.listen`
runs the GE2E network over 1.6 s windows every 0.8 s to tell the voices apart. Embedding each
segment afterwards meant decoding the recording again and running the same network over the same
speech a second time. Where the model's encoder is made of parts the listening pass can measure as
it goes (the GE2E network, with or without its layer statistics, and prosody: the default
`ge2e-layers+prosody`), a segment's columns come from there instead:

- GE2E: the windows wholly inside the segment, pooled as the encoder pools a file's partials (the
  renormalised mean of their embeddings; for `ge2e-layers` the mean and std of the LSTM layers'
  outputs over their frames, from each window's moments);
- prosody: the functionals of the prosody frames inside the segment, each frame measured once as
  its chunk was heard (40 ms every 20 ms as the encoder cuts them, but on the recording's grid, so
  up to 10 ms from where the encoder would start them in the segment).

A segment that no listening window reaches (a lone word between long pauses: windows need half
their 1.6 s to be speech) is embedded from its own audio by the whole encoder, as before.

Any other part (MFCC, `hf:` models, ...) is still embedded from the segment's audio, read again. The
price is a difference in what the GE2E network saw: windows at their 30 s chunk's volume, with
their pauses, where the encoder sees each segment alone, at its own volume, with long pauses cut
(docs/long-recordings.md, "One pass").

What waits for the segments (an hour of speech: 18 MB of window moments, 6.5 MB of frame measures)
waits in temporary files, so that memory does not grow with the recording.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE
from persona_cli.diarization import WINDOW_SAMPLES, ChunkFeatures, Listening, Turn
from persona_cli.encoders.base import Encoder
from persona_cli.encoders.fused import FusedEncoder
from persona_cli.encoders.ge2e import LAYER_STATS_DIM, GE2EEncoder, GE2ELayersEncoder
from persona_cli.encoders.prosody import FRAME as PROSODY_FRAME, HOP as PROSODY_HOP, MEASURES, ProsodyEncoder

#: how far a listening window reaches either side of its centre, in seconds
_WINDOW_REACH_S = WINDOW_SAMPLES / 2 / SAMPLE_RATE


@dataclass(frozen=True)
class SegmentRecipe:
    """How a model's encoder's vector of a segment is put together: which of its parts the listening
    pass measures, and which are embedded from the segment's audio (`rest`)."""

    parts: tuple[Encoder, ...]  # the encoder's parts, in the order of its columns
    listener: GE2EEncoder  # its GE2E part, which the listening pass runs
    prosody: ProsodyEncoder | None  # its prosody part, measured as the chunks are heard
    rest: Encoder | None  # the other parts, in order (fused when several); None when there are none

    @classmethod
    def of(cls, encoder: Encoder) -> SegmentRecipe | None:
        """The recipe for `encoder`; None where its GE2E columns cannot come from the listening pass:
        no GE2E part (or two), other weights than those the diarization was tuned with, or float16."""
        parts = tuple(encoder.parts if isinstance(encoder, FusedEncoder) else [encoder])
        networks = [part for part in parts if type(part) in (GE2EEncoder, GE2ELayersEncoder)]
        if len(networks) != 1:
            return None
        listener = networks[0]
        assert isinstance(listener, GE2EEncoder)
        if listener.weights is not None or listener.dtype != torch.float32:
            return None
        prosodies = [part for part in parts if type(part) is ProsodyEncoder]
        prosody = prosodies[0] if len(prosodies) == 1 else None
        others = [part for part in parts if part is not listener and part is not prosody]
        rest = None if not others else others[0] if len(others) == 1 else FusedEncoder(others)
        return cls(parts, listener, prosody, rest)


class _Tape:
    """Rows of `width` float32 in a temporary file, appended in order and read back by range."""

    def __init__(self, width: int):
        self.width = width
        self.rows = 0
        self._flushed = True
        self._file = tempfile.TemporaryFile(prefix="persona-listening-")

    def append(self, rows: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
        self.rows += len(rows)
        self._flushed = False

    def read(self, first: int, last: int) -> np.ndarray:
        """Rows first..last-1 (fewer where the tape ends sooner)."""
        if not self._flushed:  # reads go to the file itself, past the write buffer
            self._file.flush()
            self._flushed = True
        first, last = max(first, 0), min(last, self.rows)
        row_bytes = self.width * 4
        data = os.pread(self._file.fileno(), max(last - first, 0) * row_bytes, first * row_bytes)
        return np.frombuffer(data, np.float32).reshape(-1, self.width)

    def close(self) -> None:
        self._file.close()


class HeardFeatures:
    """One recording's listening measures that its segments' vectors are made from: the
    `diarization.FeatureSink` that `listen` fills. Close it when the recording is done."""

    def __init__(self, recipe: SegmentRecipe):
        self.recipe = recipe
        self.keeps_layers = recipe.listener.keep_layers
        self.prosody = recipe.prosody
        self._moments = _Tape(LAYER_STATS_DIM) if self.keeps_layers else None
        self._frames = _Tape(MEASURES) if self.prosody is not None else None

    def add(self, features: ChunkFeatures) -> None:
        if self._moments is not None and features.moments is not None:
            self._moments.append(features.moments)
        if self._frames is not None and features.measures is not None:
            # frame k is row k: a frame that no chunk could measure (one running into a chunk that
            # carried nothing of the chunk before) is a row of NaN; none is written twice
            frames = features.measures.T
            if features.first_frame > self._frames.rows:
                self._frames.append(np.full((features.first_frame - self._frames.rows, MEASURES), np.nan))
            self._frames.append(frames[self._frames.rows - features.first_frame :])

    @staticmethod
    def reaches(listening: Listening, turn: Turn) -> bool:
        """Whether any listening window overlaps `turn`: its vector can be made from what was heard."""
        first, last = _inside(listening.window_centres_s, turn.start_s - _WINDOW_REACH_S, turn.end_s + _WINDOW_REACH_S)
        return last > first

    def vector(self, listening: Listening, turn: Turn, rest_vector: np.ndarray | None) -> np.ndarray:
        """The segment's whole vector (a turn that `reaches`), its other parts' columns taken from
        `rest_vector` in order."""
        columns, taken = [], 0  # of rest_vector
        for part in self.recipe.parts:
            if part is self.recipe.listener:
                columns.append(self._ge2e(listening, turn))
            elif part is self.recipe.prosody:
                columns.append(self._prosody(turn))
            else:
                assert rest_vector is not None
                columns.append(rest_vector[taken : taken + part.dim])
                taken += part.dim
        return np.concatenate(columns).astype(np.float32)

    def _ge2e(self, listening: Listening, turn: Turn) -> np.ndarray:
        """The GE2E columns of `turn`, from the windows wholly inside it: a window reaching past
        the turn hears the pause or the other voice beside it. A turn too short to hold a whole
        window takes the windows centred inside it, and failing those the nearest that overlaps it."""
        centres, reach = listening.window_centres_s, _WINDOW_REACH_S
        first, last = _inside(centres, turn.start_s + reach, turn.end_s - reach)
        if first >= last:
            first, last = _inside(centres, turn.start_s, turn.end_s)
        if first >= last:
            first, last = _inside(centres, turn.start_s - reach, turn.end_s + reach)
            if first >= last:
                raise ValueError(f"no listening window reaches the turn at {turn.start_s:.2f} s")
            first += int(np.abs(centres[first:last] - (turn.start_s + turn.end_s) / 2).argmin())
            last = first + 1
        # the windows' [embedding | layer moments] are the terms the encoder pools a file's partials
        # by (every window has as many frames), so its own pool_finish makes the columns
        terms = listening.window_vectors[first:last].astype(np.float64)
        if self._moments is not None:
            terms = np.concatenate([terms, self._moments.read(first, last)], axis=1)
        return self.recipe.listener.pool_finish(terms.mean(axis=0))

    def _prosody(self, turn: Turn) -> np.ndarray:
        """The prosody functionals of the frames wholly inside `turn`."""
        assert self._frames is not None and self.prosody is not None
        first = -(-round(turn.start_s * SAMPLE_RATE) // PROSODY_HOP)
        last = (round(turn.end_s * SAMPLE_RATE) - PROSODY_FRAME) // PROSODY_HOP + 1
        frames = self._frames.read(first, max(last, first + 1))
        frames = frames[~np.isnan(frames).any(axis=1)]
        if len(frames) == 0:  # not reached from diarize's turns, which are longer than a frame
            frames = np.zeros((1, MEASURES), np.float32)
        return self.prosody.functionals(frames.T)

    def close(self) -> None:
        for tape in (self._moments, self._frames):
            if tape is not None:
                tape.close()


def _inside(centres: np.ndarray, start_s: float, end_s: float) -> tuple[int, int]:
    """The range of `centres` (sorted) from start_s to end_s."""
    return int(np.searchsorted(centres, start_s, side="left")), int(np.searchsorted(centres, end_s, side="right"))


__all__ = ["HeardFeatures", "SegmentRecipe"]
