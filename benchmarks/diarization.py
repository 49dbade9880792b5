"""Who speaks when in long recordings (issue #14): diarization error, speaker count, each speaker's
gender and age, and the time of each `persona predict --per` mode, on synthetic conversations.
Prints a markdown table (and, with --json OUT, every figure per conversation).

    python benchmarks/diarization.py                      # 12 clean + 12 noisy conversations of 1-3 min
    python benchmarks/diarization.py --model runs/heldout-emodb-librispeech/persona-heldout-emodb-librispeech.safetensors
    python benchmarks/diarization.py --long               # 3 clean + 3 noisy conversations of 10 min
    python benchmarks/diarization.py --conversations 2 --minutes 0.5 1 --work /tmp/diar   # a quick look
    python benchmarks/diarization.py --check-scoring      # the scoring against the reference itself, no persona

The conversations are built from corpora whose speakers the heldout model has not seen: EmoDB
(10 actors, German, sex and age in speakers.csv) and LibriSpeech (261 readers, English, sex only),
from ../shared/data. Each conversation draws its 2, 3 or 4 speakers from one corpus, with both sexes
present, and strings together turns of 1-4 utterances of one speaker (EmoDB clips, or 2-6 s excerpts
of LibriSpeech clips cut at quiet moments; clips may recur), with pauses of 0.2-1.5 s between turns.
Each speaker has a loudness of their own (-28 to -20 dBFS). Two variants:

- clean: no overlap, no noise;
- overlap+noise: a quarter of the turn changes start 0.2-1.0 s before the previous turn ends (the two
  voices summed), and background noise at 10-20 dB SNR (speech power over the reference's speech):
  generated pink or brown noise, babble of four other speakers of the same corpus, or pink + babble.

The work folder (--work, kept; default a temporary one) holds `audio/URI.flac` (16 kHz), the
reference `reference.rttm` (one line per stretch of speech: an utterance, split at its inner silences
of 0.3 s or more; uri = file stem), `speakers.csv` (each reference speaker's corpus, sex and age
where known) and `conversations.json`; a second run with the same --work and settings reuses them. persona runs once per mode as its own process on `audio/`, timed
from start to exit (model loading included): `--per segment -o segments.rttm`, `--per segment -o
segments.csv`, `--per speaker -o speakers.csv` and `--per file -o files.csv`, in `WORK/hyp/`.

Scoring, with pyannote.metrics (`pip install -e .[bench]`):
- diarization error rate (missed speech + false alarm + speaker confusion, over reference speech),
  overlap scored (skip_overlap=False), with a collar of +-0.25 s around every reference boundary
  (NIST's convention; pyannote's `collar=0.5` is the collar's whole width) and with none;
- speaker count: the share of conversations where the hypothesis has as many speakers as the
  reference, and the mean absolute difference;
- gender accuracy and age MAE per speaker: each hypothesis speaker mapped to a reference speaker by
  pyannote's optimal (Hungarian) mapping, its `--per speaker` row compared with that speaker's
  labels; age only for EmoDB speakers. Speakers left unmapped are counted, not scored.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))
from throughput import _run_child  # noqa: E402

SAMPLE_RATE = 16_000
VARIANTS = ("clean", "overlap+noise")
URI_VARIANT = {"clean": "clean", "overlap+noise": "noisy"}
SPEAKER_COUNTS = (2, 3, 4)
CORPORA = ("emodb", "librispeech")
PAUSE_S = (0.2, 1.5)  # between turns
GAP_IN_TURN_S = (0.05, 0.25)  # between one speaker's consecutive utterances
UTTERANCES_PER_TURN = (1, 4)
OVERLAP_SHARE = 0.25  # of turn changes, in overlap+noise
OVERLAP_S = (0.2, 1.0)
SNR_DB = (10.0, 20.0)
NOISES = ("pink", "brown", "babble", "pink+babble")
BABBLE_VOICES = 4
SPEAKER_LEVEL_DBFS = (-28.0, -20.0)
EXCERPT_S = (2.0, 6.0)  # LibriSpeech clips (up to 23 s) are cut into utterances of this length
FRAME = SAMPLE_RATE // 100  # 10 ms, for trimming silence
TRIM_BELOW_PEAK_DB = 35.0  # frames this far below the clip's loudest frame count as silence
MIN_PAUSE_S = 0.3  # silences this long inside an utterance split its reference segment; shorter ones are speech
COLLARS = {"collar 0.25": 0.5, "no collar": 0.0}  # name -> pyannote's collar (the whole width)
MODES = {  # name -> (--per, output file in WORK/hyp)
    "segment-rttm": ("segment", "segments.rttm"),
    "segment": ("segment", "segments.csv"),
    "speaker": ("speaker", "speakers.csv"),
    "file": ("file", "files.csv"),
}
GIVEN_COUNT = "segments-given-count.rttm"  # --given-count: --per segment with --speakers N, N from the reference


@dataclass(frozen=True)
class Voice:
    """A corpus speaker and their clips."""

    corpus: str
    id: str  # the corpus's speaker id
    sex: str  # female or male
    age: float | None  # years, where the corpus gives it
    clips: tuple[Path, ...]

    @property
    def label(self) -> str:
        """The reference speaker label: corpus and id, unique across conversations of one corpus."""
        return f"{self.corpus}-{self.id}"


@dataclass
class Conversation:
    """One synthetic recording and what is known about it."""

    uri: str  # file stem
    variant: str  # clean or overlap+noise
    corpus: str
    n_speakers: int
    duration_s: float
    noise: str | None  # pink, brown, babble, pink+babble; None when clean
    snr_db: float | None
    overlaps: int  # turn changes that start before the previous turn ends
    turns: int
    segments: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, speaker label)
    # (start, end, speaker label, source clip's file name) of every utterance placed, for the emotion
    # an EmoDB clip was acted with
    utterances: list[tuple[float, float, str, str]] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the conversations and persona's outputs (kept)")
    parser.add_argument("--data", type=Path, default=DATA, help="the corpora (default: %(default)s)")
    parser.add_argument("--conversations", type=int, help="per variant (default 12; 3 with --long)")
    parser.add_argument("--minutes", type=float, nargs=2, metavar=("MIN", "MAX"), help="length range (default 1 3)")
    parser.add_argument("--long", action="store_true", help="10-minute conversations, 3 per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="passed to persona predict --model (default: the bundled model)")
    parser.add_argument("--workers", type=int, help="passed to persona predict --workers")
    parser.add_argument("--modes", nargs="*", choices=list(MODES), default=list(MODES), help="persona runs to time")
    parser.add_argument(
        "--given-count",
        action="store_true",
        help="also run --per segment with --speakers N (the true count), to tell clustering from counting errors",
    )
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--build-only", action="store_true", help="write the conversations and stop")
    parser.add_argument("--no-run", action="store_true", help="score the outputs already in WORK/hyp (needs --work)")
    parser.add_argument(
        "--check-scoring", action="store_true", help="score the reference against itself and altered copies"
    )
    args = parser.parse_args(argv)
    if args.no_run and not args.work:
        parser.error("--no-run scores the outputs in --work DIR")
    count = args.conversations or (3 if args.long else 12)
    minutes = args.minutes or ((10.0, 10.0) if args.long else (1.0, 3.0))
    with tempfile.TemporaryDirectory(prefix="persona-diarization-") as tmp:
        work = (args.work or Path(tmp)).resolve()  # persona runs in the repository root
        # a model file named relative to where this runs; anything else is a name persona resolves
        model = str(Path(args.model).resolve()) if args.model and Path(args.model).exists() else args.model
        conversations = build_conversations(work, args.data, count, minutes, args.seed)
        if args.build_only:
            print(f"{len(conversations)} conversations in {work}", file=sys.stderr)
            return 0
        reference = load_rttm(work / "reference.rttm")
        speakers = _read_csv(work / "speakers.csv")
        if args.check_scoring:
            print(check_scoring(conversations, reference, speakers))
            return 0
        if args.no_run:  # score what an earlier run left in WORK/hyp
            runs = {mode: {} for mode in args.modes if (work / "hyp" / MODES[mode][1]).exists()}
        else:
            runs = {mode: run_persona(work, mode, model, args.workers) for mode in args.modes}
            if args.given_count:
                run_given_count(work, conversations, model, args.workers)
        result = score(conversations, reference, speakers, work / "hyp", runs, args.given_count)
        result["settings"] = {
            "conversations_per_variant": count,
            "minutes": minutes,
            "seed": args.seed,
            "model": "whichever made WORK/hyp (--no-run)" if args.no_run else args.model or "bundled",
            "work": str(work),
        }
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


# --- corpora -----------------------------------------------------------------------------------


def emodb_voices(data: Path) -> list[Voice]:
    rows = _read_csv(data / "emodb" / "speakers.csv")
    clips = sorted((data / "emodb" / "wav").glob("*.flac"))
    return [
        Voice("emodb", r["speaker"], r["sex"], float(r["age"]), tuple(c for c in clips if c.name[:2] == r["speaker"]))
        for r in rows
    ]


def librispeech_voices(data: Path) -> list[Voice]:
    root = data / "librispeech"
    sexes = {}
    for line in (root / "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";") or not line.strip():
            continue
        reader, sex, *_ = (part.strip() for part in line.split("|", 4))
        sexes[reader] = {"F": "female", "M": "male"}[sex]
    clips = defaultdict(list)
    for clip in sorted(root.glob("*/*/*/*.opus")):
        clips[clip.parent.parent.name].append(clip)
    return [Voice("librispeech", reader, sexes[reader], None, tuple(paths)) for reader, paths in sorted(clips.items())]


class Clips:
    """Decoded 16 kHz clips, trimmed of the silence at their ends, each decoded once."""

    def __init__(self) -> None:
        self._waves: dict[Path, np.ndarray] = {}

    def __call__(self, path: Path) -> np.ndarray:
        if path not in self._waves:
            wave, rate = sf.read(path, dtype="float32", always_2d=True)
            wave = wave.mean(axis=1)
            if rate != SAMPLE_RATE:
                wave = soxr.resample(wave, rate, SAMPLE_RATE).astype(np.float32)
            self._waves[path] = trim(wave)
        return self._waves[path]


def _frame_db(wave: np.ndarray) -> np.ndarray:
    frames = wave[: len(wave) // FRAME * FRAME].astype(np.float64).reshape(-1, FRAME)
    return 10 * np.log10((frames**2).mean(axis=1) + 1e-12)


def trim(wave: np.ndarray) -> np.ndarray:
    """The wave from its first to its last frame within TRIM_BELOW_PEAK_DB of its loudest."""
    db = _frame_db(wave)
    if not len(db):
        return wave
    loud = np.flatnonzero(db > db.max() - TRIM_BELOW_PEAK_DB)
    return wave[loud[0] * FRAME : (loud[-1] + 1) * FRAME]


def speech_spans(wave: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) samples of the speech in a trimmed utterance: its loud frames, bridged over silences
    shorter than MIN_PAUSE_S."""
    db = _frame_db(wave)
    if not len(db):
        return [(0, len(wave))]
    loud = np.flatnonzero(db > db.max() - TRIM_BELOW_PEAK_DB)
    breaks = np.flatnonzero(np.diff(loud) > MIN_PAUSE_S * 100)
    firsts, lasts = np.r_[loud[0], loud[breaks + 1]], np.r_[loud[breaks], loud[-1]]
    spans = [(int(a) * FRAME, (int(b) + 1) * FRAME) for a, b in zip(firsts, lasts)]
    return [(start, min(end, len(wave))) for start, end in spans]


def utterance(voice: Voice, clips: Clips, rng: np.random.Generator) -> tuple[np.ndarray, Path]:
    """One utterance of the voice: a whole clip, or a 2-6 s excerpt of a longer one, cut at quiet
    frames; and the clip it comes from."""
    clip = voice.clips[rng.integers(len(voice.clips))]
    wave = clips(clip)
    if len(wave) <= EXCERPT_S[1] * SAMPLE_RATE:
        return wave, clip
    db = _frame_db(wave)
    quiet = np.flatnonzero(db < np.percentile(db, 25))  # pauses and the quiet ends of words
    shortest, longest = (round(s * 100) for s in EXCERPT_S)
    starts = quiet[quiet < len(db) - shortest]
    start = int(rng.choice(starts)) if len(starts) else 0
    ends = quiet[(quiet >= start + shortest) & (quiet <= start + longest)]
    end = int(rng.choice(ends)) if len(ends) else min(len(db), start + int(rng.integers(shortest, longest + 1)))
    return trim(wave[start * FRAME : end * FRAME]), clip


# --- conversations -----------------------------------------------------------------------------


def build_conversations(
    work: Path, data: Path, count: int, minutes: tuple[float, float], seed: int
) -> list[Conversation]:
    """Write `count` conversations of each variant into work/ (or reuse those there, if made alike)."""
    settings = {
        "count": count,
        "minutes": list(minutes),
        "seed": seed,
        "data": str(data),
        "min_pause_s": MIN_PAUSE_S,
        "layout": 3,  # 3: conversations.json lists each utterance's source clip
    }
    manifest = work / "conversations.json"
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved["settings"] == settings:
            return [
                Conversation(
                    **{
                        **c,
                        "segments": [tuple(s) for s in c["segments"]],
                        "utterances": [tuple(u) for u in c["utterances"]],
                    }
                )
                for c in saved["conversations"]
            ]
    (work / "audio").mkdir(parents=True, exist_ok=True)
    for old in [*(work / "audio").glob("*.flac"), *(work / "hyp").glob("*")]:  # another set's files and results
        old.unlink()
    pools = {"emodb": emodb_voices(data), "librispeech": librispeech_voices(data)}
    clips = Clips()
    rng = np.random.default_rng(seed)
    conversations, speaker_rows = [], []
    for variant in VARIANTS:
        for i in range(count):
            n_speakers = SPEAKER_COUNTS[i % len(SPEAKER_COUNTS)]
            corpus = CORPORA[i % len(CORPORA)]  # with SPEAKER_COUNTS: every pairing once in 6 conversations
            uri = f"{URI_VARIANT[variant]}-{i:02d}-{n_speakers}spk-{corpus}"
            seconds = float(rng.uniform(*minutes)) * 60
            conversation, wave, voices = conversation_audio(
                uri, variant, pools[corpus], n_speakers, seconds, clips, rng
            )
            sf.write(work / "audio" / f"{uri}.flac", wave, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            conversations.append(conversation)
            for voice in voices:
                speech = sum(end - start for start, end, label in conversation.segments if label == voice.label)
                speaker_rows.append(
                    {
                        "uri": uri,
                        "speaker": voice.label,
                        "corpus": voice.corpus,
                        "sex": voice.sex,
                        "age": "" if voice.age is None else voice.age,
                        "speech_s": round(speech, 2),
                    }
                )
            print(f"built {uri}: {conversation.duration_s:.0f} s", file=sys.stderr)
    with open(work / "reference.rttm", "w") as rttm:
        for c in conversations:
            for start, end, label in c.segments:
                rttm.write(f"SPEAKER {c.uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {label} <NA> <NA>\n")
    with open(work / "speakers.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(speaker_rows[0]))
        writer.writeheader()
        writer.writerows(speaker_rows)
    manifest.write_text(json.dumps({"settings": settings, "conversations": [asdict(c) for c in conversations]}))
    return conversations


def choose_voices(pool: list[Voice], n: int, rng: np.random.Generator) -> list[Voice]:
    """n voices of the pool, both sexes present (as evenly split as n allows, the larger half at random)."""
    by_sex = {sex: [v for v in pool if v.sex == sex] for sex in ("female", "male")}
    females = n // 2 + (n % 2) * int(rng.integers(2))
    chosen = [by_sex["female"][i] for i in rng.choice(len(by_sex["female"]), females, replace=False)]
    chosen += [by_sex["male"][i] for i in rng.choice(len(by_sex["male"]), n - females, replace=False)]
    return [chosen[i] for i in rng.permutation(n)]


def conversation_audio(
    uri: str,
    variant: str,
    pool: list[Voice],
    n_speakers: int,
    seconds: float,
    clips: Clips,
    rng: np.random.Generator,
) -> tuple[Conversation, np.ndarray, list[Voice]]:
    """Turns of the chosen voices until `seconds` is reached; for overlap+noise, overlaps and noise."""
    voices = choose_voices(pool, n_speakers, rng)
    levels = {v.label: float(rng.uniform(*SPEAKER_LEVEL_DBFS)) for v in voices}
    noisy = variant == "overlap+noise"
    placed: list[tuple[int, np.ndarray, str, str]] = []
    cursor = float(rng.uniform(0.3, 1.0))
    speaker, turns, overlaps = None, 0, 0
    while cursor < seconds:
        if turns < n_speakers:  # everyone speaks early on, in a random order
            voice = voices[turns]
        else:
            voice = voices[[v for v in range(n_speakers) if voices[v] is not speaker][rng.integers(n_speakers - 1)]]
        speaker, turns = voice, turns + 1
        for k in range(int(rng.integers(UTTERANCES_PER_TURN[0], UTTERANCES_PER_TURN[1] + 1))):
            if k:
                cursor += float(rng.uniform(*GAP_IN_TURN_S))
            wave, clip = utterance(voice, clips, rng)
            gain = 10 ** (levels[voice.label] / 20) / (np.sqrt(np.mean(wave.astype(np.float64) ** 2)) + 1e-9)
            gain *= 10 ** (rng.uniform(-2, 2) / 20)  # a little variation from one utterance to the next
            placed.append((round(cursor * SAMPLE_RATE), (wave * gain).astype(np.float32), voice.label, clip.name))
            cursor += len(wave) / SAMPLE_RATE
        if noisy and rng.random() < OVERLAP_SHARE:
            last = len(placed[-1][1]) / SAMPLE_RATE
            cursor -= min(float(rng.uniform(*OVERLAP_S)), 0.8 * last)
            overlaps += 1
        else:
            cursor += float(rng.uniform(*PAUSE_S))
    end = max(start + len(w) for start, w, _, _ in placed) + round(rng.uniform(0.3, 1.0) * SAMPLE_RATE)
    mix = np.zeros(end, np.float32)
    speech = np.zeros(end, bool)
    segments, utterances = [], []
    for start, wave, label, clip_name in placed:
        mix[start : start + len(wave)] += wave
        utterances.append(
            (round(start / SAMPLE_RATE, 3), round((start + len(wave)) / SAMPLE_RATE, 3), label, clip_name)
        )
        for first, last in speech_spans(wave):
            speech[start + first : start + last] = True
            segments.append((round((start + first) / SAMPLE_RATE, 3), round((start + last) / SAMPLE_RATE, 3), label))
    noise_kind = snr = None
    if noisy:
        noise_kind = str(rng.choice(NOISES))
        snr = float(rng.uniform(*SNR_DB))
        others = [v for v in pool if v not in voices]
        noise = background(noise_kind, end, others, clips, rng)
        speech_power = np.mean(mix[speech].astype(np.float64) ** 2)
        noise *= np.sqrt(speech_power / 10 ** (snr / 10) / np.mean(noise.astype(np.float64) ** 2))
        mix += noise.astype(np.float32)
    peak = np.abs(mix).max()
    if peak > 0.99:  # summed overlaps and noise may pass full scale: lower the whole file
        mix *= 0.99 / peak
    segments.sort()
    conversation = Conversation(
        uri,
        variant,
        voices[0].corpus,
        n_speakers,
        round(end / SAMPLE_RATE, 3),
        noise_kind,
        snr,
        overlaps,
        turns,
        segments,
        utterances,
    )
    return conversation, mix, voices


def background(kind: str, n: int, others: list[Voice], clips: Clips, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise of n samples: pink, brown, babble of other speakers, or pink + babble."""
    parts = []
    if "pink" in kind:
        parts.append(coloured_noise(n, 1.0, rng))
    if "brown" in kind:
        parts.append(coloured_noise(n, 2.0, rng))
    if "babble" in kind:
        streams = []
        for i in rng.choice(len(others), min(BABBLE_VOICES, len(others)), replace=False):
            stream, filled = np.zeros(n, np.float32), 0
            while filled < n:
                wave, _ = utterance(others[i], clips, rng)
                wave = wave / (np.sqrt(np.mean(wave.astype(np.float64) ** 2)) + 1e-9)
                stream[filled : filled + len(wave)] = wave[: n - filled]
                filled += len(wave)
            streams.append(np.roll(stream, int(rng.integers(n))))
        parts.append(np.sum(streams, axis=0))
    parts = [p / np.sqrt(np.mean(p.astype(np.float64) ** 2)) for p in parts]
    return np.sum(parts, axis=0).astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (1 pink, 2 brown), nothing below 20 Hz."""
    frequencies = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum = rng.normal(size=frequencies.size) + 1j * rng.normal(size=frequencies.size)
    audible = frequencies >= 20
    spectrum[~audible] = 0
    spectrum[audible] /= frequencies[audible] ** (exponent / 2)
    return np.fft.irfft(spectrum, n)


# --- persona -----------------------------------------------------------------------------------


def run_persona(work: Path, mode: str, model: str | None, workers: int | None) -> dict:
    """One `persona predict --per ...` process on work/audio, timed from start to exit."""
    per, name = MODES[mode]
    out = work / "hyp" / name
    out.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "persona_cli", "predict", str(work / "audio"), "--per", per, "-o", str(out)]
    command += ["--overwrite", "--quiet"]
    if model:
        command += ["--model", model]
    if workers is not None:
        command += ["--workers", str(workers)]
    print(f"running persona --per {per} -o {name}", file=sys.stderr)
    run = _run_child(command, parse_json=False)
    return {"per": per, "output": str(out), **run}


def run_given_count(work: Path, conversations: list[Conversation], model: str | None, workers: int | None) -> None:
    """`--per segment --speakers N` on the conversations of N speakers, for each N; one RTTM of them all."""
    parts = []
    for n in sorted({c.n_speakers for c in conversations}):
        out = work / "hyp" / f"segments-{n}-speakers.rttm"
        files = [str(work / "audio" / f"{c.uri}.flac") for c in conversations if c.n_speakers == n]
        command = [sys.executable, "-m", "persona_cli", "predict", *files, "--per", "segment", "--speakers", str(n)]
        command += ["-o", str(out), "--overwrite", "--quiet"]
        if model:
            command += ["--model", model]
        if workers is not None:
            command += ["--workers", str(workers)]
        print(f"running persona --per segment --speakers {n}", file=sys.stderr)
        _run_child(command, parse_json=False)
        parts.append(out.read_text())
    (work / "hyp" / GIVEN_COUNT).write_text("".join(parts))


# --- scoring -----------------------------------------------------------------------------------


def load_rttm(path: Path) -> dict:
    """uri -> pyannote Annotation of the SPEAKER lines of an RTTM file."""
    from pyannote.core import Annotation, Segment

    annotations: dict = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        uri, start, duration, label = fields[1], float(fields[3]), float(fields[4]), fields[7]
        annotation = annotations.setdefault(uri, Annotation(uri=uri))
        annotation[Segment(start, start + duration), len(annotation)] = label
    return annotations


def score_conversation(reference, hypothesis, duration_s: float) -> dict:
    """DER components with each collar over the whole recording, and the optimal hypothesis -> reference
    speaker mapping."""
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    uem = Timeline([Segment(0, duration_s)])

    scores: dict = {}
    for name, collar in COLLARS.items():
        metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
        detail = metric(reference, hypothesis, uem=uem, detailed=True)
        scores[name] = {k: detail[k] for k in ("missed detection", "false alarm", "confusion", "total")}
    mapping = DiarizationErrorRate(collar=0.0, skip_overlap=False).optimal_mapping(reference, hypothesis, uem=uem)
    scores["mapping"] = {str(h): str(r) for h, r in mapping.items()}
    scores["n_hypothesis"] = len(hypothesis.labels())
    scores["n_reference"] = len(reference.labels())
    return scores


def score(
    conversations: list[Conversation], reference: dict, speakers: list[dict], hyp: Path, runs: dict, given_count: bool
) -> dict:
    """Every figure: per conversation, then per variant and speaker count, and the persona runs' rates."""
    from pyannote.core import Annotation

    truth = {(r["uri"], r["speaker"]): r for r in speakers}
    hypothesis = load_rttm(hyp / MODES["segment-rttm"][1]) if "segment-rttm" in runs else {}
    given = load_rttm(hyp / GIVEN_COUNT) if given_count else None
    per_speaker = _read_csv(hyp / MODES["speaker"][1]) if "speaker" in runs else []
    rows_by_uri = defaultdict(list)
    for row in per_speaker:
        rows_by_uri[Path(row["path"]).stem].append(row)
    results = []
    for c in conversations:
        if "segment-rttm" not in runs:
            break
        found = hypothesis.get(c.uri, Annotation(uri=c.uri))
        scores = score_conversation(reference[c.uri], found, c.duration_s)
        scores["speakers"] = speaker_checks(c.uri, scores["mapping"], rows_by_uri[c.uri], truth)
        scores["labels agree"] = not rows_by_uri[c.uri] or {r["speaker"] for r in rows_by_uri[c.uri]} == set(
            map(str, found.labels())
        )
        if given is not None:
            given_scores = score_conversation(reference[c.uri], given.get(c.uri, Annotation(uri=c.uri)), c.duration_s)
            scores["given count"] = {name: given_scores[name] for name in COLLARS}
        results.append({"uri": c.uri, "variant": c.variant, "n_speakers": c.n_speakers, **scores})
    groups = {}
    for variant in (*VARIANTS, None):
        for n in (*SPEAKER_COUNTS, None):
            chosen = [r for r in results if variant in (None, r["variant"]) and n in (None, r["n_speakers"])]
            if chosen:
                groups[f"{variant or 'all'} / {n or 'all'}"] = summarise(chosen)
    audio_s = sum(c.duration_s for c in conversations)
    throughput = {
        mode: {
            "wall_s": run["wall_s"],
            "audio_s_per_s": round(audio_s / run["wall_s"], 1),
            "exit_code": run["exit_code"],
        }
        for mode, run in runs.items()
        if run
    }
    emotions = {}
    if "segment" in runs:
        emotions = segment_emotions(conversations, _read_csv(hyp / MODES["segment"][1]))
    if runs.get("segment") and runs.get("file"):
        throughput["segment/file time"] = round(runs["segment"]["wall_s"] / runs["file"]["wall_s"], 2)
    return {
        "audio_s": round(audio_s, 1),
        # conversations whose --per speaker rows name other speakers than the RTTM run's segments
        "labels disagree": [r["uri"] for r in results if not r["labels agree"]],
        "groups": groups,
        "throughput": throughput,
        "segment emotion": emotions,
        "conversations": results,
    }


def segment_emotions(conversations: list[Conversation], rows: list[dict]) -> dict:
    """Per variant, how often a `--per segment` row's emotion is the one its EmoDB clip was acted
    with: the clip is the utterance overlapping the segment most, and boredom (outside persona's six)
    is left out. Accuracy, and the unweighted mean of per-emotion recalls over the emotions present."""
    from persona_cli.corpora.codebooks import EMODB_EMOTIONS

    rows_of = defaultdict(list)
    for row in rows:
        if row.get("emotion"):
            rows_of[Path(row["path"]).stem].append(row)
    pairs = defaultdict(list)  # variant -> (acted, predicted)
    for c in conversations:
        if c.corpus != "emodb":
            continue
        for row in rows_of[c.uri]:
            start, end = float(row["start_s"]), float(row["end_s"])
            overlaps = [min(end, u_end) - max(start, u_start) for u_start, u_end, _, _ in c.utterances]
            clip = c.utterances[int(np.argmax(overlaps))][3]
            acted = EMODB_EMOTIONS[clip[5]][1]
            if acted is not None and max(overlaps) > 0:
                pairs[c.variant].append((acted, row["emotion"]))
    scores = {}
    for variant, found in pairs.items():
        recalls = [np.mean([p == e for a, p in found if a == e]) for e in sorted({a for a, _ in found})]
        scores[variant] = {
            "segments": len(found),
            "accuracy": float(np.mean([a == p for a, p in found])),
            "UAR": float(np.mean(recalls)),
        }
    return scores


def speaker_checks(uri: str, mapping: dict, rows: list[dict], truth: dict) -> list[dict]:
    """Each mapped hypothesis speaker's predicted gender and age beside its reference speaker's."""
    checks = []
    for row in rows:
        label = mapping.get(row["speaker"])
        if label is None:
            continue
        known = truth[(uri, label)]
        checks.append(
            {
                "hypothesis": row["speaker"],
                "reference": label,
                "sex": known["sex"],
                "gender": row.get("gender") or None,
                "age_true": float(known["age"]) if known["age"] else None,
                "age": float(row["age"]) if row.get("age") else None,
            }
        )
    return checks


def summarise(results: list[dict]) -> dict:
    """DER per collar (summed over the conversations, then divided), speaker count, gender and age."""
    summary: dict = {"conversations": len(results)}
    for name in COLLARS:
        total = sum(r[name]["total"] for r in results)
        for part in ("missed detection", "false alarm", "confusion"):
            summary[f"{name} {part}"] = sum(r[name][part] for r in results) / total
        summary[f"{name} DER"] = sum(summary[f"{name} {p}"] for p in ("missed detection", "false alarm", "confusion"))
        if all("given count" in r for r in results):
            given = [r["given count"][name] for r in results]
            summary[f"{name} DER, count given"] = sum(
                g[p] for g in given for p in ("missed detection", "false alarm", "confusion")
            ) / sum(g["total"] for g in given)
    errors = [r["n_hypothesis"] - r["n_reference"] for r in results]
    summary["count right"] = sum(e == 0 for e in errors) / len(errors)
    summary["count MAE"] = sum(abs(e) for e in errors) / len(errors)
    summary["count mean error"] = sum(errors) / len(errors)
    checks = [s for r in results for s in r["speakers"]]
    gendered = [s for s in checks if s["gender"]]
    aged = [s for s in checks if s["age"] is not None and s["age_true"] is not None]
    summary["reference speakers"] = sum(r["n_reference"] for r in results)
    summary["speakers scored"] = len(gendered)
    summary["gender accuracy"] = sum(s["gender"] == s["sex"] for s in gendered) / len(gendered) if gendered else None
    summary["age MAE"] = sum(abs(s["age"] - s["age_true"]) for s in aged) / len(aged) if aged else None
    summary["speakers aged"] = len(aged)
    # what always guessing these speakers' own mean age would score: EmoDB's ages span only 21-35
    mean_age = sum(s["age_true"] for s in aged) / len(aged) if aged else 0.0
    summary["age MAE of the mean"] = sum(abs(s["age_true"] - mean_age) for s in aged) / len(aged) if aged else None
    return summary


def markdown(result: dict) -> str:
    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    given = any("no collar DER, count given" in g for g in result["groups"].values())
    lines = [
        f"{len(result['conversations'])} conversations, {result['audio_s'] / 60:.1f} min of audio, "
        f"model {result['settings']['model']}",
        "",
        "| variant / speakers | conv. | DER ±0.25 s | DER, no collar | miss / FA / conf. (no collar) "
        "| count right | count MAE | gender acc. (n) | age MAE [guessing the mean] (n) |"
        + (" DER ±0.25 s / none, count given |" if given else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if given else ""),
    ]
    for name, g in result["groups"].items():
        parts = " / ".join(pct(g[f"no collar {p}"]) for p in ("missed detection", "false alarm", "confusion"))
        age = (
            "-"
            if g["age MAE"] is None
            else f"{g['age MAE']:.1f} y [{g['age MAE of the mean']:.1f}] ({g['speakers aged']})"
        )
        lines.append(
            f"| {name} | {g['conversations']} | {pct(g['collar 0.25 DER'])} | {pct(g['no collar DER'])} | {parts} "
            f"| {pct(g['count right'])} | {g['count MAE']:.2f} | {pct(g['gender accuracy'])} "
            f"({g['speakers scored']}/{g['reference speakers']}) | {age} |"
            + (f" {pct(g['collar 0.25 DER, count given'])} / {pct(g['no collar DER, count given'])} |" if given else "")
        )
    if result["labels disagree"]:
        lines.append(
            f"\nwarning: --per speaker and --per segment name different speakers in {result['labels disagree']}"
        )
    lines += ["", "| persona predict | wall s | audio s per s |", "|---|---|---|"]
    for mode, t in result["throughput"].items():
        if isinstance(t, dict):
            flag = "" if t["exit_code"] == 0 else f" (exit {t['exit_code']})"
            lines.append(f"| --per {MODES[mode][0]} -o {MODES[mode][1]} | {t['wall_s']}{flag} | {t['audio_s_per_s']} |")
    for variant, e in result.get("segment emotion", {}).items():
        lines.append(
            f"\nsegment emotion, EmoDB conversations, {variant}: UAR {pct(e['UAR'])}, accuracy "
            f"{pct(e['accuracy'])} ({e['segments']} segments)"
        )
    if "segment/file time" in result["throughput"]:
        lines.append(f"\n--per segment takes {result['throughput']['segment/file time']}x the time of --per file.")
    return "\n".join(lines)


def check_scoring(conversations: list[Conversation], reference: dict, speakers: list[dict]) -> str:
    """Score hypotheses made from the reference: itself relabelled (DER 0, gender right), shifted in time,
    and everything said by one speaker; a markdown table of DER per variant."""
    from pyannote.core import Annotation, Segment

    def altered(shift: float = 0.0, one_speaker: bool = False) -> dict:
        out = {}
        for uri, annotation in reference.items():
            names = {label: f"S{i + 1}" for i, label in enumerate(annotation.labels())}
            new = Annotation(uri=uri)
            for segment, track, label in annotation.itertracks(yield_label=True):
                new[Segment(segment.start + shift, segment.end + shift), track] = "S1" if one_speaker else names[label]
            out[uri] = new
        return out

    truth = {(r["uri"], r["speaker"]): r for r in speakers}
    cases = {
        "itself, relabelled": altered(),
        "shifted 0.2 s": altered(0.2),
        "shifted 0.5 s": altered(0.5),
        "one speaker": altered(one_speaker=True),
    }
    lines = [
        "| hypothesis | variant | DER ±0.25 s | DER, no collar | gender acc. | count right |",
        "|---|---|---|---|---|---|",
    ]
    for case, hypothesis in cases.items():
        results = []
        for c in conversations:
            scores = score_conversation(reference[c.uri], hypothesis[c.uri], c.duration_s)
            rows = [  # a --per speaker row saying what the reference says
                {"speaker": h, "gender": truth[(c.uri, r)]["sex"], "age": truth[(c.uri, r)]["age"]}
                for h, r in scores["mapping"].items()
            ]
            scores["speakers"] = speaker_checks(c.uri, scores["mapping"], rows, truth)
            results.append({"variant": c.variant, **scores})
        for variant in VARIANTS:
            s = summarise([r for r in results if r["variant"] == variant])
            lines.append(
                f"| {case} | {variant} | {100 * s['collar 0.25 DER']:.2f} % | {100 * s['no collar DER']:.2f} % "
                f"| {100 * s['gender accuracy']:.0f} % | {100 * s['count right']:.0f} % |"
            )
    return "\n".join(lines)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":
    sys.exit(main())
