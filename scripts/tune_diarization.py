"""Choose diarization.py's clustering thresholds on synthetic conversations of RAVDESS actors.

RAVDESS is used here only because benchmarks/diarization.py does not use it: the thresholds are
tuned on one set of voices and judged on others. Each conversation takes 2-4 actors (sexes mixed at
random) taking turns of 1-3 clips, trimmed of their leading and trailing silence, with pauses of
0.2-1.2 s. Every conversation is listened to once (diarization.listen); then each setting of
SPEAKER_DISTANCE and MIN_SPEAKER_SECONDS is scored by frame-level diarization error rate (10 ms, no
collar, optimal speaker mapping) and by how often it finds the right number of speakers.

    python scripts/tune_diarization.py --conversations 24
"""

from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from persona_cli import diarization
from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.encoders.ge2e import load_ge2e

FRAME = 0.01
TRIM_DB = 35.0  # a clip's speech: from the first to the last 20 ms frame within this of its loudest


def trimmed(path: Path) -> np.ndarray:
    wave = load_audio(path)
    frames = wave[: len(wave) // 320 * 320].reshape(-1, 320)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() - TRIM_DB)
    return wave[loud[0] * 320 : (loud[-1] + 1) * 320]


def speakers_of(corpus: Path) -> dict[str, list[Path]]:
    """Each speaker's clips: RAVDESS's Actor_NN folders, or ASED's `bb` field (`a5-03-01-02-50.opus`)."""
    if corpus.name == "ased":
        clips: dict[str, list[Path]] = {}
        for path in sorted(corpus.rglob("*.opus")):
            clips.setdefault("ased" + path.stem.split("-")[-1], []).append(path)
        return {speaker: paths for speaker, paths in clips.items() if len(paths) >= 20}
    return {actor.name: sorted(actor.glob("*.flac")) for actor in sorted(corpus.iterdir()) if actor.is_dir()}


def conversation(clips: dict[str, list[Path]], rng: random.Random, minutes: float) -> tuple[np.ndarray, list[tuple]]:
    parts, reference, t, previous = [], [], 0.0, None
    while t < minutes * 60:
        speaker = rng.choice([a for a in clips if a != previous] or list(clips))
        previous = speaker
        for _ in range(rng.randint(1, 3)):
            wave = trimmed(rng.choice(clips[speaker]))
            reference.append((t, t + len(wave) / SAMPLE_RATE, speaker))
            pause = rng.uniform(0.2, 1.2)
            parts += [wave, np.zeros(int(pause * SAMPLE_RATE), np.float32)]
            t += len(wave) / SAMPLE_RATE + pause
    return np.concatenate(parts), reference


def frames(turns: list[tuple], length: int, names: dict) -> np.ndarray:
    """(length,) speaker index per 10 ms frame, -1 for silence (no overlaps in these conversations)."""
    out = np.full(length, -1)
    for start, end, who in turns:
        out[round(start / FRAME) : round(end / FRAME)] = names.setdefault(who, len(names))
    return out


def error_rate(reference: np.ndarray, hypothesis: np.ndarray) -> float:
    speech = reference >= 0
    miss = np.count_nonzero(speech & (hypothesis < 0))
    false_alarm = np.count_nonzero(~speech & (hypothesis >= 0))
    both = speech & (hypothesis >= 0)
    overlap = np.zeros((reference.max() + 1, max(hypothesis.max() + 1, 1)))
    np.add.at(overlap, (reference[both], hypothesis[both]), 1)
    rows, cols = linear_sum_assignment(-overlap)
    confusion = np.count_nonzero(both) - overlap[rows, cols].sum()
    return (miss + false_alarm + confusion) / max(np.count_nonzero(speech), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, nargs="+", default=[Path("../shared/data/ravdess"), Path("../shared/data/ased")]
    )
    parser.add_argument("--conversations", type=int, default=24)
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distances", type=float, nargs="+", default=[0.8, 0.9, 1.0, 1.1, 1.2])
    parser.add_argument("--smallest", type=float, nargs="+", default=[3.0, 6.0, 10.0])
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpora = [speakers_of(path) for path in args.data]
    encoder = load_ge2e()
    heard = []
    for i in range(args.conversations):
        speakers = corpora[i % len(corpora)]
        chosen = rng.sample(sorted(speakers), 1 + i // len(corpora) % 4)
        wave, reference = conversation({s: speakers[s] for s in chosen}, rng, args.minutes)
        chunks = (wave[s : s + 30 * SAMPLE_RATE] for s in range(0, len(wave), 30 * SAMPLE_RATE))
        heard.append((diarization.listen(chunks, encoder), reference, round(len(wave) / SAMPLE_RATE / FRAME)))
    print(
        "| SPEAKER_DISTANCE | MIN_SPEAKER_SECONDS | DER, count given | DER | DER 1 / 2 / 3 / 4 speakers | count exact |"
    )
    print("|---|---|---|---|---|---|")
    for distance, smallest in itertools.product(args.distances, args.smallest):
        diarization.SPEAKER_DISTANCE, diarization.MIN_SPEAKER_SECONDS = distance, smallest
        given, rates, exact, by_count = [], [], 0, {1: [], 2: [], 3: [], 4: []}
        for listening, reference, length in heard:
            truth = frames(reference, length, {})
            count = len({who for *_, who in reference})
            turns = diarization.diarize(listening)
            rates.append(error_rate(truth, frames([(t.start_s, t.end_s, t.speaker) for t in turns], length, {})))
            by_count[count].append(rates[-1])
            exact += len({t.speaker for t in turns}) == count
            oracle = diarization.diarize(listening, speakers=count)
            given.append(error_rate(truth, frames([(t.start_s, t.end_s, t.speaker) for t in oracle], length, {})))
        per_count = " / ".join(f"{100 * np.mean(v):.1f}" for v in by_count.values() if v)
        print(
            f"| {distance} | {smallest} | {100 * np.mean(given):.1f} % | {100 * np.mean(rates):.1f} % | {per_count} | {exact}/{len(heard)} |"
        )


if __name__ == "__main__":
    main()
