"""The `persona` command line end to end: real clips and generated audio in, files read back out."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import SAMPLE_AUDIO, run_cli as run, voice_like
from persona_cli.encoders import DEFAULT_ENCODER
from persona_cli.results import PREDICTION_SCHEMA

COLUMNS = [
    "path",
    "duration_s",
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
    "encoder",
    "model",
    "normalization",
    "error",
    "warning",
]


def read_csv_text(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


@pytest.fixture
def formats_folder(tmp_path: Path) -> Path:
    """One generated voice-like clip per supported container, sample format, rate and channel count."""
    folder = tmp_path / "formats"
    (folder / "nested" / "deeper").mkdir(parents=True)
    cases = {
        "pcm16_16k_mono.wav": (16_000, 1, "WAV", "PCM_16"),
        "pcm8u_22k.wav": (22_050, 1, "WAV", "PCM_U8"),
        "pcm24_44k_stereo.wav": (44_100, 2, "WAV", "PCM_24"),
        "pcm32_48k.wav": (48_000, 1, "WAV", "PCM_32"),
        "float_8k.wav": (8_000, 1, "WAV", "FLOAT"),
        "nested/six_channels_48k.wav": (48_000, 6, "WAV", "FLOAT"),
        "nested/clip_192k.flac": (192_000, 1, "FLAC", "PCM_24"),
        "nested/deeper/vorbis.ogg": (44_100, 2, "OGG", "VORBIS"),
        "nested/deeper/voice.opus": (48_000, 1, "OGG", "OPUS"),
        "nested/deeper/voice.mp3": (32_000, 1, "MP3", "MPEG_LAYER_III"),
    }
    for i, (name, (rate, channels, container, subtype)) in enumerate(cases.items()):
        wave = voice_like(2.0, rate, f0=110 + 20 * i, seed=i)
        sf.write(folder / name, np.repeat(wave[:, None], channels, axis=1), rate, format=container, subtype=subtype)
    (folder / "notes.txt").write_text("not audio, and not walked")
    return folder


def test_sample_audio_gives_a_sensible_row_per_clip(capsys):
    code, out, err = run(["predict", str(SAMPLE_AUDIO)], capsys)
    assert code == 0, err
    table = read_csv_text(out)
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    assert list(table.columns) == COLUMNS == PREDICTION_SCHEMA.names
    assert list(table.path) == [str(p) for p in clips]
    assert table.error.isna().all()
    probabilities = table[[c for c in COLUMNS if c.startswith("prob_")]].to_numpy()
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-3)
    assert (table.emotion_confidence == probabilities.max(1)).all()
    # the speakers' own gender labels (SOURCES.tsv) are the check that predictions are real
    truth = {row["file"]: row["gender"] for row in csv.DictReader(open(SAMPLE_AUDIO / "SOURCES.tsv"), delimiter="\t")}
    correct = sum(truth[Path(p).name] == g for p, g in zip(table.path, table.gender))
    assert correct >= 8
    assert table.age.between(10, 90).all()
    assert set(table.encoder) == {"ge2e-layers+prosody"} and set(table["model"]) == {"persona-ge2e-layers+prosody"}
    assert "9 files" in err  # the summary line goes to stderr, never into the results


def test_every_format_rate_and_channel_count_is_read(formats_folder: Path, capsys):
    code, out, err = run(["predict", str(formats_folder), "--quiet"], capsys)
    assert code == 0, err
    table = read_csv_text(out)
    assert len(table) == 10  # notes.txt is not walked
    assert table.error.isna().all()
    assert np.allclose(table.duration_s, 2.0, atol=0.03)
    assert list(table.path) == sorted(table.path)
    assert err == ""  # --quiet


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_each_writer_reads_back_with_the_same_values(suffix: str, tmp_path: Path, capsys):
    code, reference, _ = run(["predict", str(SAMPLE_AUDIO), "-q"], capsys)
    assert code == 0
    target = tmp_path / f"results{suffix}"
    code, out, _ = run(["predict", str(SAMPLE_AUDIO), "-q", "-o", str(target)], capsys)
    assert code == 0 and out == ""
    readers = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}
    written = readers[suffix](target)
    expected = read_csv_text(reference)
    assert list(written.columns) == COLUMNS
    pd.testing.assert_frame_equal(written.drop(columns="error"), expected.drop(columns="error"), check_dtype=False)


def test_format_option_and_stdout_dash(tmp_path: Path, capsys):
    target = tmp_path / "results.data"
    code, _, _ = run(["predict", str(SAMPLE_AUDIO), "-q", "-o", str(target), "--format", "jsonl"], capsys)
    assert code == 0
    assert len(target.read_text().splitlines()) == 9
    assert json.loads(target.read_text().splitlines()[0])["encoder"] == DEFAULT_ENCODER
    code, out, _ = run(["predict", str(SAMPLE_AUDIO), "-q", "-o", "-"], capsys)
    assert code == 0 and out.startswith("path,duration_s,")


def test_files_from_stdin_dedupes_and_keeps_sorted_order(monkeypatch, capsys):
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))[:3]
    listing = "\n".join(str(p) for p in [clips[2], clips[0], clips[1], clips[0]]) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(listing))
    code, out, _ = run(["predict", "--files-from", "-", "-q"], capsys)
    assert code == 0
    assert list(read_csv_text(out).path) == [str(p) for p in clips]


def test_files_from_file_combines_with_arguments(tmp_path: Path, capsys):
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clips[0]}\n\n{clips[1]}\n")
    code, out, _ = run(["predict", str(clips[2]), "--files-from", str(listing), "-q"], capsys)
    assert code == 0 and len(read_csv_text(out)) == 3


def test_a_broken_file_becomes_an_error_row_and_exit_code_1(tmp_path: Path, capsys):
    sf.write(tmp_path / "a_good.wav", voice_like(2.0), 16_000)
    (tmp_path / "b_broken.wav").write_bytes(b"this is not a RIFF header at all" * 10)
    sf.write(tmp_path / "c_short.wav", voice_like(0.1), 16_000)
    sf.write(tmp_path / "d_good.flac", voice_like(3.0, f0=200), 16_000)
    code, out, err = run(["predict", str(tmp_path)], capsys)
    assert code == 1
    table = read_csv_text(out).set_index(read_csv_text(out).path.map(lambda p: Path(p).name))
    assert table.loc["b_broken.wav", "error"] == "not an audio file"
    assert table.loc["c_short.wav", "error"].startswith("too short: 0.10 s")
    assert table.loc[["b_broken.wav", "c_short.wav"], ["emotion", "gender", "age"]].isna().all().all()
    assert table.loc[["a_good.wav", "d_good.flac"], "error"].isna().all()
    assert table.loc[["a_good.wav", "d_good.flac"], "gender"].notna().all()
    assert "2 of 4 files failed" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict"], "no input"),
        (["predict", "/no/such/folder"], "no such file or folder"),
        (["predict", "{sample}", "--encoder", "nope"], "unknown encoder 'nope'"),
        (["predict", "{sample}", "--encoder", "mfcc"], "no bundled model for encoder 'mfcc'"),
        (["predict", "{sample}", "-o", "/no/such/folder/out.csv"], "output folder does not exist"),
        (["predict", "{sample}", "-o", "out.xlsx"], "cannot tell the format"),
        (["predict", "{sample}", "--format", "xml"], "unknown format 'xml'"),
        (["predict", "{sample}", "--bogus"], "No such option: --bogus"),
        (["predict", "{sample}", "--batch-size", "0"], "--batch-size"),
        (["predict", "{sample}", "--device", "tpu"], "--device must be"),
        (["predict", "{sample}", "--model", "/no/model.safetensors"], "model file not found"),
        (["predict", "{empty}"], "no audio files found"),
    ],
    ids=[
        "no-input",
        "missing-folder",
        "unknown-encoder",
        "encoder-without-bundled-model",
        "missing-output-folder",
        "unknown-extension",
        "unknown-format",
        "unknown-option",
        "zero-batch-size",
        "unknown-device",
        "missing-model",
        "empty-folder",
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv, message, tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.format(sample=SAMPLE_AUDIO, empty=tmp_path / "empty") for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("persona: error:")


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path, capsys):
    target = tmp_path / "results.csv"
    target.write_text("precious\n")
    code, _, err = run(["predict", str(SAMPLE_AUDIO), "-o", str(target)], capsys)
    assert code == 2 and "--overwrite" in err
    assert target.read_text() == "precious\n"
    code, _, _ = run(["predict", str(SAMPLE_AUDIO), "-q", "-o", str(target), "--overwrite"], capsys)
    assert code == 0 and len(pd.read_csv(target)) == 9
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary file left behind


def test_embed_writes_vectors(tmp_path: Path, capsys):
    target = tmp_path / "emb.parquet"
    code, _, _ = run(["embed", str(SAMPLE_AUDIO), "-q", "-o", str(target)], capsys)
    assert code == 0
    table = pd.read_parquet(target)
    assert list(table.columns) == ["path", "duration_s", "encoder", "vector", "error"]
    vectors = np.stack(table.vector.to_numpy())
    assert vectors.shape == (9, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_console_script_in_a_shell_pipeline():
    """`find ... | persona predict --files-from - -o -`, as users run it, through a real process."""
    persona = Path(sys.executable).with_name("persona")
    listing = "\n".join(str(p) for p in sorted(SAMPLE_AUDIO.glob("*.mp3"))[:2])
    done = subprocess.run(
        [str(persona), "predict", "--files-from", "-", "-o", "-"],
        input=listing,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(read_csv_text(done.stdout)) == 2
    version = subprocess.run([sys.executable, "-m", "persona_cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("persona ")
