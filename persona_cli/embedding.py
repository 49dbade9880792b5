"""The embedding engine: audio sources -> 16 kHz chunks -> batched encoder calls -> one vector each.

Each source (a file, or a waveform in memory) is decoded in bounded chunks (30 s by default).
Chunks from many sources are gathered into one batch so the encoder runs one forward call for all
of them; a long file's chunk embeddings are pooled into one vector. Results come out in input order,
one per source, and a source that fails becomes a result with an error message while the batch goes
on. With workers, groups of sources are decoded and embedded by a pool of threads.

The per-file errors and warnings are listed once, in docs/cli.md ("Bad input"); audio.py raises the
decoding ones and `SignalStats.warnings()` names the warnings.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE, SignalStats, iter_chunks, iter_waveform_chunks
from persona_cli.encoders import Encoder
from persona_cli.errors import AudioLoadError
from persona_cli.memory import return_free_memory
from persona_cli.options import PredictOptions
from persona_cli.runtime import compute_threads, default_workers

log = logging.getLogger("persona")


@dataclass(frozen=True, eq=False)
class Waveform:
    """Audio already in memory: 1-D (mono) or (frames, channels) samples at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int


AudioSource = Path | Waveform


@dataclass
class EmbeddingResult:
    """One source's embedding, or why there is none (the engine's working record)."""

    path: Path | None  # None for a waveform given in memory
    duration_s: float | None = None
    vector: np.ndarray | None = None
    error: str | None = None
    warning: str | None = None  # doubtful but usable audio (silent, clipped...); None when fine or failed
    speech_s: float = 0.0  # seconds of speech the voice detector found (speech.py), summed over the chunks
    chunk_vectors: list[np.ndarray] = field(default_factory=list, repr=False)
    chunk_seconds: list[float] = field(default_factory=list, repr=False)


#: called with the seconds of audio in each chunk as it is embedded, from any worker thread
Progress = Callable[[float], None]


def embed_files(
    sources: Iterable[Path | Waveform], encoder: Encoder, options: PredictOptions, progress: Progress | None = None
) -> Iterator[EmbeddingResult]:
    """Embed every source, yielding one EmbeddingResult per source in input order; `progress` hears
    of each chunk's seconds as they are embedded (results come out in groups, progress does not).

    With workers (the default), groups of `batch_size` sources are decoded and embedded by a pool of
    threads, one torch thread each, and their results handed on in input order. Threads suffice:
    libsndfile, soxr and torch release the GIL while they work, so the workers' decoding, resampling
    and network compute overlap; where one stage waits for the other, the other worker fills the gap.
    """
    workers = default_workers() if options.workers is None else options.workers
    if workers <= 0:
        yield from _embed_in_order(sources, encoder, options, progress)
        return
    yield from _embed_in_parallel(sources, encoder, options, workers, progress)


def _embed_in_parallel(
    sources: Iterable[AudioSource], encoder: Encoder, options: PredictOptions, workers: int, progress: Progress | None
) -> Iterator[EmbeddingResult]:
    threads = compute_threads(workers)

    def embed_group(group: list[AudioSource]) -> list[EmbeddingResult]:
        torch.set_num_threads(threads)  # the calling thread's own OpenMP setting
        results = list(_embed_in_order(group, encoder, options, progress))
        return_free_memory()
        return results

    # A bounded window of groups in flight keeps memory flat however long the input is: each holds
    # at most one batch of decoded chunks, and a finished group is only a list of small vectors.
    in_flight: deque[Future[list[EmbeddingResult]]] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="persona-embed")
    try:
        for group in batched(sources, options.batch_size):
            in_flight.append(pool.submit(embed_group, group))
            if len(in_flight) > 2 * workers:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()
    finally:
        # on an early exit (error, Ctrl-C, --fail-fast) drop the queued groups; running ones finish
        pool.shutdown(wait=False, cancel_futures=True)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last one shorter)."""
    group: list = []
    for item in items:
        group.append(item)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def _chunks(source: AudioSource, options: PredictOptions, stats: SignalStats) -> Iterator[np.ndarray]:
    if isinstance(source, Waveform):
        return iter_waveform_chunks(source.samples, source.sample_rate, options.chunk_seconds, stats)
    return iter_chunks(source, options.chunk_seconds, stats)


def _embed_in_order(
    sources: Iterable[AudioSource], encoder: Encoder, options: PredictOptions, progress: Progress | None = None
) -> Iterator[EmbeddingResult]:
    """embed_files in the calling thread: chunks of consecutive sources share encoder calls."""
    waiting: deque[EmbeddingResult] = deque()  # sources started but not yet yielded, in input order
    batch: list[tuple[EmbeddingResult, np.ndarray]] = []  # chunks waiting for the encoder

    def run_batch() -> None:
        for (result, _), (vector, speech_s) in zip(batch, _embed_chunks(encoder, [wave for _, wave in batch])):
            if isinstance(vector, str):
                result.error = result.error or vector
            else:
                result.chunk_vectors.append(vector)
                result.speech_s += speech_s
        if progress is not None and batch:
            progress(sum(len(wave) for _, wave in batch) / SAMPLE_RATE)
        batch.clear()

    def finished() -> Iterator[EmbeddingResult]:
        while waiting and (waiting[0].error or waiting[0].duration_s is not None) and not _in_batch(waiting[0], batch):
            result = waiting.popleft()
            if result.error is None:
                result.vector = encoder.pool(np.stack(result.chunk_vectors), np.array(result.chunk_seconds))
            else:
                result.warning = None  # a failed source has no predictions for a warning to qualify
            result.chunk_vectors, result.chunk_seconds = [], []
            yield result

    for source in sources:
        result = EmbeddingResult(None if isinstance(source, Waveform) else Path(source))
        waiting.append(result)
        chunks: list[np.ndarray] = []
        stats = SignalStats()
        try:
            for chunk in _chunks(source, options, stats):
                chunks.append(chunk)
                if len(chunks) > options.batch_size:  # a long file: hand over all but the newest chunk
                    # (keeping one back means a file is only embedded once it is known to be long enough)
                    _queue(result, chunks[:-1], batch)
                    chunks = chunks[-1:]
                    run_batch()
        except AudioLoadError as error:
            result.error = str(error)
        else:
            seconds = sum(result.chunk_seconds) + sum(len(c) for c in chunks) / SAMPLE_RATE
            if seconds < options.min_seconds:
                result.error = f"too short: {seconds:.2f} s < {options.min_seconds:g} s"
            else:
                _queue(result, chunks, batch)
                result.duration_s = round(seconds, 3)
                result.warning = "; ".join(stats.warnings()) or None
        if len(batch) >= options.batch_size:
            run_batch()
        yield from finished()
    run_batch()
    yield from finished()


def _queue(result: EmbeddingResult, chunks: list[np.ndarray], batch: list) -> None:
    for chunk in chunks:
        result.chunk_seconds.append(len(chunk) / SAMPLE_RATE)
        batch.append((result, chunk))


def _in_batch(result: EmbeddingResult, batch: list) -> bool:
    return any(owner is result for owner, _ in batch)


# What an encoder may raise on one unusual waveform (torch and numpy errors, CUDA out-of-memory, an
# index past the end of a too-short signal...). Not Exception: MemoryError, KeyboardInterrupt and
# programming errors (TypeError, AttributeError, NameError) must still stop the run.
ENCODER_ERRORS = (RuntimeError, ValueError, LookupError, ArithmeticError)


def _embed_chunks(encoder: Encoder, waves: Sequence[np.ndarray]) -> list[tuple[np.ndarray | str, float]]:
    """Embed a batch, with each wave's seconds of speech; if the batch fails, retry one by one so only
    the offending source gets an error (a message in place of its vector)."""
    if not waves:
        return []
    try:
        vectors, speech = encoder.embed_with_speech(waves)
        if len(vectors) != len(waves) or len(speech) != len(waves):
            raise ValueError(f"encoder returned {len(vectors)} embeddings for {len(waves)} waveforms")
        if all(np.isfinite(v).all() for v in vectors):
            return list(zip(vectors, speech))
        log.debug("batch embedding has non-finite values; retrying file by file")
    except ENCODER_ERRORS as batch_error:
        log.debug("batch embedding failed (%s); retrying file by file", batch_error)
    results: list[tuple[np.ndarray | str, float]] = []
    for wave in waves:
        try:
            (vector,), (seconds,) = encoder.embed_with_speech([wave])
            results.append((vector if np.isfinite(vector).all() else "embedding failed: non-finite embedding", seconds))
        except ENCODER_ERRORS as error:
            results.append((f"embedding failed: {_first_line(error)}", 0.0))
    return results


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["ENCODER_ERRORS", "EmbeddingResult", "Waveform", "batched", "embed_files"]
