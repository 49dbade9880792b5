"""Bad input end to end: every broken, odd or hostile file gets its own row, never a traceback.

The corpus comes from tests/broken_audio.py. Each case is checked through the CLI in-process
(`main(argv)`, as tests/test_cli.py does) and once through a real `persona` process; the decoder
itself is fuzzed with hypothesis.
"""

from __future__ import annotations

import builtins
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from broken_audio import NON_UTF8_SHOWN, WARNINGS, long_recording, make_broken_corpus, wav_bytes
from conftest import SAMPLE_AUDIO, run_cli as run, voice_like
from persona_cli import audio
from persona_cli.audio import SAMPLE_RATE, SignalStats, display_path, find_audio_files, iter_chunks
from persona_cli.batch import until_first_error
from persona_cli.cli import main
from persona_cli.embedding import embed_files
from persona_cli.encoders.base import Encoder
from persona_cli.encoders.ge2e import GE2EEncoder
from persona_cli.errors import AudioLoadError, UsageError
from persona_cli.options import PredictOptions

PREDICTIONS = [
    "emotion",
    "emotion_confidence",
    "prob_anger",
    "prob_disgust",
    "prob_fear",
    "prob_happy",
    "prob_neutral",
    "prob_sad",
    "gender",
    "gender_confidence",
    "age",
]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def by_name(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index(table.path.map(lambda p: Path(p).name))


def _refuse_unreadable(file, *args, **kwargs):
    """open(), but refusing files without read permission even to root, as the kernel does for others."""
    if isinstance(file, (str, bytes, os.PathLike)) and os.stat(file).st_mode & 0o444 == 0:
        raise PermissionError(13, "Permission denied", os.fsdecode(file))
    return builtins.open(file, *args, **kwargs)


@pytest.fixture
def permissions_enforced(monkeypatch):
    """Root reads a chmod-0 file anyway: there, audio.py's open() is made to refuse it."""
    if IS_ROOT:
        monkeypatch.setattr(audio, "open", _refuse_unreadable, raising=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    folder = tmp_path_factory.mktemp("bad-input") / "corpus"
    return folder, make_broken_corpus(folder)


@pytest.fixture(scope="module")
def corpus_run(corpus, tmp_path_factory) -> tuple[int, pd.DataFrame, str]:
    """The whole corpus through `persona predict` in-process, CSV on stdout (shared by several tests)."""
    folder, _ = corpus
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        if IS_ROOT:
            patch.setattr(audio, "open", _refuse_unreadable, raising=False)
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", str(folder)])
    return exit_info.value.code, pd.read_csv(io.StringIO(out.getvalue())), err.getvalue()


def check_rows(table: pd.DataFrame, expected: dict[str, str | None]) -> None:
    """One row per case; errors name the problem and empty the predictions; the rest are predicted."""
    rows = by_name(table)
    assert sorted(rows.index) == sorted(expected)
    for name, error in expected.items():
        row = rows.loc[name]
        if error is None:
            assert pd.isna(row["error"]), f"{name}: {row['error']}"
            assert row[PREDICTIONS].notna().all(), name
            assert 1.9 < row["duration_s"] < 3.1, name
            warning = WARNINGS.get(name)
            if warning is None:
                assert pd.isna(row["warning"]), f"{name}: {row['warning']}"
            else:
                assert warning in row["warning"], f"{name}: {row['warning']}"
        else:
            assert error in str(row["error"]), f"{name}: expected {error!r}, got {row['error']!r}"
            assert row[PREDICTIONS].isna().all() and pd.isna(row["warning"]), name
            assert "Traceback" not in row["error"] and len(row["error"]) < 80


# --- the corpus through the CLI -----------------------------------------------------------------


def test_every_bad_file_gets_its_named_error_row(corpus, corpus_run):
    _, expected = corpus
    code, table, err = corpus_run
    assert code == 1
    check_rows(table, expected)
    failures = sum(error is not None for error in expected.values())
    assert f"{failures} of {len(expected)} files failed" in err
    assert "Traceback" not in err
    assert not any("loops" in p or "no_audio" in p for p in table.path)  # link loop not followed


def test_good_files_are_unaffected_by_bad_neighbours(corpus, corpus_run, capsys):
    folder, expected = corpus
    _, table, _ = corpus_run
    good = sorted(n for n, e in expected.items() if e is None and n != NON_UTF8_SHOWN)
    code, out, err = run(["predict", *(str(folder / n) for n in good), "-q"], capsys)
    assert code == 0, err
    alone = by_name(pd.read_csv(io.StringIO(out)))
    together = by_name(table).loc[good]
    assert list(alone.index) == good
    for column in ["emotion", "gender", "duration_s"]:
        assert list(alone[column]) == list(together[column]), column
    # batches are made differently with and without the bad files: equal to the encoder's 1e-4
    numbers = [c for c in PREDICTIONS if c not in ("emotion", "gender")]
    np.testing.assert_allclose(alone[numbers].to_numpy(float), together[numbers].to_numpy(float), atol=2e-3)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_other_writers_take_the_whole_corpus(corpus, suffix, tmp_path, permissions_enforced, capsys):
    folder, expected = corpus
    target = tmp_path / f"out{suffix}"
    code, out, err = run(["predict", str(folder), "-q", "-o", str(target)], capsys)
    assert code == 1 and out == "" and err == ""
    table = pd.read_parquet(target) if suffix == ".parquet" else pd.read_json(target, lines=True)
    check_rows(table, expected)
    assert str(folder / NON_UTF8_SHOWN) in list(table.path)  # valid UTF-8 text: caf\xe9.wav


def test_corpus_through_a_real_process(corpus, tmp_path):
    """The console script, as users run it: nothing monkeypatched, a file list with bytes on stdin."""
    folder, expected = corpus
    expected = dict(expected)
    if IS_ROOT:  # nothing stops root from reading a chmod-0 file in a real process
        expected["no_permission.wav"] = None
    expected["gone.wav"] = "file not found"  # a stale line in the list: a row, not a usage error
    listing = b"".join(os.fsencode(folder / name) + b"\n" for name in sorted(expected) if name != NON_UTF8_SHOWN)
    listing += os.path.join(os.fsencode(folder), b"caf\xe9.wav") + b"\n"
    persona = Path(sys.executable).with_name("persona")
    target = tmp_path / "out.csv"
    done = subprocess.run(
        [str(persona), "predict", "--files-from", "-", "-o", str(target)],
        input=listing,
        capture_output=True,
        timeout=300,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    check_rows(pd.read_csv(target), expected)


# --- single cases ---------------------------------------------------------------------------------


def test_only_warnings_exit_0(tmp_path, capsys):
    sf.write(tmp_path / "good.wav", voice_like(2.0), SAMPLE_RATE)
    few_words = np.concatenate([np.zeros(SAMPLE_RATE), voice_like(0.3, seed=3), np.zeros(SAMPLE_RATE)])
    sf.write(tmp_path / "few_words.wav", few_words, SAMPLE_RATE)
    sf.write(tmp_path / "quiet.wav", voice_like(2.0) * 1e-4, SAMPLE_RATE, subtype="FLOAT")
    code, out, err = run(["predict", str(tmp_path), "-q"], capsys)
    assert code == 0, err
    rows = by_name(pd.read_csv(io.StringIO(out)))
    assert rows.error.isna().all() and rows.gender.notna().all()
    assert rows.loc["few_words.wav", "warning"] == "little speech: 0.39 s"
    assert rows.loc["quiet.wav", "warning"].startswith("nearly silent: -")
    assert pd.isna(rows.loc["good.wav", "warning"])


def test_real_recordings_get_no_warnings(capsys):
    code, out, _ = run(["predict", str(SAMPLE_AUDIO), "-q"], capsys)
    assert code == 0
    assert pd.read_csv(io.StringIO(out)).warning.isna().all()


def test_ravdess_clips_get_no_warnings(ravdess_clips, capsys):
    code, out, _ = run(["predict", *map(str, ravdess_clips), "-q"], capsys)
    assert code == 0 and pd.read_csv(io.StringIO(out)).warning.isna().all()


def test_permission_denied_simulated(tmp_path, permissions_enforced, capsys):
    sf.write(tmp_path / "a.wav", voice_like(1.0), SAMPLE_RATE)
    sf.write(tmp_path / "locked.wav", voice_like(1.0), SAMPLE_RATE)
    (tmp_path / "locked.wav").chmod(0)
    code, out, _ = run(["predict", str(tmp_path), "-q"], capsys)
    rows = by_name(pd.read_csv(io.StringIO(out)))
    assert code == 1
    assert rows.loc["locked.wav", "error"] == "permission denied" and pd.isna(rows.loc["a.wav", "error"])


@pytest.mark.skipif(IS_ROOT, reason="file permissions do not stop root")
def test_permission_denied_for_real(tmp_path, capsys):
    sf.write(tmp_path / "locked.wav", voice_like(1.0), SAMPLE_RATE)
    (tmp_path / "locked.wav").chmod(0)
    try:
        code, out, _ = run(["predict", str(tmp_path / "locked.wav"), "-q"], capsys)
    finally:
        (tmp_path / "locked.wav").chmod(0o644)
    assert code == 1 and pd.read_csv(io.StringIO(out)).error[0] == "permission denied"


def test_broken_symlink_named_is_a_row_but_missing_path_is_a_usage_error(tmp_path, capsys):
    sf.write(tmp_path / "good.wav", voice_like(1.0), SAMPLE_RATE)
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "deleted.wav")
    code, out, _ = run(["predict", str(tmp_path / "good.wav"), str(tmp_path / "dangling.wav"), "-q"], capsys)
    assert code == 1
    assert by_name(pd.read_csv(io.StringIO(out))).loc["dangling.wav", "error"] == "broken symlink"
    code, out, err = run(["predict", str(tmp_path / "good.wav"), str(tmp_path / "deleted.wav")], capsys)
    assert code == 2 and out == "" and "no such file or folder" in err


def test_missing_file_in_files_from_is_a_row(tmp_path, capsys, monkeypatch):
    sf.write(tmp_path / "good.wav", voice_like(1.0), SAMPLE_RATE)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{tmp_path / 'good.wav'}\n{tmp_path / 'gone.wav'}\n"))
    code, out, _ = run(["predict", "--files-from", "-", "-q"], capsys)
    rows = by_name(pd.read_csv(io.StringIO(out)))
    assert code == 1
    assert rows.loc["gone.wav", "error"] == "file not found" and pd.isna(rows.loc["good.wav", "error"])


def test_same_file_listed_twice_is_one_row(tmp_path, capsys, monkeypatch):
    sf.write(tmp_path / "a.wav", voice_like(1.0), SAMPLE_RATE)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["predict", "a.wav", "./a.wav", str(tmp_path / "a.wav"), ".", "-q"], capsys)
    assert code == 0 and list(pd.read_csv(io.StringIO(out)).path) == ["a.wav"]


def test_folder_without_audio(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hello")
    code, out, err = run(["predict", str(tmp_path / "docs")], capsys)
    assert code == 2 and out == "" and "no audio files found" in err
    sf.write(tmp_path / "a.wav", voice_like(1.0), SAMPLE_RATE)
    code, out, _ = run(["predict", str(tmp_path / "docs"), str(tmp_path / "a.wav"), "-q"], capsys)
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 1


@pytest.mark.parametrize("batch_size", ["1", "32"], ids=["batch1", "batch32"])
def test_fail_fast_stops_at_the_first_failure(tmp_path, batch_size, capsys):
    sf.write(tmp_path / "a_good.wav", voice_like(1.0), SAMPLE_RATE)
    (tmp_path / "b_bad.wav").write_bytes(b"not audio" * 100)
    sf.write(tmp_path / "c_good.wav", voice_like(1.0, f0=200), SAMPLE_RATE)
    (tmp_path / "d_bad.wav").touch()
    argv = ["predict", str(tmp_path), "--fail-fast", "--batch-size", batch_size]
    code, out, err = run(argv, capsys)
    assert code == 1
    table = pd.read_csv(io.StringIO(out))
    assert [Path(p).name for p in table.path] == ["a_good.wav", "b_bad.wav"]
    assert table.error[1] == "not an audio file" and "--fail-fast" in err
    target = tmp_path / "out.parquet"
    code, _, _ = run([*argv, "-q", "-o", str(target)], capsys)
    assert code == 1 and len(pd.read_parquet(target)) == 2
    (tmp_path / "b_bad.wav").unlink()
    (tmp_path / "d_bad.wav").unlink()
    code, out, _ = run(["predict", str(tmp_path), "--fail-fast", "-q"], capsys)
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 2


def test_until_first_error_keeps_rows_up_to_the_failure():
    results = [SimpleNamespace(error=error) for error in (None, None, None, "x", None, None)]
    assert list(until_first_error(results)) == results[:4]
    assert list(until_first_error(results[:3])) == results[:3]


def test_long_recording_streams_through_the_pipeline(tmp_path):
    """12 minutes in 30 s windows, pooled into one result (a stub encoder keeps this fast)."""
    path = long_recording(tmp_path / "long.wav", minutes=12.0)

    class CountingEncoder(Encoder):
        name, dim = "stub", 4

        def __init__(self):
            self.lengths = []

        def embed(self, waves):
            self.lengths.extend(len(w) for w in waves)
            return np.ones((len(waves), 4), np.float32)

    encoder = CountingEncoder()
    (result,) = embed_files([path], encoder, PredictOptions(batch_size=4))
    assert result.error is None and result.warning is None
    assert result.duration_s == 720.0 and result.vector.shape == (4,)
    assert encoder.lengths == [30 * SAMPLE_RATE] * 24


@pytest.mark.slow
def test_long_recording_through_the_cli(tmp_path, capsys):
    path = long_recording(tmp_path / "long.wav", minutes=12.0)
    code, out, err = run(["predict", str(path), "-q"], capsys)
    assert code == 0, err
    row = pd.read_csv(io.StringIO(out)).iloc[0]
    assert row.duration_s == 720.0 and pd.notna(row.gender) and pd.isna(row.warning)


# --- the encoder failing on one file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (IndexError("index 3 is out of bounds"), "embedding failed: index 3 is out of bounds"),
        (RuntimeError("cuDNN error: bad input\nmore detail"), "embedding failed: cuDNN error: bad input"),
        (ZeroDivisionError(), "embedding failed: ZeroDivisionError"),
        (None, "embedding failed: non-finite embedding"),
    ],
    ids=["IndexError", "multi-line-RuntimeError", "ZeroDivisionError-without-message", "non-finite-vector"],
)
def test_encoder_failure_on_one_file_is_its_row(tmp_path, raised, message, monkeypatch, capsys):
    for name, seconds in [("a.wav", 1.0), ("b_poison.wav", 1.5), ("c.wav", 2.0)]:
        sf.write(tmp_path / name, voice_like(seconds, f0=120 + 40 * seconds), SAMPLE_RATE)
    original = GE2EEncoder.run  # the forward pass of ge2e and of the default's ge2e-layers

    def run_network(self, waves, keep_layers):
        vectors, layer_stats, speech = original(self, waves, keep_layers)
        if any(len(w) == int(1.5 * SAMPLE_RATE) for w in waves):
            if raised is not None:
                raise raised
            vectors[[i for i, w in enumerate(waves) if len(w) == int(1.5 * SAMPLE_RATE)]] = np.nan
        return vectors, layer_stats, speech

    monkeypatch.setattr(GE2EEncoder, "run", run_network)
    code, out, err = run(["predict", str(tmp_path), "-q"], capsys)
    rows = by_name(pd.read_csv(io.StringIO(out)))
    assert code == 1 and "Traceback" not in err
    assert rows.loc["b_poison.wav", "error"] == message
    assert rows.loc[["a.wav", "c.wav"], "error"].isna().all()
    assert rows.loc[["a.wav", "c.wav"], "gender"].notna().all()


@pytest.mark.parametrize("fatal", [MemoryError, KeyboardInterrupt, TypeError])
def test_fatal_encoder_errors_are_not_swallowed(tmp_path, fatal):
    sf.write(tmp_path / "a.wav", voice_like(1.0), SAMPLE_RATE)

    class Failing(Encoder):
        name, dim = "failing", 4

        def embed(self, waves):
            raise fatal("stop")

    with pytest.raises(fatal):
        list(embed_files([tmp_path / "a.wav"], Failing(), PredictOptions()))


# --- audio.py units -------------------------------------------------------------------------------


def test_display_path_escapes_only_undecodable_bytes():
    assert display_path("café/é.wav") == "café/é.wav"
    assert display_path(os.fsdecode(b"/x/caf\xe9.wav")) == "/x/caf\\xe9.wav"
    assert display_path(b"caf\xe9.wav") == "caf\\xe9.wav"
    assert display_path(Path(os.fsdecode(b"a\xff\xfe.wav"))) == "a\\xff\\xfe.wav"
    display_path("\ud800").encode("utf-8")  # even a lone surrogate comes out encodable


def test_find_audio_files_lists_broken_links_and_missing_listed_files(tmp_path):
    (tmp_path / "dangling.wav").symlink_to("nowhere.wav")
    (tmp_path / "a.wav").touch()
    assert find_audio_files([tmp_path / "dangling.wav"]) == [tmp_path / "dangling.wav"]
    assert find_audio_files([tmp_path]) == [tmp_path / "a.wav", tmp_path / "dangling.wav"]
    with pytest.raises(UsageError, match="no such file or folder"):
        find_audio_files([tmp_path / "gone.wav"])
    found = find_audio_files([tmp_path / "a.wav"], files_from=[str(tmp_path / "gone.wav"), str(tmp_path / "a.wav")])
    assert found == [tmp_path / "a.wav", tmp_path / "gone.wav"]


def test_missing_file_names_its_cause(tmp_path):
    (tmp_path / "dangling.wav").symlink_to("nowhere.wav")
    (tmp_path / "loop.wav").symlink_to("loop.wav")
    for name, message in [
        ("dangling.wav", "broken symlink"),
        ("loop.wav", "symlink loop"),
        ("gone.wav", "file not found"),
    ]:
        with pytest.raises(AudioLoadError, match=f"^{message}$"):
            list(iter_chunks(tmp_path / name))


@pytest.mark.parametrize(
    ("samples", "subtype", "warnings"),
    [
        (np.zeros(16_000), "PCM_U8", ["silent"]),
        (np.full(16_000, 3e-5), "FLOAT", ["nearly silent: -90 dBFS RMS"]),
        (np.full(16_000, 1e-3), "FLOAT", []),  # -60 dBFS: quiet, not silent
        (np.r_[np.ones(700), 0.5 * np.ones(15_300)], "PCM_16", []),  # 4.4 % at full scale: loud, not clipped
        (np.r_[np.ones(900), 0.5 * np.ones(15_100)], "PCM_16", ["clipped: 6 % of samples at full scale"]),
        (np.r_[-np.ones(9_000), 0.5 * np.ones(7_000)], "PCM_24", ["clipped: 56 % of samples at full scale"]),
        (
            np.r_[np.full(8_000, np.nan), np.zeros(8_000)],
            "FLOAT",
            ["non-finite samples replaced with 0: 8000 of 16000", "silent"],
        ),
    ],
    ids=[
        "zeros-silent",
        "rms-90dBFS-nearly-silent",
        "rms-60dBFS-quiet",
        "4pct-full-scale-loud",
        "6pct-full-scale-clipped",
        "56pct-full-scale-clipped",
        "half-nan-rest-zero",
    ],
)
def test_signal_warnings(tmp_path, samples, subtype, warnings):
    sf.write(tmp_path / "x.wav", samples, SAMPLE_RATE, subtype=subtype)
    stats = SignalStats()
    list(iter_chunks(tmp_path / "x.wav", stats=stats))
    assert stats.warnings() == warnings


def test_truncation_warning_only_for_a_real_shortfall(tmp_path):
    data = wav_bytes(voice_like(2.0))
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * 8_000])
    stats = SignalStats()
    assert sum(map(len, iter_chunks(tmp_path / "cut.wav", stats=stats))) == 8_000
    assert stats.warnings() == ["truncated: header declares 2.00 s, file holds 0.50 s"]
    streamed = bytearray(data)
    streamed[40:44] = b"\xff\xff\xff\xff"  # what a writer that never seeks back leaves
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    stats = SignalStats()
    list(iter_chunks(tmp_path / "streamed.wav", stats=stats))
    assert stats.warnings() == []


def test_many_channels_and_low_rates_read_in_bounded_blocks(tmp_path):
    sf.write(tmp_path / "wide.wav", np.zeros((70_000, 20), np.float32), 48_000, subtype="FLOAT")
    assert abs(sum(map(len, iter_chunks(tmp_path / "wide.wav"))) - 70_000 / 3) <= 1
    sf.write(tmp_path / "slow.wav", np.full(3, 0.5, np.float32), 1, subtype="FLOAT")  # 1 Hz: 16,000x
    assert abs(sum(map(len, iter_chunks(tmp_path / "slow.wav"))) - 3 * SAMPLE_RATE) <= 1


# --- property tests: the decoder only ever raises AudioLoadError ----------------------------------

SUFFIXES = [".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".au", ".m4a", ".wma"]


def _templates() -> dict[str, bytes]:
    """Small valid files of every container, to mutate."""
    out = {}
    wave = voice_like(0.3, 16_000)
    for suffix, fmt, subtype in [
        (".wav", "WAV", "PCM_16"),
        (".wav", "WAV", "FLOAT"),
        (".flac", "FLAC", "PCM_16"),
        (".ogg", "OGG", "VORBIS"),
        (".mp3", "MP3", "MPEG_LAYER_III"),
        (".aiff", "AIFF", "PCM_24"),
        (".au", "AU", "ULAW"),
    ]:
        buffer = io.BytesIO()
        sf.write(buffer, np.stack([wave, wave[::-1]], axis=1), 16_000, format=fmt, subtype=subtype)
        out[f"{subtype.lower()}{suffix}"] = buffer.getvalue()
    return out


TEMPLATES = _templates()


def _decode_some(path: Path, max_seconds: float = 120.0) -> list[np.ndarray]:
    """Chunks of a fuzzed file, up to a bound: a mutated header may claim hours of audio at 1 Hz."""
    chunks = []
    for chunk in iter_chunks(path, chunk_seconds=1.0):
        assert chunk.dtype == np.float32 and chunk.ndim == 1 and np.isfinite(chunk).all()
        chunks.append(chunk)
        if len(chunks) >= max_seconds:
            break
    return chunks


@settings(max_examples=60, deadline=None, database=None)
@given(data=st.binary(max_size=3_000), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_raise_only_audio_load_error(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, f"fuzz{suffix}")
        path.write_bytes(data)
        try:
            _decode_some(path)
        except AudioLoadError as error:
            assert str(error) and "\n" not in str(error)


@settings(max_examples=80, deadline=None, database=None)
@given(
    template=st.sampled_from(sorted(TEMPLATES)),
    edits=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=6),
    keep=st.floats(0.0, 1.0),
)
def test_damaged_files_raise_only_audio_load_error(template, edits, keep):
    data = bytearray(TEMPLATES[template])
    for at, value in edits:  # mostly in the header, where damage is most surprising
        if at < len(data):
            data[at] = value
    data = data[: max(1, int(len(data) * keep))] if keep < 1 else data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, f"fuzz.{template.split('.')[-1]}")
        path.write_bytes(bytes(data))
        try:
            _decode_some(path)
        except AudioLoadError as error:
            assert str(error) and "\n" not in str(error)


WRITABLE = [("WAV", s) for s in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW")] + [
    ("FLAC", "PCM_16"),
    ("FLAC", "PCM_24"),
    ("AIFF", "PCM_16"),
    ("AU", "FLOAT"),
]


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    rate=st.one_of(
        st.integers(1, 384_000), st.sampled_from([8_000, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000])
    ),
    channels=st.integers(1, 8),
    container=st.sampled_from(WRITABLE),
    seconds=st.one_of(st.just(0.0), st.floats(0.0, 0.5)),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_audio_of_any_shape_gives_16k_mono(rate, channels, container, seconds, seed):
    fmt, subtype = container
    frames = round(seconds * rate)
    samples = np.random.default_rng(seed).uniform(-0.9, 0.9, (frames, channels))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, f"valid.{fmt.lower()}")
        try:
            sf.write(path, samples, rate, format=fmt, subtype=subtype)
        except (sf.SoundFileError, ValueError, RuntimeError):
            assume(False)  # a combination libsndfile will not write (e.g. FLAC above 655 kHz)
        try:
            chunks = list(iter_chunks(path, chunk_seconds=1.0))
        except AudioLoadError as error:
            assert frames == 0 and str(error) in ("no audio samples in file", "empty file")  # FLAC writes 0 bytes
            return
    assert frames > 0
    assert all(c.dtype == np.float32 and c.ndim == 1 and np.isfinite(c).all() for c in chunks)
    assert all(len(c) == SAMPLE_RATE for c in chunks[:-1])
    assert abs(sum(map(len, chunks)) - frames * SAMPLE_RATE / rate) <= 1
