"""Who speaks when (diarization.py), and the rows built on it (`--per segment|speaker`)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from persona_cli import diarization
from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.diarization import FLAG_SECONDS, WINDOW_STEP_SAMPLES, Turn, cluster, diarize, listen
from persona_cli.encoders.ge2e import load_ge2e
from tests.conftest import SAMPLE_AUDIO, require_shared, run_cli

PAUSE_S = 0.6


def _trimmed(path) -> np.ndarray:
    """A clip without its leading and trailing silence (RAVDESS clips hold about a second of each)."""
    wave = load_audio(path)
    frames = wave[: len(wave) // 320 * 320].reshape(-1, 320)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() - 35)
    return wave[loud[0] * 320 : (loud[-1] + 1) * 320]


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    """A 2-speaker FLAC (RAVDESS actor 1, a man, and actor 2, a woman, taking turns of two neutral or
    calm clips each, 0.6 s apart) and its reference turns (start, end, actor)."""
    root = require_shared("ravdess")
    clips = {actor: sorted(root.glob(f"Actor_0{actor}/03-01-0[12]-*.flac")) for actor in (1, 2)}
    parts, reference, t = [], [], 0.0
    for turn in range(12):
        actor = 1 + turn % 2
        for clip in clips[actor][2 * (turn // 2) : 2 * (turn // 2) + 2]:
            wave = _trimmed(clip)
            reference.append((t, t + len(wave) / SAMPLE_RATE, actor))
            parts += [wave, np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)]
            t += len(wave) / SAMPLE_RATE + PAUSE_S
    path = tmp_path_factory.mktemp("conversation") / "two speakers.flac"
    sf.write(path, np.concatenate(parts), SAMPLE_RATE)
    return path, reference


@pytest.fixture(scope="module")
def encoder():
    return load_ge2e()


def _agreement(turns: list[Turn], reference: list[tuple]) -> float:
    """Share of the reference speech, where persona found speech, given to the right speaker under
    the best one-to-one naming of persona's speakers."""
    frames = np.arange(0, reference[-1][1], 0.01)
    truth = np.full(len(frames), -1)
    for start, end, actor in reference:
        truth[(frames >= start) & (frames < end)] = actor
    found = np.full(len(frames), -1)
    for turn in turns:
        found[(frames >= turn.start_s) & (frames < turn.end_s)] = turn.speaker
    both = (truth >= 0) & (found >= 0)
    same = np.mean(truth[both] == np.where(found[both] == 0, 1, 2))
    return max(same, 1 - same)


def test_two_speakers_taking_turns_are_found_and_told_apart(conversation, encoder):
    path, reference = conversation
    listening = listen(_chunks_of(path), encoder)
    turns = diarize(listening)
    assert len({t.speaker for t in turns}) == 2
    assert [t.speaker for t in turns][0] == 0  # named in order of first speech
    assert _agreement(turns, reference) > 0.9
    # turns are in time order, inside the recording, no longer than the cap, never overlapping
    assert all(a.end_s <= b.start_s for a, b in zip(turns, turns[1:]))
    assert all(0 < t.duration_s <= diarization.MAX_SEGMENT_SECONDS + 1e-6 for t in turns)
    speech = sum(end - start for start, end, _ in reference)
    assert 0.7 * speech < sum(t.duration_s for t in turns) < 1.2 * speech


def test_a_given_number_of_speakers_is_respected(conversation, encoder):
    path, _ = conversation
    listening = listen(_chunks_of(path), encoder)
    assert len({t.speaker for t in diarize(listening, speakers=3)}) == 3
    assert len({t.speaker for t in diarize(listening, max_speakers=1)}) == 1
    assert len({t.speaker for t in diarize(listening, min_speakers=3)}) >= 3


def test_one_voice_stays_one_speaker(encoder):
    """A minute of one LibriSpeech reader: centring the embeddings must not split him."""
    wave = load_audio(require_shared("long", "7367-86737.opus"))[: 60 * SAMPLE_RATE]
    listening = listen((wave[i : i + 30 * SAMPLE_RATE] for i in range(0, len(wave), 30 * SAMPLE_RATE)), encoder)
    assert {t.speaker for t in diarize(listening)} == {0}


def test_parallel_listening_equals_serial_and_windows_fall_on_the_recordings_grid(conversation, encoder):
    path, _ = conversation
    wave = load_audio(path)
    chunks = [wave[i : i + 10 * SAMPLE_RATE] for i in range(0, len(wave), 10 * SAMPLE_RATE)]
    serial = listen(chunks, encoder, workers=0)
    parallel = listen(chunks, encoder, workers=2)
    np.testing.assert_array_equal(serial.voiced, parallel.voiced)
    np.testing.assert_array_equal(serial.window_centres_s, parallel.window_centres_s)
    np.testing.assert_allclose(serial.window_vectors, parallel.window_vectors, atol=1e-5)
    assert len(serial.voiced) == len(wave) // round(FLAG_SECONDS * SAMPLE_RATE)
    starts = serial.window_centres_s * SAMPLE_RATE - diarization.WINDOW_SAMPLES / 2
    np.testing.assert_allclose(starts % WINDOW_STEP_SAMPLES, 0, atol=1e-6)
    assert np.all(np.diff(serial.window_centres_s) > 0)  # none embedded twice across chunk edges


def test_silence_has_no_turns(encoder):
    listening = listen([np.zeros(5 * SAMPLE_RATE, np.float32)], encoder)
    assert diarize(listening) == []


def _two_unit_windows(kind: str) -> np.ndarray:
    if kind == "basis-vectors":
        return np.eye(256, dtype=np.float32)[:2]
    vectors = np.random.default_rng(0).normal(size=(2, 256)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["basis-vectors", "random-vectors"])
def test_a_piece_at_the_recordings_mean_is_left_out_of_the_clustering(kind):
    """Two windows in one piece average to the recording's mean, so once centred that piece is the
    zero vector (basis vectors), whose cosine distances scipy refuses: a 30 s cut of Common Voice
    clips once ended `persona predict --per segment` with that traceback; or float32 rounding noise
    (random ones), which normalised would become a direction of its own. Here a second, short region
    borrows the second window, so there are two pieces and one of them points nowhere."""
    voiced = np.zeros(200, bool)
    voiced[:80] = True  # 0-2.4 s: one piece, holding both windows
    voiced[95:115] = True  # 2.85-3.45 s: no window inside; it borrows the nearest one (1.6 s)
    listening = diarization.Listening(voiced, np.array([0.8, 1.6]), _two_unit_windows(kind))

    pieces = diarization.clustering_pieces(listening, [(0.0, 2.4), (2.85, 3.45)])
    turns = diarize(listening)

    assert pieces is not None and pieces.spans == [(2.85, 3.45)]
    assert turns and {turn.speaker for turn in turns} == {0}
    assert turns[-1].end_s == pytest.approx(3.45)


def test_cluster_folds_tiny_clusters_and_obeys_bounds():
    """Three directions 120 degrees apart, as centred speaker vectors point: 20 pieces on each of two,
    one piece on the third."""
    rng = np.random.default_rng(0)
    angles = np.radians([0, 120, 240])
    directions = np.pad(np.stack([np.cos(angles), np.sin(angles)], axis=1), ((0, 0), (0, 6)))
    vectors = np.concatenate([directions[k] + 0.05 * rng.standard_normal((n, 8)) for k, n in enumerate((20, 20, 1))])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    durations = np.full(len(vectors), 2.4)
    labels = cluster(vectors, durations)
    assert len(set(labels[:20])) == len(set(labels[20:40])) == 1 and labels[0] != labels[20]
    assert labels[40] in (labels[0], labels[20])  # 2.4 s alone is no speaker
    assert len(set(cluster(vectors, durations, speakers=3))) == 3
    assert len(set(cluster(vectors, durations, max_speakers=1))) == 1


def _two_voices_in_one_cluster(raw_similarity: float, pieces: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred vectors of two voices close enough for the cut to join them (30 degrees apart), and raw
    (uncentred) ones whose two means are `raw_similarity` alike; `pieces` of 2.4 s each."""
    rng = np.random.default_rng(1)
    centred_angles, raw_angles = np.radians([0, 30]), [0, np.arccos(raw_similarity)]
    groups = [np.pad([np.cos(a), np.sin(a)], (0, 6)) for a in centred_angles]
    raws = [np.pad([np.cos(a), np.sin(a)], (0, 6)) for a in raw_angles]
    centred = np.concatenate([g + 0.02 * rng.standard_normal((pieces, 8)) for g in groups])
    raw = np.concatenate([r + 0.02 * rng.standard_normal((pieces, 8)) for r in raws])
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    return unit(centred), unit(raw), np.full(2 * pieces, 2.4)


def test_a_cluster_of_two_voices_is_split_where_its_halves_sound_like_two_people():
    centred, raw, durations = _two_voices_in_one_cluster(raw_similarity=0.7)
    joined = np.zeros(len(centred), int)
    split = diarization._split_two_voices(centred, raw, durations, joined, most=8)
    assert len(set(split[:10])) == len(set(split[10:])) == 1 and split[0] != split[10]
    # one voice's halves stay one speaker; so do halves with too little speech, and a bound of one
    centred, raw, durations = _two_voices_in_one_cluster(raw_similarity=0.9)
    assert set(diarization._split_two_voices(centred, raw, durations, joined, most=8)) == {0}
    centred, raw, durations = _two_voices_in_one_cluster(raw_similarity=0.7, pieces=3)
    assert set(diarization._split_two_voices(centred, raw, durations, joined[:6], most=8)) == {0}
    centred, raw, durations = _two_voices_in_one_cluster(raw_similarity=0.7)
    assert set(diarization._split_two_voices(centred, raw, durations, joined, most=1)) == {0}


def test_cluster_agglomerates_a_bounded_sample_of_a_long_recordings_pieces(monkeypatch):
    """Beyond MAX_CLUSTERED_PIECES the tree is built on an evenly spaced sample (its distance matrix
    would grow with the square of the recording's length) and every piece joins its nearest cluster:
    three speakers in turns of 4 pieces each, 600 pieces, clustered from 50."""
    from scipy.cluster import hierarchy

    sizes = []
    real_linkage = hierarchy.linkage
    monkeypatch.setattr(
        hierarchy, "linkage", lambda vectors, **kw: sizes.append(len(vectors)) or real_linkage(vectors, **kw)
    )
    monkeypatch.setattr(diarization, "MAX_CLUSTERED_PIECES", 50)
    rng = np.random.default_rng(1)
    angles = np.radians([0, 120, 240])
    directions = np.pad(np.stack([np.cos(angles), np.sin(angles)], axis=1), ((0, 0), (0, 6)))
    truth = np.repeat(np.tile([0, 1, 2], 50), 4)
    vectors = directions[truth] + 0.1 * rng.standard_normal((len(truth), 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = cluster(vectors, np.full(len(truth), 2.4))
    assert sizes == [50]
    assert len(set(labels)) == 3
    assert all(len(set(truth[labels == k])) == 1 for k in set(labels))  # each cluster one speaker
    assert len(set(cluster(vectors, np.full(len(truth), 2.4), speakers=2))) == 2


def _chunks_of(path):
    wave = load_audio(path)
    return (wave[i : i + 30 * SAMPLE_RATE] for i in range(0, len(wave), 30 * SAMPLE_RATE))


# --- the rows: persona predict --per segment|speaker -------------------------------------------


def test_per_segment_and_per_speaker_rows_and_rttm(conversation, tmp_path, capsys):
    path, reference = conversation
    noise = tmp_path / "noise.wav"
    sf.write(noise, (0.3 * np.random.default_rng(0).standard_normal(5 * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE)
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not audio at all")

    code, out, _ = run_cli(["predict", str(path), str(noise), str(broken), "--per", "speaker", "-q"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 1  # two files failed, and said why in their rows
    voices = [r for r in rows if r["path"] == str(path)]
    assert [r["speaker"] for r in voices] == ["S1", "S2"]
    assert {r["gender"] for r in voices} == {"male", "female"}
    assert voices[0]["gender"] == "male"  # actor 1 speaks first
    assert abs(sum(float(r["speech_s"]) for r in voices) - sum(e - s for s, e, _ in reference)) < 10
    for voice in voices:
        shares = [float(voice[f"share_{e}"]) for e in ("anger", "disgust", "fear", "happy", "neutral", "sad")]
        assert abs(sum(shares) - 1) < 1e-3
    errors = {r["path"]: r["error"] for r in rows if r["error"]}
    assert errors == {str(noise): "no speech detected", str(broken): "not an audio file"}

    rttm = tmp_path / "out.rttm"
    code, _, _ = run_cli(["predict", str(path), "--per", "segment", "-o", str(rttm), "-q"], capsys)
    assert code == 0
    lines = [line.split() for line in rttm.read_text().splitlines()]
    assert {line[1] for line in lines} == {"two_speakers"}  # the stem, its space made an underscore
    assert all(line[0] == "SPEAKER" and line[7] in ("S1", "S2") and float(line[4]) > 0 for line in lines)

    table, plots = tmp_path / "segments.parquet", tmp_path / "plots"
    argv = ["predict", str(path), str(broken), "--per", "segment", "--speakers", "2", "--plot", str(plots)]
    code, _, _ = run_cli([*argv, "-o", str(table), "-q"], capsys)
    segments = [row for row in pq.read_table(table).to_pylist() if row["path"] == str(path)]
    assert code == 1 and len(segments) == len(lines)
    assert [p.name for p in plots.iterdir()] == ["two speakers.png"]  # none for the broken file
    assert [s["segment"] for s in segments] == list(range(1, len(segments) + 1))
    assert all(s["emotion"] and s["gender"] and s["start_s"] < s["end_s"] for s in segments)


def test_per_segment_resume_keeps_each_files_rows_once(conversation, tmp_path, capsys):
    path, _ = conversation
    out = tmp_path / "segments.csv"
    clip = sorted(SAMPLE_AUDIO.glob("*.mp3"))[0]
    run_cli(["predict", str(clip), "--per", "segment", "-o", str(out), "-q"], capsys)
    first = out.read_text().splitlines()
    code, _, _ = run_cli(
        ["predict", str(clip), str(path), "--per", "segment", "-o", str(out), "--resume", "-q"], capsys
    )
    rows = out.read_text().splitlines()
    assert code == 0 and rows[: len(first)] == first
    assert sum(str(clip) in row for row in rows) == len(first) - 1


def test_a_file_the_diarization_fails_on_is_an_error_row_and_the_next_goes_on(
    conversation, tmp_path, capsys, monkeypatch
):
    path, _ = conversation
    clip = sorted(SAMPLE_AUDIO.glob("*.mp3"))[0]
    real_diarize = diarization.diarize

    def failing_on_the_conversation(listening, *args, **kwargs):
        # Chosen by length, not call order: the paths are sorted, and where the temporary folder
        # sorts against sample_audio/ differs between machines (on CI the clip came first).
        if listening.speech_s > 20:
            raise ValueError("The condensed distance matrix must contain only finite values.\nmore")
        return real_diarize(listening, *args, **kwargs)

    monkeypatch.setattr(diarization, "diarize", failing_on_the_conversation)
    out = tmp_path / "segments.csv"
    code, _, _ = run_cli(["predict", str(path), str(clip), "--per", "segment", "-o", str(out), "-q"], capsys)

    rows = list(csv.DictReader(out.open()))
    failed = [row for row in rows if row["path"] == str(path)]
    others = [row for row in rows if row["path"] == str(clip)]
    assert code == 1  # a file failed
    assert len(failed) == 1 and failed[0]["emotion"] == ""
    assert failed[0]["error"] == "diarization failed: The condensed distance matrix must contain only finite values."
    assert others and all(row["error"] == "" and row["emotion"] for row in others)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--speakers", "2"], "need --per speaker or --per segment"),
        (["--per", "file", "-o", "x.rttm"], "RTTM holds who speaks when"),
        (["--per", "speaker", "--format", "rttm"], "RTTM holds who speaks when"),
        (["--per", "segment", "--min-speakers", "3", "--max-speakers", "2"], "--min-speakers 3 is more than"),
        (["--per", "segment", "--engine", "ray"], "--engine ray predicts --per file only"),
        (["--per", "segment", "--normalize", "speaker"], "needs a model without normalisation"),
        (["--per", "speaker", "--plot", "plots"], "--plot draws segments: it needs --per segment"),
    ],
)
def test_per_usage_mistakes_are_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["predict", str(SAMPLE_AUDIO), *argv], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_turn_audio_is_cut_exactly_across_chunk_edges(conversation):
    from persona_cli.conversation import _turn_audio

    path, _ = conversation
    wave = load_audio(path)
    assert len(wave) > 35 * SAMPLE_RATE
    turns = [
        Turn(0.5, 2.0, 0),
        Turn(29.0, 31.5, 1),
        Turn(31.5, 33.0, 0),
        Turn(len(wave) / SAMPLE_RATE - 1, len(wave) / SAMPLE_RATE, 1),
    ]
    for turn, cut in zip(turns, _turn_audio(path, turns)):
        first, last = round(turn.start_s * SAMPLE_RATE), round(turn.end_s * SAMPLE_RATE)
        np.testing.assert_array_equal(cut.samples, wave[first:last])
