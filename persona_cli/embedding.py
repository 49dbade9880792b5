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
import math
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE, SignalStats, audio_info, iter_chunks, iter_waveform_chunks
from persona_cli.encoders import Encoder
from persona_cli.errors import AudioLoadError
from persona_cli.memory import return_free_memory
from persona_cli.options import PredictOptions
from persona_cli.runtime import compute_threads, default_workers

log = logging.getLogger("persona")

#: a long source goes to the workers in pieces of this many chunks (2 min at the default 30 s), so
#: one long recording keeps every worker busy while few of its decoded chunks wait in memory
CHUNKS_PER_PIECE = 1
_T = TypeVar("_T")


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
    of the seconds of audio embedded, as each batch (with workers: each job) is done.

    With workers (the default), groups of `batch_size` sources are decoded and embedded by a pool of
    threads, one torch thread each, and their results handed on in input order: libsndfile, soxr and
    torch release the GIL while they work, so the workers' decoding, resampling and network compute
    overlap. With `options.processes` the workers are processes forked from this one instead, which
    no lock holds back, for the memory each one's own working buffers take.
    """
    workers = default_workers() if options.workers is None else options.workers
    if workers <= 0:
        yield from _embed_in_order(sources, encoder, options, progress)
        return
    yield from _embed_in_parallel(sources, encoder, options, workers, progress)


def _embed_in_parallel(
    sources: Iterable[AudioSource], encoder: Encoder, options: PredictOptions, workers: int, progress: Progress | None
) -> Iterator[EmbeddingResult]:
    worker = _Worker(encoder, options, compute_threads(workers))
    # A bounded window of jobs in flight keeps memory flat however long the input is: a group of
    # short sources holds at most one batch of decoded chunks while it runs, a piece of a long one
    # its few chunks from the moment it is decoded, and finished work is only a list of small vectors.
    pool, runner = _start_pool(worker, workers, options.processes)
    window = _Window(pool, runner, limit=workers + 1, progress=progress)
    in_order: deque[_Pending] = deque()  # every source's work, in input order
    chunks_per_piece = max(1, min(options.batch_size, CHUNKS_PER_PIECE))
    try:
        for group in _groups(sources, options, chunks_per_piece):
            if isinstance(group, list):
                job = window.submit(_embed_group, group)
                in_order.append(_Pending([job], job.result))
            else:  # one long source, decoded here as its pieces go out to the workers
                in_order.append(_embed_long(group, options, chunks_per_piece, window, encoder))
            while in_order and (len(in_order) > window.limit or in_order[0].ready()):
                yield from in_order.popleft().results()
        while in_order:
            yield from in_order.popleft().results()
    except BrokenProcessPool:
        raise RuntimeError(
            "a worker process died (killed for memory, or a crash in a native library); "
            "rerun with --resume to keep the rows already written"
        ) from None
    finally:
        # on an early exit (error, Ctrl-C, --fail-fast) drop the queued jobs; running ones finish
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, eq=False)
class _Worker:
    """What every worker embeds with: the loaded encoder, the options, and its share of torch threads."""

    encoder: Encoder
    options: PredictOptions
    torch_threads: int

    def run(self, job: Callable[..., _T], *args) -> _T:
        torch.set_num_threads(self.torch_threads)  # the calling thread's own OpenMP setting
        try:
            return job(self, *args)
        finally:
            return_free_memory()


def _embed_group(worker: _Worker, group: list[AudioSource]) -> list[EmbeddingResult]:
    return list(_embed_in_order(group, worker.encoder, worker.options))


def _embed_piece(worker: _Worker, chunks: list[np.ndarray]) -> list[tuple[np.ndarray | str, float]]:
    return _embed_chunks(worker.encoder, chunks)


def _start_pool(worker: _Worker, workers: int, processes: bool) -> tuple[Executor, Callable]:
    """A pool of worker threads, or of worker processes forked from this one with the encoder already
    loaded, and the function that runs a job on one of its workers.

    Threads share one interpreter, whose lock the voice detector, the speech check and many small
    numpy calls hold, so two threads do less than two cores' worth of work (docs/speed.md). Forked
    processes each have their own lock; the loaded model's pages stay shared until written."""
    if not processes:
        return ThreadPoolExecutor(workers, thread_name_prefix="persona-embed"), worker.run
    # fork: the children start with the encoder in memory instead of loading it again, and the
    # worker reaches them through memory, not pickling (the fork context passes initargs as they are).
    # One torch thread each: OpenMP's thread pool does not survive a fork, so a child that asks for
    # more threads than one waits forever on the parent's pool threads if the parent ever used them.
    one_thread = replace(worker, torch_threads=1)
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_become_worker, initargs=(one_thread,))
    return pool, _run_in_this_worker


_this_worker: _Worker | None = None  # in a worker process: what it was forked with


def _become_worker(worker: _Worker) -> None:
    global _this_worker
    _this_worker = worker
    # Ctrl-C reaches the whole process group: the parent stops the run, the workers must not print
    # a traceback each
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_in_this_worker(job: Callable[..., _T], *args) -> _T:
    assert _this_worker is not None, "a job ran outside a worker process"
    return _this_worker.run(job, *args)


class _Window:
    """Submits jobs to a pool, waiting first while `limit` of them are queued or running; tells
    `progress` of each job's seconds of audio when it is done (a worker process cannot call back)."""

    def __init__(self, pool: Executor, runner: Callable, limit: int, progress: Progress | None = None):
        self.pool, self.runner, self.limit, self.progress = pool, runner, limit, progress
        self.jobs: deque[Future] = deque()

    def submit(self, work: Callable[..., _T], payload: list, seconds: float | None = None) -> Future[_T]:
        """Run `work(worker, payload)`; `seconds`: the audio it covers, when known before it runs."""
        while self.jobs and self.jobs[0].done():
            self.jobs.popleft()
        if len(self.jobs) >= self.limit:
            wait(self.jobs, return_when=FIRST_COMPLETED)
            self.jobs = deque(job for job in self.jobs if not job.done())
        job = self.pool.submit(self.runner, work, payload)
        if self.progress is not None:
            job.add_done_callback(lambda done: self._report(done, seconds))
        self.jobs.append(job)
        return job

    def _report(self, job: Future, seconds: float | None) -> None:
        if job.cancelled() or job.exception() is not None or self.progress is None:
            return
        if seconds is None:  # a group of sources: what was decoded of them
            seconds = sum(result.duration_s or 0.0 for result in job.result())
        self.progress(seconds)


@dataclass
class _Pending:
    """Sources whose work is submitted: ready once its jobs are done."""

    jobs: list[Future]
    results: Callable[[], list[EmbeddingResult]]  # waits for the jobs if need be

    def ready(self) -> bool:
        return all(job.done() for job in self.jobs)


def _groups(
    sources: Iterable[AudioSource], options: PredictOptions, chunks_per_piece: int
) -> Iterator[list[AudioSource] | AudioSource]:
    """Consecutive short sources in lists of `batch_size` (and of at most `group_seconds` of audio,
    when set), and each long one on its own (not a list)."""
    most_seconds = math.inf if options.group_seconds is None else options.group_seconds
    group: list[AudioSource] = []
    group_seconds = 0.0
    for source in sources:
        seconds = _declared_seconds(source)
        if seconds > chunks_per_piece * options.chunk_seconds:
            if group:
                yield group
                group, group_seconds = [], 0.0
            yield source
            continue
        if group and group_seconds + seconds > most_seconds:
            yield group
            group, group_seconds = [], 0.0
        group.append(source)
        group_seconds += seconds
        if len(group) >= options.batch_size:
            yield group
            group, group_seconds = [], 0.0
    if group:
        yield group


def _declared_seconds(source: AudioSource) -> float:
    """The source's length as its header (or array) declares it: a fraction of a millisecond per file."""
    if isinstance(source, Waveform):
        return len(source.samples) / source.sample_rate if source.sample_rate > 0 else 0.0
    try:
        return audio_info(source).duration_s
    except AudioLoadError:  # its group's worker reports why
        return 0.0


def _embed_long(
    source: AudioSource, options: PredictOptions, chunks_per_piece: int, window: _Window, encoder: Encoder
) -> _Pending:
    """Decode one long source in this thread and hand its chunks to the workers a piece at a time.
    Decoding is a small share of the work (under 5 % for MP3), and one stream decodes the file
    exactly as the one-worker path does, resampler state and all. `encoder` pools the pieces here."""
    result = EmbeddingResult(None if isinstance(source, Waveform) else Path(source))
    stats = SignalStats()
    pieces: list[Future] = []
    try:
        for chunks in batched(_chunks(source, options, stats), chunks_per_piece):
            seconds = [len(chunk) / SAMPLE_RATE for chunk in chunks]
            result.chunk_seconds += seconds
            pieces.append(window.submit(_embed_piece, chunks, sum(seconds)))
    except AudioLoadError as error:
        result.error = str(error)
    else:
        _check_length(result, sum(result.chunk_seconds), stats, options)
    if result.error:
        for piece in pieces:
            piece.cancel()

    def results() -> list[EmbeddingResult]:
        for piece in pieces:
            if not piece.cancelled():
                for embedded, speech_s in piece.result():
                    _add_chunk(result, embedded, speech_s)
        _finish(result, encoder)
        return [result]

    return _Pending(pieces, results)


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
        for (result, _), (embedded, speech_s) in zip(batch, _embed_chunks(encoder, [wave for _, wave in batch])):
            _add_chunk(result, embedded, speech_s)
        if progress is not None and batch:
            progress(_batch_seconds(batch))
        batch.clear()

    def finished() -> Iterator[EmbeddingResult]:
        while waiting and (waiting[0].error or waiting[0].duration_s is not None) and not _in_batch(waiting[0], batch):
            result = waiting.popleft()
            _finish(result, encoder)
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
            if _check_length(result, seconds, stats, options):
                _queue(result, chunks, batch)
        at_audio_bound = options.group_seconds is not None and _batch_seconds(batch) >= options.group_seconds
        if len(batch) >= options.batch_size or at_audio_bound:  # (summed only when there is a bound)
            run_batch()
        yield from finished()
    run_batch()
    yield from finished()


def _batch_seconds(batch: list[tuple[EmbeddingResult, np.ndarray]]) -> float:
    return sum(len(wave) for _, wave in batch) / SAMPLE_RATE


def _check_length(result: EmbeddingResult, seconds: float, stats: SignalStats, options: PredictOptions) -> bool:
    """Once a source is decoded: its duration and warnings, or its error if it is too short to embed."""
    if seconds < options.min_seconds:
        result.error = f"too short: {seconds:.2f} s < {options.min_seconds:g} s"
        return False
    result.duration_s = round(seconds, 3)
    result.warning = "; ".join(stats.warnings()) or None
    return True


def _add_chunk(result: EmbeddingResult, embedded: np.ndarray | str, speech_s: float) -> None:
    """One chunk's embedding into its source's result (a str: why the chunk could not be embedded)."""
    if isinstance(embedded, str):
        result.error = result.error or embedded
    else:
        result.chunk_vectors.append(embedded)
        result.speech_s += speech_s


def _finish(result: EmbeddingResult, encoder: Encoder) -> None:
    """Pool a source's chunk vectors into its one vector, and drop them."""
    if result.error is None:
        result.vector = encoder.pool(np.stack(result.chunk_vectors), np.array(result.chunk_seconds))
    else:  # a failed source has no predictions for a warning to qualify, nor speech to count
        result.warning, result.speech_s = None, 0.0
    result.chunk_vectors, result.chunk_seconds = [], []


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
            results.append((f"embedding failed: {first_line(error)}", 0.0))
    return results


def first_line(error: BaseException) -> str:
    """What an error says, in one line (its type where it says nothing), for an error row."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["ENCODER_ERRORS", "EmbeddingResult", "Waveform", "batched", "embed_files", "first_line"]
