"""Who speaks when in one recording: the voice detector's speech, GE2E speaker embeddings of 1.6 s
windows along it, clustered into speakers, and cut into segments of one speaker each.

`listen` streams a recording's 16 kHz chunks once and keeps only what diarization needs: one voice
flag per 30 ms and one 256-d speaker vector per 0.8 s of speech (about 5 MB for an hour), never the
audio itself, so memory does not grow with the recording. Chunks are independent jobs (each carries
the 0.8 s of audio that its first window shares with the previous chunk), so a pool of workers
embeds one long recording on every core. `diarize` turns that into `Turn`s:

1. speech regions: runs of voiced windows, bridged over pauses shorter than MIN_PAUSE_SECONDS;
2. the regions cut into pieces of at most PIECE_SECONDS, each the mean of the windows centred in it,
   clustered by average-linkage agglomeration on cosine distance. Pieces, not windows, are clustered,
   and at most MAX_CLUSTERED_PIECES of them (evenly spaced; the rest join their nearest cluster):
   the distance matrix grows with the square of their number, and would otherwise make a long
   recording's memory grow with its length (an hour of speech holds ~1,500 pieces, three hours 4,500:
   an 80 MB matrix). Pieces are noisy, so the clusters are then judged whole: two whose means are
   alike are joined, and one whose two halves' means are not is split (`cluster`);
3. every window assigned to the nearest speaker centroid, every 30 ms of speech to its nearest
   window, so a change of speaker is placed to within a window step even without a pause;
4. runs shorter than MIN_SEGMENT_SECONDS merged into a neighbour, and runs longer than
   MAX_SEGMENT_SECONDS cut into equal segments: long enough to read an emotion from, short enough
   to follow it changing.

The thresholds were chosen on synthetic conversations of RAVDESS actors, whose voices the diarization
benchmark (benchmarks/diarization.py) does not use; docs/long-recordings.md has the figures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders.ge2e import (
    GE2E_DIM,
    HOP,
    LAYER_STATS_DIM,
    MAX_PARTIALS_PER_FORWARD,
    PARTIAL_FRAMES,
    GE2EEncoder,
    layer_moments,
)
from persona_cli.encoders.mel import power_mel
from persona_cli.encoders.prosody import FRAME as PROSODY_FRAME, HOP as PROSODY_HOP, MEASURES, ProsodyEncoder
from persona_cli.memory import return_free_memory
from persona_cli.runtime import compute_threads
from persona_cli.speech import VAD_WINDOW, normalize_volume, speech_seconds, voiced_windows

WINDOW_SAMPLES = PARTIAL_FRAMES * HOP  # 1.6 s: one GE2E partial, what its weights were trained on
WINDOW_STEP_SAMPLES = WINDOW_SAMPLES // 2  # 0.8 s
MIN_VOICED_SHARE = 0.5  # a window with less speech than this says little about who speaks
FLAG_SECONDS = VAD_WINDOW / SAMPLE_RATE  # 30 ms per voice flag
# Windows per LSTM call: a 30 s chunk's ~37 in one call, with no small remainder call after it.
# In bfloat16, calls of 64 windows cost less per window than calls of 32 (docs/long-recordings.md).
WINDOWS_PER_FORWARD = 2 * MAX_PARTIALS_PER_FORWARD

MIN_PAUSE_SECONDS = 0.3  # shorter pauses do not end a speech region
MIN_SEGMENT_SECONDS = 0.5  # what the emotion model needs (PredictOptions.min_seconds); shorter speech alone is dropped
MAX_SEGMENT_SECONDS = 4.0  # the length of an acted emotion corpus's clip, roughly
PIECE_SECONDS = 2.4  # the clustering's unit: three windows
# Cosine distance between two clusters' pieces (after centring, see diarize), on average, above which
# they are different speakers.
SPEAKER_DISTANCE = 1.0
# A cluster holding less speech than this is folded into its nearest neighbour: a cough, a laugh or a
# burst of noise otherwise becomes a speaker of its own.
MIN_SPEAKER_SECONDS = 6.0
# Cosine similarity of two clusters' mean embeddings, before centring, above which they are one voice.
SAME_SPEAKER_SIMILARITY = 0.9
# A cluster is split in two where its two halves (2-means on the centred pieces) are less alike than
# this, uncentred, and each holds at least SPLIT_SECONDS of speech: two voices the cut joined. One
# speaker's halves stayed above it in every recording measured, an actor's across all of their acted
# emotions included, if only just (docs/long-recordings.md, "Splitting a cluster of two voices").
SPLIT_SIMILARITY = 0.80
SPLIT_SECONDS = 10.0  # halves with less speech have means too noisy to compare
REFINEMENT_ROUNDS = 5  # moves of every piece to its nearest cluster centre
# 40 minutes of speech: an hour's pieces are clustered every other one, and a speaker long enough to
# be kept (MIN_SPEAKER_SECONDS, 3 pieces) is still in the sample when their speech is in one stretch.
MAX_CLUSTERED_PIECES = 1000
# A centred piece's mean of unit vectors shorter than this points nowhere (float32 rounding of unit
# vectors is about 1e-7, so this is far above it and far below any real difference between voices).
MIN_CENTRED_NORM = 1e-4


@dataclass(frozen=True)
class Turn:
    """One stretch of one speaker's speech."""

    start_s: float
    end_s: float
    speaker: int  # 0, 1, ... in order of first speech

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Listening:
    """What `listen` keeps of a recording: enough to diarize it, not the audio."""

    voiced: np.ndarray  # one bool per 30 ms
    window_centres_s: np.ndarray  # (n,) the centre of each embedded window
    window_vectors: np.ndarray  # (n, 256) L2-normalised GE2E embeddings

    @property
    def speech_s(self) -> float:
        return float(np.count_nonzero(self.voiced)) * FLAG_SECONDS

    def speech_between(self, start_s: float, end_s: float) -> float:
        """Seconds of speech flagged from start_s to end_s."""
        first, last = round(start_s / FLAG_SECONDS), round(end_s / FLAG_SECONDS)
        return float(np.count_nonzero(self.voiced[first:last])) * FLAG_SECONDS


@dataclass
class ChunkFeatures:
    """What else a chunk's listening measured, for its segments' vectors (segment_features.py)."""

    moments: np.ndarray | None  # (windows, 1024) each window's layer moments (ge2e.layer_moments)
    first_frame: int  # the recording's prosody frame (one every prosody.HOP samples) of measures[:, 0]
    measures: np.ndarray | None  # (prosody.MEASURES, frames) of the frames that end inside this chunk


class FeatureSink(Protocol):
    """Takes each chunk's ChunkFeatures, in the recording's order, as `listen` hears them."""

    keeps_layers: bool  # the windows' layer moments are wanted
    prosody: ProsodyEncoder | None  # the prosody frames' measures are wanted, made by this

    def add(self, features: ChunkFeatures) -> None: ...


@dataclass
class _ChunkResult:
    voiced: np.ndarray
    centres_s: np.ndarray
    vectors: np.ndarray
    features: ChunkFeatures | None = None


def listen(
    chunks: Iterable[np.ndarray],
    encoder: GE2EEncoder,
    workers: int = 0,
    progress: Callable[[float], None] | None = None,
    sink: FeatureSink | None = None,
) -> Listening:
    """The voice flags and window embeddings of a recording given as consecutive 16 kHz mono chunks
    (audio.iter_chunks). With `workers`, chunks are embedded in parallel, at most 2 x workers at once.
    With `sink`, what else it asks of each chunk goes there in order, and is not kept here."""
    jobs = _chunk_jobs(chunks)
    if workers <= 0:
        heard: Iterable[_ChunkResult] = (_listen_to_chunk(*job, encoder, progress, sink) for job in jobs)
    else:
        heard = _in_parallel(jobs, encoder, workers, progress, sink)
    results = []
    for result in heard:
        if sink is not None and result.features is not None:
            sink.add(result.features)
            result.features = None
        results.append(result)
    if not results:
        return Listening(np.zeros(0, bool), np.zeros(0), np.zeros((0, GE2E_DIM), np.float32))
    return Listening(
        np.concatenate([r.voiced for r in results]),
        np.concatenate([r.centres_s for r in results]),
        np.concatenate([r.vectors for r in results]).astype(np.float32),
    )


def _chunk_jobs(chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, int, int]]:
    """(samples, first sample's position in the recording, where the new chunk starts in samples):
    each chunk behind the part of the previous one that its first window still needs."""
    tail = np.zeros(0, np.float32)
    position = 0  # of the chunk's first sample in the recording
    for chunk in chunks:
        buffer = np.concatenate([tail, chunk]) if len(tail) else chunk
        start = position - len(tail)
        yield buffer, start, len(tail)
        # the next window not wholly inside this buffer starts on a step boundary at or before its end
        end = start + len(buffer)
        next_window = max(
            start, (end - WINDOW_SAMPLES) // WINDOW_STEP_SAMPLES * WINDOW_STEP_SAMPLES + WINDOW_STEP_SAMPLES
        )
        # carried from a voice-flag boundary, so that every buffer's flags fall on the recording's 30 ms grid
        carried_from = max(start, next_window // VAD_WINDOW * VAD_WINDOW)
        tail = buffer[carried_from - start :] if next_window < end else np.zeros(0, np.float32)
        position += len(chunk)


def _in_parallel(
    jobs: Iterator[tuple[np.ndarray, int, int]],
    encoder: GE2EEncoder,
    workers: int,
    progress,
    sink: FeatureSink | None,
) -> Iterator[_ChunkResult]:
    threads = compute_threads(workers)

    def job(buffer: np.ndarray, start: int, new_from: int) -> _ChunkResult:
        torch.set_num_threads(threads)
        result = _listen_to_chunk(buffer, start, new_from, encoder, progress, sink)
        return_free_memory()  # the chunk's spectrogram and LSTM activations, freed in this thread's heap
        return result

    in_flight: deque[Future[_ChunkResult]] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="persona-listen")
    try:
        for buffer, start, new_from in jobs:
            in_flight.append(pool.submit(job, buffer, start, new_from))
            if len(in_flight) > 2 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@torch.inference_mode()
def _listen_to_chunk(
    buffer: np.ndarray,
    start: int,
    new_from: int,
    encoder: GE2EEncoder,
    progress: Callable[[float], None] | None,
    sink: FeatureSink | None = None,
) -> _ChunkResult:
    """The new part's voice flags, the embeddings of the speech windows wholly inside the buffer, and
    what else `sink` asks for."""
    wave = normalize_volume(buffer)
    voiced = voiced_windows(wave)
    if speech_seconds(wave, voiced) == 0:  # noise or a steady tone that the detector took for speech
        voiced = np.zeros_like(voiced)
    # the flags of the new part: the carried-over part was flagged with the previous chunk
    new_voiced = voiced[new_from // VAD_WINDOW :]
    first = -(-start // WINDOW_STEP_SAMPLES) * WINDOW_STEP_SAMPLES
    starts = np.arange(first, start + len(buffer) - WINDOW_SAMPLES + 1, WINDOW_STEP_SAMPLES) - start
    flags_per_window = WINDOW_SAMPLES // VAD_WINDOW
    shares = np.array([voiced[s // VAD_WINDOW : s // VAD_WINDOW + flags_per_window].mean() for s in starts])
    starts = starts[shares >= MIN_VOICED_SHARE] if len(starts) else starts
    keep_layers = sink is not None and sink.keeps_layers
    vectors = np.zeros((0, GE2E_DIM), np.float32)
    moments = np.zeros((0, LAYER_STATS_DIM), np.float32) if keep_layers else None
    if len(starts):
        mel = power_mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), encoder.mel_filters, HOP)
        vectors, moments = _window_vectors(mel, starts, encoder, keep_layers)
    features = None
    if sink is not None:
        first_frame, measures = _prosody_frames(buffer, start, new_from, sink.prosody)
        features = ChunkFeatures(moments, first_frame, measures)
    if progress is not None:
        progress((len(buffer) - new_from) / SAMPLE_RATE)
    centres = (start + starts + WINDOW_SAMPLES / 2) / SAMPLE_RATE
    return _ChunkResult(new_voiced, centres, vectors, features)


def _prosody_frames(
    buffer: np.ndarray, start: int, new_from: int, prosody: ProsodyEncoder | None
) -> tuple[int, np.ndarray | None]:
    """The first of the prosody frames this chunk measures, and their measures (None without `prosody`).

    Each prosody frame of the recording is measured by the chunk its last sample falls in, so that
    every frame is measured once; the carried part of the buffer holds the start of the frames that
    run across from the previous chunk. The samples are the raw ones: prosody reads loudness as it
    was recorded, where the GE2E network hears the chunk at a set volume."""
    new_start, end = start + new_from, start + len(buffer)
    # the first frame ending after the new part starts, and starting inside the buffer
    first = max(_ceil_div(new_start - PROSODY_FRAME + 1, PROSODY_HOP), _ceil_div(start, PROSODY_HOP))
    if prosody is None:
        return first, None
    last = (end - PROSODY_FRAME) // PROSODY_HOP  # the last frame ending inside the buffer
    if last < first:
        return first, np.zeros((MEASURES, 0), np.float32)
    samples = buffer[first * PROSODY_HOP - start : last * PROSODY_HOP + PROSODY_FRAME - start]
    return first, prosody.frame_measures(samples)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _window_vectors(
    mel: torch.Tensor, starts: np.ndarray, encoder: GE2EEncoder, keep_layers: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The GE2E embedding of the 1.6 s window at each of `starts` (samples into the chunk whose mel
    frames `mel` holds), (len(starts), 256); with `keep_layers`, also its layer moments, (len(starts), 1024)."""
    partials = torch.stack([mel[s // HOP : s // HOP + PARTIAL_FRAMES] for s in starts])
    embeds, moments = [], []
    for i in range(0, len(partials), WINDOWS_PER_FORWARD):
        batch_embeds, layer_outputs = encoder.forward(
            partials[i : i + WINDOWS_PER_FORWARD].to(encoder.device, encoder.dtype)
        )
        embeds.append(batch_embeds)
        if keep_layers:
            moments.append(layer_moments(layer_outputs))
    return torch.cat(embeds).cpu().numpy(), torch.cat(moments).cpu().numpy() if keep_layers else None


def diarize(
    listening: Listening, speakers: int | None = None, min_speakers: int = 1, max_speakers: int | None = None
) -> list[Turn]:
    """The recording's turns, in time order: who speaks when. `speakers` fixes the number of speakers;
    otherwise it is estimated, within [min_speakers, max_speakers]."""
    regions = _speech_regions(listening.voiced)
    if not regions:
        return []
    pieces = clustering_pieces(listening, regions)
    if pieces is None:  # speech, but no window of it to tell voices apart by: one speaker
        labels_of_windows = np.zeros(len(listening.window_centres_s), int)
    else:
        piece_labels = cluster(pieces.centred, pieces.durations, speakers, min_speakers, max_speakers, raw=pieces.raw)
        centres = _centres(pieces.centred, pieces.durations, piece_labels)
        labels_of_windows = (pieces.centred_windows @ centres.T).argmax(axis=1)
    turns: list[Turn] = []
    for region in regions:
        turns.extend(_turns_in(region, listening.window_centres_s, labels_of_windows))
    return_free_memory()  # the clustering's distance matrix and copies of the vectors
    return _in_order_of_first_speech(turns)


@dataclass
class Pieces:
    """What the clustering works on: a recording's speech regions cut into pieces of at most
    PIECE_SECONDS, each described by the mean of the windows centred in it."""

    spans: list[tuple[float, float]]  # (start_s, end_s) of each piece with a window near it
    raw: np.ndarray  # (n, dim) their windows' embeddings, averaged and normalised
    centred: np.ndarray  # (n, dim) the same from the centred windows
    centred_windows: np.ndarray  # (windows, dim) every window, centred on the recording's mean and normalised

    @property
    def durations(self) -> np.ndarray:
        return np.array([end - start for start, end in self.spans])


def clustering_pieces(listening: Listening, regions: list[tuple[float, float]]) -> Pieces | None:
    """The pieces of `regions` (diarize's speech regions of `listening`), or None when no piece
    has a window near it, or none differs from the recording's mean."""
    spans = [piece for region in regions for piece in _cut(region, PIECE_SECONDS)]
    raw, kept = _piece_means(spans, listening.window_vectors, listening.window_centres_s)
    if len(kept) == 0:
        return None
    # What every window shares (the ReLU'd embedding's common direction, the room, the channel)
    # says nothing about who speaks; without it the speakers' differences stand out.
    centred_windows = _normalised(listening.window_vectors - listening.window_vectors.mean(axis=0))
    centred, _ = _piece_means(spans, centred_windows, listening.window_centres_s)
    # A piece whose windows average to the recording's mean (two windows, one each side of it)
    # points nowhere once centred: normalised, it would be a direction of rounding noise (or zero,
    # whose cosine distances scipy refuses), and it says nothing of who speaks.
    telling = np.linalg.norm(centred, axis=1) > MIN_CENTRED_NORM
    if not telling.any():
        return None
    spans = [spans[i] for i, keep in zip(kept, telling) if keep]
    return Pieces(spans, _normalised(raw[telling]), _normalised(centred[telling]), centred_windows)


def cluster(
    vectors: np.ndarray,
    durations: np.ndarray,
    speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int | None = None,
    raw: np.ndarray | None = None,
) -> np.ndarray:
    """A speaker label (0..k-1) for each L2-normalised vector, whose speech lasts `durations` seconds.

    Average-linkage clusters on cosine distance (of at most MAX_CLUSTERED_PIECES vectors, evenly
    spaced, the others joining their nearest cluster), cut at SPEAKER_DISTANCE; clusters with less than
    MIN_SPEAKER_SECONDS of speech folded into their nearest neighbour; clusters whose `raw` vectors
    (the embeddings before centring) point the same way, above SAME_SPEAKER_SIMILARITY, joined, and
    clusters whose two halves' raw means are less alike than SPLIT_SIMILARITY split; then the closest clusters
    merged while there are more than `max_speakers` (or `speakers`), or the tree cut into
    `min_speakers` (or `speakers`) when there are fewer; last, every vector moved to its nearest
    cluster centre. Folding before counting keeps a cough or a burst of noise from taking the place
    of a speaker when the number is given."""
    from scipy.cluster.hierarchy import fcluster, linkage  # scipy's import is slow: only when diarizing

    n = len(vectors)
    low, high = (speakers, speakers) if speakers is not None else (min_speakers, max_speakers or n)
    low, high = max(1, min(low, n)), max(1, min(high, n))
    if n == 1:
        return np.zeros(1, int)
    sample = np.unique(np.linspace(0, n - 1, min(n, MAX_CLUSTERED_PIECES)).round().astype(int))
    tree = linkage(vectors[sample].astype(np.float64), method="average", metric="cosine")

    def cut(**how) -> np.ndarray:
        """The tree cut as fcluster is told, and every vector given its nearest cluster's label."""
        labels = fcluster(tree, **how) - 1
        if len(sample) < n:
            labels = (vectors @ _centres(vectors[sample], durations[sample], labels).T).argmax(axis=1)
        return np.unique(labels, return_inverse=True)[1]

    labels = _fold_small_clusters(vectors, durations, cut(t=SPEAKER_DISTANCE, criterion="distance"), keep=low)
    while raw is not None and speakers is None and labels.max() + 1 > low:
        # Centring makes one voice's variation look like several voices; uncentred, a
        # recording's different speakers stay below this similarity and one speaker's parts above it.
        centres = _centres(raw, durations, labels)
        similarity = centres @ centres.T
        np.fill_diagonal(similarity, -np.inf)
        a, b = np.unravel_index(int(similarity.argmax()), similarity.shape)
        if similarity[a, b] < SAME_SPEAKER_SIMILARITY:
            break
        labels = np.unique(np.where(labels == max(a, b), min(a, b), labels), return_inverse=True)[1]
    if raw is not None and speakers is None:
        labels = _split_two_voices(vectors, raw, durations, labels, most=high)
    while labels.max() + 1 > high:
        centres = _centres(vectors, durations, labels)
        similarity = centres @ centres.T
        np.fill_diagonal(similarity, -np.inf)
        a, b = np.unravel_index(int(similarity.argmax()), similarity.shape)
        labels = np.unique(np.where(labels == max(a, b), min(a, b), labels), return_inverse=True)[1]
    if labels.max() + 1 < low:
        labels = cut(t=low, criterion="maxclust")
    for _ in range(REFINEMENT_ROUNDS):
        moved = (vectors @ _centres(vectors, durations, labels).T).argmax(axis=1)
        if np.array_equal(moved, labels) or len(np.unique(moved)) < labels.max() + 1:
            break
        labels = moved
    return labels


def _split_two_voices(
    vectors: np.ndarray, raw: np.ndarray, durations: np.ndarray, labels: np.ndarray, most: int
) -> np.ndarray:
    """`labels` with each cluster that holds two voices split in two, while there are fewer than
    `most` clusters. The cut joins pieces, which are noisy; the test is on two halves' means, which
    average many pieces and so tell two people from one far better (SPLIT_SIMILARITY)."""
    split = True
    while split and labels.max() + 1 < most:
        split = False
        for k in range(labels.max() + 1):
            members = np.flatnonzero(labels == k)
            if durations[members].sum() < 2 * SPLIT_SECONDS:
                continue
            halves = _two_means(vectors[members], durations[members])
            seconds = np.bincount(halves, weights=durations[members], minlength=2)
            if seconds.min() < SPLIT_SECONDS:
                continue
            means = _centres(raw[members], durations[members], halves)
            if means[0] @ means[1] < SPLIT_SIMILARITY:
                labels = labels.copy()
                labels[members[halves == 1]] = labels.max() + 1
                split = True
                break
    return labels


def _two_means(vectors: np.ndarray, durations: np.ndarray, rounds: int = 10) -> np.ndarray:
    """0 or 1 for each L2-normalised vector: 2-means on cosine, from two far-apart vectors (the one
    least like the mean, and the one least like that; all pairs would take memory that grows with
    the square of a long recording's pieces)."""
    a = int((vectors @ vectors.mean(axis=0)).argmin())
    b = int((vectors @ vectors[a]).argmin())
    halves = (vectors @ vectors[[a, b]].T).argmax(axis=1)
    for _ in range(rounds):
        if halves.min() == halves.max():
            break
        moved = (vectors @ _centres(vectors, durations, halves).T).argmax(axis=1)
        if np.array_equal(moved, halves):
            break
        halves = moved
    return halves


def _centres(vectors: np.ndarray, durations: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each cluster's duration-weighted mean direction, (k, dim)."""
    weighted = vectors * durations[:, None]
    return _normalised(np.stack([weighted[labels == k].sum(0) for k in range(labels.max() + 1)]))


def _fold_small_clusters(vectors: np.ndarray, durations: np.ndarray, labels: np.ndarray, keep: int) -> np.ndarray:
    """Clusters with less than MIN_SPEAKER_SECONDS of speech joined to their nearest, smallest first,
    while more than `keep` remain; labels renumbered 0..k-1."""
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() + 1 > keep:
        seconds = np.bincount(labels, weights=durations)
        smallest = int(seconds.argmin())
        if seconds[smallest] >= MIN_SPEAKER_SECONDS:
            break
        centres = _centres(vectors, durations, labels)
        similarity = centres @ centres[smallest]
        similarity[smallest] = -np.inf
        labels = np.unique(np.where(labels == smallest, int(similarity.argmax()), labels), return_inverse=True)[1]
    return labels


def _speech_regions(voiced: np.ndarray) -> list[tuple[float, float]]:
    """(start_s, end_s) of each run of speech, runs closer than MIN_PAUSE_SECONDS joined, those
    shorter than MIN_SEGMENT_SECONDS left out."""
    flags = np.concatenate([[False], voiced, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(flags))
    runs = [[a * FLAG_SECONDS, b * FLAG_SECONDS] for a, b in zip(edges[::2], edges[1::2])]
    joined: list[list[float]] = []
    for run in runs:
        if joined and run[0] - joined[-1][1] < MIN_PAUSE_SECONDS:
            joined[-1][1] = run[1]
        else:
            joined.append(run)
    return [(round(a, 3), round(b, 3)) for a, b in joined if b - a >= MIN_SEGMENT_SECONDS]


def _cut(span: tuple[float, float], longest: float) -> list[tuple[float, float]]:
    """`span` in equal parts no longer than `longest`."""
    start, end = span
    parts = max(1, int(np.ceil((end - start) / longest - 1e-9)))
    bounds = np.linspace(start, end, parts + 1)
    return [(round(float(a), 3), round(float(b), 3)) for a, b in zip(bounds[:-1], bounds[1:])]


def _piece_means(
    pieces: list[tuple[float, float]], window_vectors: np.ndarray, centres: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    """The mean of the windows centred in each piece (its nearest window when none is), and which
    pieces had a window within a window's length."""
    if len(centres) == 0:
        return np.zeros((0, window_vectors.shape[1])), []
    vectors, kept = [], []
    for i, (start, end) in enumerate(pieces):
        inside = np.flatnonzero((centres >= start) & (centres < end))
        if len(inside) == 0:
            nearest = int(np.abs(centres - (start + end) / 2).argmin())
            if abs(centres[nearest] - (start + end) / 2) > WINDOW_SAMPLES / SAMPLE_RATE:
                continue
            inside = np.array([nearest])
        vectors.append(window_vectors[inside].mean(0))
        kept.append(i)
    return np.stack(vectors) if vectors else np.zeros((0, window_vectors.shape[1])), kept


def _turns_in(region: tuple[float, float], centres: np.ndarray, window_labels: np.ndarray) -> list[Turn]:
    """A region's turns: each 30 ms labelled as its nearest window, short runs merged, long ones cut."""
    start, end = region
    times = np.arange(start, end, FLAG_SECONDS) + FLAG_SECONDS / 2
    if len(centres):
        after = np.clip(np.searchsorted(centres, times), 1, max(len(centres) - 1, 1))
        before = after - 1
        nearest = np.where(
            np.abs(centres[before] - times) <= np.abs(centres[np.minimum(after, len(centres) - 1)] - times),
            before,
            np.minimum(after, len(centres) - 1),
        )
        labels = window_labels[nearest]
    else:
        labels = np.zeros(len(times), int)
    runs = _runs(labels)
    runs = _merge_short_runs(runs, round(MIN_SEGMENT_SECONDS / FLAG_SECONDS))
    turns: list[Turn] = []
    for first, last, speaker in runs:
        run_start = start + first * FLAG_SECONDS
        run_end = min(end, start + last * FLAG_SECONDS)
        turns.extend(Turn(a, b, speaker) for a, b in _cut((run_start, run_end), MAX_SEGMENT_SECONDS))
    return turns


def _runs(labels: np.ndarray) -> list[list[int]]:
    """[first, end, label] of each run of equal labels (end exclusive)."""
    change = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], change, [len(labels)]])
    return [[int(a), int(b), int(labels[a])] for a, b in zip(bounds[:-1], bounds[1:])]


def _merge_short_runs(runs: list[list[int]], shortest: int) -> list[list[int]]:
    """Give each run shorter than `shortest` flags to its longer neighbour, shortest runs first."""
    runs = [run[:] for run in runs]
    while len(runs) > 1:
        lengths = [end - first for first, end, _ in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= shortest:
            break
        left = lengths[i - 1] if i > 0 else -1
        right = lengths[i + 1] if i + 1 < len(runs) else -1
        j = i - 1 if left >= right else i + 1
        runs[j] = [min(runs[i][0], runs[j][0]), max(runs[i][1], runs[j][1]), runs[j][2]]
        del runs[i]
        # neighbours that now share a speaker become one run
        merged: list[list[int]] = []
        for run in runs:
            if merged and merged[-1][2] == run[2]:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        runs = merged
    return runs


def _in_order_of_first_speech(turns: list[Turn]) -> list[Turn]:
    order: dict[int, int] = {}
    for turn in turns:
        order.setdefault(turn.speaker, len(order))
    return [Turn(t.start_s, t.end_s, order[t.speaker]) for t in turns]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


__all__ = ["Listening", "Pieces", "Turn", "cluster", "clustering_pieces", "diarize", "listen"]
