"""The one small interface every speaker-embedding backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby

import numpy as np

from persona_cli.speech import speech_seconds


class Encoder(abc.ABC):
    """Turns 16 kHz mono waveforms into fixed-size vectors.

    Implementations batch internally: `embed` receives many waveforms at once so one forward
    call can serve them all, and must return exactly what one-at-a-time calls would (to 1e-4).
    """

    #: registry name, recorded in checkpoints and output rows
    name: str
    #: length of one embedding vector
    dim: int
    #: bumped whenever the vectors an encoder computes change, so cached embeddings are recomputed
    revision: str = "1"
    #: True where embed_with_speech measures speech from work embed does anyway (a voice detector)
    measures_speech: bool = False

    @abc.abstractmethod
    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono float32 waveforms; returns a (len(waves), dim) float32 array."""

    def embed_with_speech(self, waves: Sequence[np.ndarray]) -> tuple[np.ndarray, list[float]]:
        """embed(waves) and the seconds of speech in each wave (speech.speech_seconds), for telling
        recordings without speech apart. Encoders that run a voice detector anyway reuse its mask."""
        return self.embed(waves), [speech_seconds(np.asarray(wave, dtype=np.float32)) for wave in waves]

    def cache_identity(self) -> dict[str, str]:
        """What else, beyond name, dim and revision, decides the vectors (which weights and layer an
        `hf:` encoder resolved to); part of the embedding cache's key. Empty for the built-in encoders."""
        return {}

    def pool(self, chunk_embeddings: np.ndarray, chunk_seconds: np.ndarray) -> np.ndarray:
        """Combine the embeddings of one long file's chunks into one vector (by default their
        duration-weighted mean): what `pooling()` makes of them, given all at once."""
        pooling = self.pooling()
        pooling.add(chunk_embeddings, chunk_seconds)
        return pooling.result()

    def pooling(self) -> Pooling:
        """An empty Pooling, to be given chunks a few at a time."""
        return Pooling(self)

    # Pooling is a weighted mean of per-chunk terms, finished into one vector, so that it can run
    # over sums kept as the chunks come (a speaker's hour of segments) and give what `pool` would.
    def pool_weights(self, chunk_seconds: np.ndarray) -> np.ndarray:
        """Each chunk's weight in the pooled vector: its duration."""
        return chunk_seconds

    def pool_terms(self, chunk_embeddings: np.ndarray) -> np.ndarray:
        """What is averaged over the chunks: the embeddings themselves."""
        return chunk_embeddings

    def pool_finish(self, mean_terms: np.ndarray) -> np.ndarray:
        """The pooled vector, from the weighted mean of the chunks' terms."""
        return mean_terms.astype(np.float32)


class Pooling:
    """One encoder's pooled vector of many chunks, gathered a few at a time: the running weighted
    sums of their pooling terms, so what it holds does not grow with the audio, and its result is
    what `Encoder.pool` makes of all the chunks at once."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder
        self.sums: np.ndarray | None = None
        self.weight = 0.0

    def add(self, chunk_embeddings: np.ndarray, chunk_seconds: np.ndarray) -> None:
        """Take in (n, dim) chunk embeddings and their n durations in seconds."""
        weights = self.encoder.pool_weights(np.asarray(chunk_seconds, dtype=np.float64))
        terms = self.encoder.pool_terms(np.asarray(chunk_embeddings, dtype=np.float64))
        sums = (terms * weights[:, None]).sum(axis=0)
        self.sums = sums if self.sums is None else self.sums + sums
        self.weight += float(weights.sum())

    def result(self) -> np.ndarray:
        """The pooled vector (ValueError before any chunk is added)."""
        if self.sums is None:
            raise ValueError("nothing to pool: no chunk was added")
        return self.encoder.pool_finish(self.sums / self.weight)


def equal_length_batches(lengths: Sequence[int], max_batch: int) -> Iterator[list[int]]:
    """Indices grouped by equal length (shortest first), in slices of at most `max_batch`: for
    networks whose outputs padding would change, so only waves of one length share a forward call."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for _, same_length in groupby(order, key=lengths.__getitem__):
        group = list(same_length)
        for start in range(0, len(group), max_batch):
            yield group[start : start + max_batch]


def padded_mono(wave: np.ndarray, index: int, min_samples: int) -> np.ndarray:
    """One wave as contiguous float32 mono samples, zero-padded to `min_samples` when shorter (per wave,
    before batching, so the result is the same whichever batch it lands in); ValueError when it is
    not 1-D or has no samples."""
    array = np.ascontiguousarray(wave, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"wave {index}: expected mono 1-D samples, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"wave {index}: no samples")
    if array.size < min_samples:
        array = np.pad(array, (0, min_samples - array.size))
    return array


def embed_in_equal_length_batches(
    waves: Sequence[np.ndarray], encode: Callable[[np.ndarray], np.ndarray], dim: int, max_batch: int, min_samples: int
) -> np.ndarray:
    """(n, dim) embeddings of `waves` for a network that must not see padding: each wave checked and
    padded to `min_samples` alone, then waves of equal length encoded together by `encode`
    ((batch, samples) -> (batch, dim)), and the rows put back in input order."""
    arrays = [padded_mono(wave, index, min_samples) for index, wave in enumerate(waves)]
    out = np.zeros((len(arrays), dim), np.float32)
    for indices in equal_length_batches([len(a) for a in arrays], max_batch):
        out[indices] = encode(np.stack([arrays[i] for i in indices]))
    return out
