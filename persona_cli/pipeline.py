"""predict(): files -> 16 kHz chunks -> batched embeddings -> predictions, as generators.

Each file is decoded in bounded chunks (30 s by default). Chunks from many files are gathered into
one batch so the encoder runs one forward call for all of them; a long file's chunk embeddings are
pooled into one vector. Results come out in input order, one per file, and a file that fails
becomes a result with an error message while the batch goes on.

Errors and warnings. A file whose audio cannot be used gets an `error` and empty predictions, and
makes the run exit 1: it cannot be read (`file not found`, `broken symlink`, `symlink loop`,
`permission denied`, `empty file`), is not audio (`not an audio file`), is in a format or codec
libsndfile does not decode (`unsupported format: m4a`, `unsupported format: wav codec 0x0055 (mp3)`),
is broken (`truncated wav header`, `decode error: ...`, `no audio samples in file`), is shorter than
`min_seconds` (`too short: 0.05 s < 0.5 s`), or the encoder fails on it (`embedding failed: ...`).
A file that decodes but looks doubtful still gets its predictions, plus a `warning` (several are
joined by "; "); warnings never change the exit code:
  - `silent` (every sample is 0) or `nearly silent: -75 dBFS RMS` (RMS below -70 dBFS);
  - `non-finite samples replaced with 0: N of M` (NaN/inf in float files, zeroed before downmix);
  - `clipped: 12 % of samples at full scale` (more than 5 % of samples within 1/128 of full scale);
  - `truncated: header declares 20.00 s, file holds 2.00 s` (a WAV cut short: what is there is used).
Warnings are measured on the file's own samples (every channel, before downmix and resampling).
Paths that are not valid UTF-8 are written with backslash escapes (`caf\\xe9.wav`; audio.display_path).
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from persona_cli.audio import SAMPLE_RATE, SignalStats, display_path, iter_chunks
from persona_cli.encoders import DEFAULT_ENCODER, ENCODER_NAMES, Encoder, is_encoder_name, load_encoder
from persona_cli.errors import AudioLoadError, ModelLoadingError, UsageError
from persona_cli.file_lists import speaker_of
from persona_cli.labels import EMOTIONS
from persona_cli.memory import return_free_memory
from persona_cli.normalization import MIN_GROUP_FILES, check_group_sizes, network_inputs
from persona_cli.model import PersonaModel, bundled_model_path, load_model

log = logging.getLogger("persona")


@dataclass
class PredictOptions:
    """Settings for `persona predict` and `persona embed`."""

    encoder: str | None = None  # None: the model's encoder (or DEFAULT_ENCODER when no model is named)
    encoder_source: str | None = None  # hub id or local folder for the encoder's weights
    model: str | None = None  # checkpoint path; None: the bundled model for the encoder
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 32  # chunks (of up to chunk_seconds each) per encoder forward call
    chunk_seconds: float = 30.0  # long files are embedded in windows this long, then pooled
    min_seconds: float = 0.5  # shorter audio is an error: too little speech to characterise
    workers: int | None = None  # threads that each decode and embed groups of files (None: one per core; 0: none)
    normalization: str | None = None  # none, corpus or speaker (normalization.py); None: what the model was trained with
    half: bool = False  # run the encoder network in float16 (for GPUs; encoders.HALF_PRECISION only)
    # speaker per absolute file or folder path, from a --files-from CSV: the groups of `speaker`
    # normalisation (files it does not cover are grouped by their parent folder)
    speakers: dict[str, str] = field(default_factory=dict)


@dataclass
class EmbeddingResult:
    """One file's embedding, or why there is none."""

    path: Path
    duration_s: float | None = None
    vector: np.ndarray | None = None
    error: str | None = None
    warning: str | None = None  # doubtful but usable audio (silent, clipped...); None when fine or failed
    chunk_vectors: list[np.ndarray] = field(default_factory=list, repr=False)
    chunk_seconds: list[float] = field(default_factory=list, repr=False)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and `taskset` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """One worker per core: each decodes and embeds on one torch thread."""
    return usable_cores()


def compute_threads(workers: int) -> int:
    """torch's intra-op threads per worker: the cores shared out between the workers (all of them
    when there are no workers). More threads than cores never pays: torch's OpenMP threads wait for
    each other at every op, so one preempted thread stalls the rest (a 2-core machine ran 6x slower
    with two torch threads beside a busy decoder)."""
    return max(1, usable_cores() // max(workers, 1))


def resolve_device(device: str) -> str:
    """'auto' becomes cuda when a GPU is usable, else cpu; an unusable explicit choice is a usage error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) present")
        return device
    if device != "cpu":
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
    return device


def embed_files(paths: Iterable[Path], encoder: Encoder, options: PredictOptions) -> Iterator[EmbeddingResult]:
    """Embed every file, yielding one EmbeddingResult per path in input order.

    With workers (the default), groups of `batch_size` files are decoded and embedded by a pool of
    threads, one torch thread each, and their results handed on in input order. Threads suffice:
    libsndfile, soxr and torch release the GIL while they work, so the workers' decoding, resampling
    and network compute overlap. On the 2-core machine this took Common Voice MP3 clips from 434 to
    619 audio-s/s against one thread decoding and then embedding on two torch threads; where one
    stage waits for the other, the other worker fills the gap.
    """
    workers = default_workers() if options.workers is None else options.workers
    if workers <= 0:
        yield from _embed_in_order(paths, encoder, options)
        return
    yield from _embed_in_parallel(paths, encoder, options, workers)


def _embed_in_parallel(paths: Iterable[Path], encoder: Encoder, options: PredictOptions,
                       workers: int) -> Iterator[EmbeddingResult]:
    threads = compute_threads(workers)

    def embed_group(group: list[Path]) -> list[EmbeddingResult]:
        torch.set_num_threads(threads)  # the calling thread's own OpenMP setting
        results = list(_embed_in_order(group, encoder, options))
        return_free_memory()
        return results

    # A bounded window of groups in flight keeps memory flat however long the input is: each holds
    # at most one batch of decoded chunks, and a finished group is only a list of small vectors.
    in_flight: deque[Future] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="persona-embed")
    try:
        for group in _groups(paths, options.batch_size):
            in_flight.append(pool.submit(embed_group, group))
            if len(in_flight) > 2 * workers:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()
    finally:
        # on an early exit (error, Ctrl-C, --fail-fast) drop the queued groups; running ones finish
        pool.shutdown(wait=False, cancel_futures=True)


def _groups(paths: Iterable[Path], size: int) -> Iterator[list[Path]]:
    group: list[Path] = []
    for path in paths:
        group.append(path)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def _embed_in_order(paths: Iterable[Path], encoder: Encoder, options: PredictOptions) -> Iterator[EmbeddingResult]:
    """embed_files in the calling thread: chunks of consecutive files share encoder calls."""
    waiting: list[EmbeddingResult] = []  # files started but not yet yielded, in input order
    batch: list[tuple[EmbeddingResult, np.ndarray]] = []  # chunks waiting for the encoder

    def run_batch() -> None:
        for result, vector in zip([r for r, _ in batch], _embed_chunks(encoder, [w for _, w in batch])):
            if isinstance(vector, str):
                result.error = result.error or vector
            else:
                result.chunk_vectors.append(vector)
        batch.clear()

    def finished() -> Iterator[EmbeddingResult]:
        while waiting and (waiting[0].error or waiting[0].duration_s is not None) and not _in_batch(waiting[0], batch):
            result = waiting.pop(0)
            if result.error is None:
                result.vector = encoder.pool(np.stack(result.chunk_vectors), np.array(result.chunk_seconds))
            else:
                result.warning = None  # a failed file has no predictions for a warning to qualify
            result.chunk_vectors, result.chunk_seconds = [], []
            yield result

    for path in paths:
        result = EmbeddingResult(Path(path))
        waiting.append(result)
        chunks: list[np.ndarray] = []
        stats = SignalStats()
        try:
            for chunk in iter_chunks(path, options.chunk_seconds, stats):
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


def _embed_chunks(encoder: Encoder, waves: Sequence[np.ndarray]) -> list[np.ndarray | str]:
    """Embed a batch; if the batch fails, retry one by one so only the offending file gets an error."""
    if not waves:
        return []
    try:
        vectors = list(encoder.embed(waves))
        if len(vectors) != len(waves):
            raise ValueError(f"encoder returned {len(vectors)} embeddings for {len(waves)} waveforms")
        if all(np.isfinite(v).all() for v in vectors):
            return vectors
        log.debug("batch embedding has non-finite values; retrying file by file")
    except ENCODER_ERRORS as batch_error:
        log.debug("batch embedding failed (%s); retrying file by file", batch_error)
    results: list[np.ndarray | str] = []
    for wave in waves:
        try:
            (vector,) = encoder.embed([wave])
            results.append(vector if np.isfinite(vector).all() else "embedding failed: non-finite embedding")
        except ENCODER_ERRORS as error:
            results.append(f"embedding failed: {_first_line(error)}")
    return results


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---------------------------------------------------------------------------------------------
# Predictions

PREDICTION_SCHEMA = pa.schema(
    [("path", pa.string()), ("duration_s", pa.float64()), ("emotion", pa.string()), ("emotion_confidence", pa.float64())]
    + [(f"prob_{e}", pa.float64()) for e in EMOTIONS]
    + [("gender", pa.string()), ("gender_confidence", pa.float64()), ("age", pa.float64()),
       ("encoder", pa.string()), ("model", pa.string()), ("normalization", pa.string()), ("error", pa.string()),
       ("warning", pa.string())]
)

EMBEDDING_SCHEMA = pa.schema(
    [("path", pa.string()), ("duration_s", pa.float64()), ("encoder", pa.string()),
     ("vector", pa.list_(pa.float32())), ("error", pa.string())]
)


def load_predictor(options: PredictOptions) -> tuple[Encoder, PersonaModel]:
    """Build the encoder and the model they ask for, and check that the two belong together."""
    device = resolve_device(options.device)
    if options.encoder is not None and not is_encoder_name(options.encoder):
        raise UsageError(f"unknown encoder {options.encoder!r}; choose one of: {', '.join(ENCODER_NAMES)}")
    if options.model is None:
        encoder_name = options.encoder or DEFAULT_ENCODER
        normalization = options.normalization or "none"
        model_path = bundled_model_path(encoder_name, normalization)
        if not model_path.exists():
            normalize_flag = "" if normalization == "none" else f" --normalize {normalization}"
            raise UsageError(f"no bundled model for encoder {encoder_name!r}{' with' + normalize_flag if normalize_flag else ''}; "
                             f"pass --model FILE trained with `persona train --encoder {encoder_name}{normalize_flag}`")
    else:
        model_path = Path(options.model)
    model = load_model(model_path)
    if options.normalization is not None and options.normalization != model.metadata.normalization:
        raise UsageError(
            f"--normalize {options.normalization}: model {model_path.name} was trained with "
            f"{model.metadata.normalization} normalisation, and its inputs must be normalised the same way "
            f"(drop --normalize, or train a model with --normalize {options.normalization})"
        )
    encoder_name = options.encoder or model.metadata.encoder
    if encoder_name != model.metadata.encoder:
        raise ModelLoadingError(
            f"model {model_path.name} was trained on {model.metadata.encoder!r} embeddings, "
            f"not {encoder_name!r}; drop --encoder or choose a model trained for it"
        )
    encoder = load_encoder(encoder_name, device=device, source=options.encoder_source, half=options.half)
    if encoder.dim != model.metadata.encoder_dim:
        raise ModelLoadingError(
            f"model {model_path.name} expects {model.metadata.encoder_dim}-d {encoder_name} embeddings, "
            f"but this encoder gives {encoder.dim}-d"
        )
    trained_on = model.metadata.encoder_revision
    if trained_on and trained_on != encoder.revision:
        log.warning("model %s was trained on revision %s of the %s features, and this persona computes revision %s: "
                    "its predictions will drift from the figures it was validated with; retrain it with `persona train`",
                    model_path.name, trained_on, encoder_name, encoder.revision)
    return encoder, model.to(device)


def predict(paths: Iterable[Path], encoder: Encoder, model: PersonaModel, options: PredictOptions) -> Iterator[list[dict]]:
    """Yield lists of output rows (PREDICTION_SCHEMA), one row per input file, in input order.

    With `corpus` or `speaker` normalisation every file must be embedded before any is predicted
    (a file's input depends on its group's statistics), so rows come out only at the end.
    """
    if model.metadata.normalization != "none":
        yield from _predict_normalized(list(paths), encoder, model, options)
        return
    pending: list[EmbeddingResult] = []
    for result in embed_files(paths, encoder, options):
        pending.append(result)
        if len(pending) >= options.batch_size:
            yield _prediction_rows(pending, encoder, model)
            pending = []
    if pending:
        yield _prediction_rows(pending, encoder, model)


def normalization_groups(paths: Sequence[Path], how: str, speakers: Mapping[str, str] | None = None) -> list[str]:
    """Each file's normalisation group: the whole run for `corpus`; for `speaker`, the speaker that
    `speakers` lists for the file (or a folder above it), else the file's parent folder."""
    if how == "corpus":
        return ["run"] * len(paths)
    groups = []
    for path in paths:
        speaker = speaker_of(path, speakers or {})
        groups.append(f"speaker {speaker}" if speaker is not None else display_path(Path(path).parent))
    return groups


def check_normalization_groups(paths: Sequence[Path], how: str, speakers: Mapping[str, str] | None = None) -> None:
    """Refuse, before any work, a run whose groups are too small to normalise."""
    if how != "none":
        what = "run" if how == "corpus" else "speaker" if speakers else "speaker folder"
        check_group_sizes(normalization_groups(paths, how, speakers), what=what)


def _predict_normalized(paths: list[Path], encoder: Encoder, model: PersonaModel,
                        options: PredictOptions) -> Iterator[list[dict]]:
    how = model.metadata.normalization
    results = list(embed_files(paths, encoder, options))
    groups = normalization_groups([r.path for r in results], how, options.speakers)
    good = [i for i, r in enumerate(results) if r.vector is not None]
    sizes = Counter(groups[i] for i in good)
    usable = [i for i in good if sizes[groups[i]] >= MIN_GROUP_FILES]
    for i in set(good) - set(usable):  # its group lost too many files to errors to be normalised
        results[i].vector, results[i].warning = None, None
        results[i].error = f"too few usable files in its {how} group to normalise ({sizes[groups[i]]} < {MIN_GROUP_FILES})"
    if usable:
        inputs = network_inputs(np.stack([results[i].vector for i in usable]), how, [groups[i] for i in usable])
        for i, vector in zip(usable, inputs):
            results[i].vector = vector
    for start in range(0, len(results), options.batch_size):
        yield _prediction_rows(results[start : start + options.batch_size], encoder, model)


def _prediction_rows(results: list[EmbeddingResult], encoder: Encoder, model: PersonaModel) -> list[dict]:
    good = [r for r in results if r.vector is not None]
    predictions = model.predict(np.stack([r.vector for r in good])) if good else None
    index = {id(r): i for i, r in enumerate(good)}
    rows = []
    for result in results:
        row = {name: None for name in PREDICTION_SCHEMA.names}
        row.update(path=display_path(result.path), duration_s=result.duration_s, encoder=encoder.name,
                   model=model.name, normalization=model.metadata.normalization, error=result.error, warning=result.warning)
        if id(result) in index:
            i = index[id(result)]
            emotion_probs, gender_probs = predictions.emotion_probs[i], predictions.gender_probs[i]
            row.update({f"prob_{e}": round(float(p), 4) for e, p in zip(model.metadata.emotions, emotion_probs)})
            row.update(
                emotion=model.metadata.emotions[int(emotion_probs.argmax())],
                emotion_confidence=round(float(emotion_probs.max()), 4),
                gender=model.metadata.genders[int(gender_probs.argmax())],
                gender_confidence=round(float(gender_probs.max()), 4),
                age=round(float(predictions.age_years[i]), 1),
            )
        rows.append(row)
    return rows


def embedding_rows(paths: Iterable[Path], encoder: Encoder, options: PredictOptions) -> Iterator[list[dict]]:
    """Yield lists of EMBEDDING_SCHEMA rows for `persona embed`."""
    rows: list[dict] = []
    for result in embed_files(paths, encoder, options):
        vector = None if result.vector is None else result.vector.astype(np.float32).tolist()
        rows.append(dict(path=display_path(result.path), duration_s=result.duration_s, encoder=encoder.name,
                         vector=vector, error=result.error))
        if len(rows) >= options.batch_size:
            yield rows
            rows = []
    if rows:
        yield rows


def until_first_error(batches: Iterable[list[dict]]) -> Iterator[list[dict]]:
    """Pass row batches through up to and including the first row with an `error` (for --fail-fast)."""
    for rows in batches:
        for i, row in enumerate(rows):
            if row["error"]:
                yield rows[: i + 1]
                return
        yield rows
