"""Can persona's speaker clustering count speakers? Two measurements on the same conversations.

1. Cluster pairs: each conversation's pieces are over-clustered (average linkage cut at --cut, small
   clusters folded, as diarization.cluster begins), each cluster is named after the reference
   speaker of most of its pieces, and every pair of clusters is described by three similarities.
   A pair of one speaker's clusters should be more similar than a pair of two speakers' clusters;
   where their ranges overlap, no threshold on that similarity can tell "merge" from "keep apart".
   - raw centre cosine: cosine of the two clusters' duration-weighted mean GE2E vectors, uncentred;
   - raw ratio: the mean similarity across the two clusters' pieces over the geometric mean of the
     mean similarities within each;
   - centred cross: the mean similarity across the pieces after centring on the recording's mean.
2. Piece length: diarize() with PIECE_SECONDS x SPEAKER_DISTANCE, speaker count exact and frame
   diarization error (10 ms, no collar, optimal mapping).
3. A cut that falls with the count (--scaled-cuts): centred on the recording's mean, k speakers'
   directions sit about 1/(k-1) apart in cosine, so the distance that parts them shrinks as k grows.
   Each conversation is clustered with a cut of A + B/(k-1) for every k from 2 to 8, and a k whose
   cut finds exactly k speakers is the count (the smallest or the largest such k; the cut for 2
   when none is).
4. Splitting a cluster of two voices (--split): how alike the two halves of ONE speaker's speech
   are, as diarization._split_two_voices cuts them (2-means on the centred pieces, cosine of the
   halves' uncentred means), for stretches of a LibriSpeech reader's 10-minute monologue and for
   RAVDESS and ASED actors' clips strung together across all their emotions; and the speaker count
   and frame error over a grid of SPLIT_SIMILARITY (-1: no split) and SPLIT_SECONDS.

The conversations: the diarization benchmark's (`python benchmarks/diarization.py --build-only
--work DIR`, EmoDB and LibriSpeech voices, clean and overlap + noise) and 24 RAVDESS/ASED
conversations as scripts/tune_diarization.py builds them (acted emotions, seed 0).

    python benchmarks/diarization.py --build-only --work /tmp/diar
    python scripts/measure_speaker_pairs.py --work /tmp/diar
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

sys.path.insert(0, str(Path(__file__).parent))
import tune_diarization as tune  # noqa: E402

from persona_cli import diarization  # noqa: E402
from persona_cli.audio import SAMPLE_RATE, iter_chunks, load_audio  # noqa: E402
from persona_cli.encoders.ge2e import load_ge2e  # noqa: E402

Conversation = tuple[diarization.Listening, list[tuple[float, float, str]]]


def benchmark_conversations(work: Path, encoder) -> dict[str, list[Conversation]]:
    reference: dict[str, list[tuple[float, float, str]]] = {}
    for line in (work / "reference.rttm").read_text().splitlines():
        fields = line.split()
        start, length = float(fields[3]), float(fields[4])
        reference.setdefault(fields[1], []).append((start, start + length, fields[7]))
    sets: dict[str, list[Conversation]] = {"benchmark, clean": [], "benchmark, overlap + noise": []}
    for path in sorted((work / "audio").glob("*.flac")):
        variant = "benchmark, clean" if path.stem.startswith("clean") else "benchmark, overlap + noise"
        sets[variant].append((diarization.listen(iter_chunks(path), encoder, workers=2), reference[path.stem]))
    return sets


def acted_conversations(data: Path, encoder, count: int = 24) -> list[Conversation]:
    """tune_diarization.py's conversations (seed 0, 1.5 min), those with more than one speaker."""
    rng = random.Random(0)
    corpora = [tune.speakers_of(data / name) for name in ("ravdess", "ased")]
    conversations = []
    for i in range(count):
        speakers = corpora[i % len(corpora)]
        chosen = rng.sample(sorted(speakers), 1 + i // len(corpora) % 4)
        wave, reference = tune.conversation({s: speakers[s] for s in chosen}, rng, 1.5)
        if len(chosen) > 1:
            chunks = (wave[s : s + 30 * SAMPLE_RATE] for s in range(0, len(wave), 30 * SAMPLE_RATE))
            conversations.append((diarization.listen(chunks, encoder), reference))
    return conversations


def cluster_pairs(conversations: list[Conversation], cut: float) -> np.ndarray:
    """One row per pair of clusters: same speaker (0/1), raw centre cosine, raw ratio, centred cross."""
    rows = []
    for listening, reference in conversations:
        pieces = diarization.clustering_pieces(listening, diarization._speech_regions(listening.voiced))
        if pieces is None or len(pieces.spans) < 3:
            continue
        raw, vectors, durations = pieces.raw, pieces.centred, pieces.durations
        speaker_of = [
            next((s for a, b, s in reference if a <= (start + end) / 2 <= b), None) for start, end in pieces.spans
        ]
        tree = linkage(vectors.astype(np.float64), method="average", metric="cosine")
        labels = diarization._fold_small_clusters(
            vectors, durations, fcluster(tree, t=cut, criterion="distance") - 1, keep=1
        )
        members = [np.flatnonzero(labels == k) for k in range(labels.max() + 1)]
        named = []
        for ix in members:
            voices = [speaker_of[i] for i in ix if speaker_of[i] is not None]
            named.append(max(set(voices), key=voices.count) if voices else None)
        raw_similarity, centred_similarity = raw @ raw.T, vectors @ vectors.T
        raw_centres = diarization._centres(raw, durations, labels)

        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                if named[a] is None or named[b] is None:  # a cluster of pauses and noise: no speaker to compare
                    continue
                across = raw_similarity[np.ix_(members[a], members[b])].mean()
                rows.append(
                    (
                        named[a] == named[b],
                        raw_centres[a] @ raw_centres[b],
                        across / np.sqrt(_within(raw_similarity, members[a]) * _within(raw_similarity, members[b])),
                        centred_similarity[np.ix_(members[a], members[b])].mean(),
                    )
                )
    return np.array(rows, dtype=float).reshape(-1, 4)


def _within(similarity: np.ndarray, members: np.ndarray) -> float:
    """The mean similarity between different pieces of one cluster (NaN for a single piece)."""
    block = similarity[np.ix_(members, members)]
    return (block.sum() - np.trace(block)) / (len(members) * (len(members) - 1)) if len(members) > 1 else np.nan


def count_and_error(conversations: list[Conversation]) -> tuple[int, float]:
    exact, errors = 0, []
    for listening, reference in conversations:
        length = round(max(end for _, end, _ in reference) / tune.FRAME) + 100
        turns = diarization.diarize(listening)
        exact += len({t.speaker for t in turns}) == len({who for *_, who in reference})
        hypothesis = tune.frames([(t.start_s, t.end_s, t.speaker) for t in turns], length, {})
        errors.append(tune.error_rate(tune.frames(reference, length, {}), hypothesis))
    return exact, float(np.mean(errors))


def count_cells(sets: dict[str, list[Conversation]]) -> str:
    """Each set's exact counts and mean frame error under the module settings now, as table cells."""
    cells = []
    for conversations in sets.values():
        exact, error = count_and_error(conversations)
        cells.append(f"{exact}/{len(conversations)}, {100 * error:.1f} %")
    return " | ".join(cells)


def scaled_cut_counts(conversations: list[Conversation], a: float, b: float) -> dict[str, int]:
    """How many conversations the cut A + B/(k-1) counts exactly (3. above), choosing the smallest
    and the largest consistent k: {"min": ..., "max": ...}."""
    exact, kept_cut = {"min": 0, "max": 0}, diarization.SPEAKER_DISTANCE
    for listening, reference in conversations:
        pieces = diarization.clustering_pieces(listening, diarization._speech_regions(listening.voiced))
        if pieces is None:
            continue
        found = {}
        for k in range(2, 9):
            diarization.SPEAKER_DISTANCE = a + b / (k - 1)
            found[k] = diarization.cluster(pieces.centred, pieces.durations, raw=pieces.raw).max() + 1
        consistent = [k for k, count in found.items() if count == k]
        speakers = len({who for *_, who in reference})
        for pick in (min, max):
            exact[pick.__name__] += (pick(consistent) if consistent else found[2]) == speakers
    diarization.SPEAKER_DISTANCE = kept_cut
    return exact


def one_voice_halves(data: Path, encoder) -> dict[str, list[float]]:
    """The similarity of the two halves of one speaker's speech, per kind of recording (4. above)."""

    def halves_similarity(wave: np.ndarray) -> float:
        chunks = [wave[s : s + 30 * SAMPLE_RATE] for s in range(0, len(wave), 30 * SAMPLE_RATE)]
        listening = diarization.listen(chunks, encoder, workers=2)
        pieces = diarization.clustering_pieces(listening, diarization._speech_regions(listening.voiced))
        assert pieces is not None
        halves = diarization._two_means(pieces.centred, pieces.durations)
        means = diarization._centres(pieces.raw, pieces.durations, halves)
        return float(means[0] @ means[1])

    found: dict[str, list[float]] = {}
    monologue = load_audio(data / "long" / "7367-86737.opus")
    for minutes in (0.5, 1, 2, 4):
        n = int(minutes * 60 * SAMPLE_RATE)
        stretches = [monologue[s : s + n] for s in range(0, len(monologue) - n + 1, n)][:6]
        found[f"a reader, {minutes} min stretches"] = [halves_similarity(w) for w in stretches]
    rng = random.Random(0)
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    for corpus in ("ravdess", "ased"):
        speakers = tune.speakers_of(data / corpus)
        for name in sorted(speakers)[:8]:
            clips = list(speakers[name])
            rng.shuffle(clips)
            wave = np.concatenate([part for clip in clips[:40] for part in (tune.trimmed(clip), pause)])
            found.setdefault(f"{corpus} actors, 40 clips each (0.8-1.9 min of speech)", []).append(
                halves_similarity(wave)
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a folder built by benchmarks/diarization.py")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cut", type=float, default=0.7, help="the over-clustering's distance")
    parser.add_argument("--pieces", type=float, nargs="+", default=[2.4, 3.2, 4.0, 5.6])
    parser.add_argument("--distances", type=float, nargs="+", default=[0.9, 1.0])
    parser.add_argument("--scaled-cuts", action="store_true", help="also measure 3. (a grid of A and B)")
    parser.add_argument("--split", action="store_true", help="also measure 4. (splitting a cluster of two voices)")
    args = parser.parse_args()
    encoder = load_ge2e()
    sets = benchmark_conversations(args.work, encoder)
    sets["RAVDESS/ASED, acted"] = acted_conversations(args.data, encoder)

    print(f"Cluster pairs, cut at {args.cut}: similarity of one speaker's pairs against two speakers'\n")
    print(
        "| conversations | similarity | one speaker: min / 10th pct / median | two speakers: median / 90th pct / max |"
    )
    print("|---|---|---|---|")
    pair_sets = {
        "benchmark, both variants": sets["benchmark, clean"] + sets["benchmark, overlap + noise"],
        "RAVDESS/ASED, acted": sets["RAVDESS/ASED, acted"],
    }
    for label, conversations in pair_sets.items():
        rows = cluster_pairs(conversations, args.cut)
        same = rows[:, 0] == 1
        if same.all() or not same.any():
            print(f"| {label} | (no pairs of both kinds to compare) | | |")
            continue
        for column, similarity in enumerate(("raw centre cosine", "raw ratio", "centred cross"), start=1):
            one, two = rows[same, column], rows[~same, column]
            print(
                f"| {label} ({same.sum()} / {(~same).sum()} pairs) | {similarity} | "
                f"{np.nanmin(one):.3f} / {np.nanpercentile(one, 10):.3f} / {np.nanmedian(one):.3f} | "
                f"{np.nanmedian(two):.3f} / {np.nanpercentile(two, 90):.3f} / {np.nanmax(two):.3f} |"
            )

    print("\nPiece length and cut: speaker count exact, frame error without a collar\n")
    print("| PIECE_SECONDS | SPEAKER_DISTANCE | " + " | ".join(sets) + " |")
    print("|---|---|" + "---|" * len(sets))
    kept = diarization.PIECE_SECONDS, diarization.SPEAKER_DISTANCE
    for piece in args.pieces:
        for distance in args.distances:
            diarization.PIECE_SECONDS, diarization.SPEAKER_DISTANCE = piece, distance
            print(f"| {piece} | {distance} | " + count_cells(sets) + " |", flush=True)
    diarization.PIECE_SECONDS, diarization.SPEAKER_DISTANCE = kept
    if args.scaled_cuts:
        print("\nA cut of A + B/(k-1): speaker count exact\n")
        print("| A | B | cuts for 2 / 3 / 4 | k chosen | " + " | ".join(sets) + " |")
        print("|---|---|---|---|" + "---|" * len(sets))
        for a, b in itertools.product((0.8, 0.85, 0.9), (0.15, 0.2, 0.3)):
            counts = [scaled_cut_counts(conversations, a, b) for conversations in sets.values()]
            cuts = " / ".join(f"{a + b / (k - 1):.3f}" for k in (2, 3, 4))
            for pick in ("min", "max"):
                cells = [f"{exact[pick]}/{len(conversations)}" for exact, conversations in zip(counts, sets.values())]
                print(f"| {a} | {b} | {cuts} | {pick} | " + " | ".join(cells) + " |", flush=True)
    if args.split:
        print("\nThe two halves of one speaker: cosine of their uncentred means\n")
        print("| recordings | min | median | max |")
        print("|---|---|---|---|")
        for label, values in one_voice_halves(args.data, encoder).items():
            print(f"| {label} ({len(values)}) | {min(values):.3f} | {np.median(values):.3f} | {max(values):.3f} |")
        print("\nSplitting clusters: speaker count exact, frame error without a collar\n")
        print("| SPLIT_SIMILARITY | SPLIT_SECONDS | " + " | ".join(sets) + " |")
        print("|---|---|" + "---|" * len(sets))
        kept_split = diarization.SPLIT_SIMILARITY, diarization.SPLIT_SECONDS
        for similarity, seconds in [(-1.0, 10.0), *itertools.product((0.78, 0.80, 0.82, 0.84), (6.0, 10.0))]:
            diarization.SPLIT_SIMILARITY, diarization.SPLIT_SECONDS = similarity, seconds
            print(f"| {similarity} | {seconds} | " + count_cells(sets) + " |", flush=True)
        diarization.SPLIT_SIMILARITY, diarization.SPLIT_SECONDS = kept_split


if __name__ == "__main__":
    main()
