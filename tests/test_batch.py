"""The batch job around predict/embed: progress in audio seconds, the closing summary, and a reader
that stops reading stdout (`persona predict DIR | head`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SAMPLE_AUDIO, run_cli, voice_like
from persona_cli.audio import SAMPLE_RATE
from persona_cli.predictor import Predictor

PERSONA = str(Path(sys.executable).with_name("persona"))


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory) -> Path:
    """More rows than a pipe buffer holds (64 KiB), so a reader that stops early is noticed."""
    folder = tmp_path_factory.mktemp("many")
    for i in range(400):
        sf.write(folder / f"clip{i:03d}.wav", voice_like(0.6, f0=90 + i % 150, seed=i), SAMPLE_RATE)
    return folder


def test_a_reader_that_stops_early_ends_the_run_quietly_with_0(many_clips, tiny_model):
    command = [PERSONA, "predict", str(many_clips), "--model", str(tiny_model), "--batch-size", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    head = [process.stdout.readline() for _ in range(2)]  # what `| head -n 2` reads before it exits
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0, err
    assert head[0].startswith("path,duration_s,emotion") and head[1].startswith(str(many_clips))
    assert "Traceback" not in err and "BrokenPipeError" not in err and "failed" not in err


def test_the_closing_summary_counts_files_failures_labels_and_age(tmp_path, tiny_model, capsys):
    sf.write(tmp_path / "noise.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 2 * SAMPLE_RATE), SAMPLE_RATE)
    inputs = [str(SAMPLE_AUDIO), str(tmp_path / "noise.wav"), "--model", str(tiny_model), "-o", str(tmp_path / "p.csv")]
    code, out, err = run_cli(["predict", *inputs], capsys)
    assert code == 1 and out == ""
    (summary,) = [line for line in err.splitlines() if line.startswith("persona: predict: ")]
    assert summary.startswith("persona: predict: 10 files, 1 failed; emotion ")
    assert "; gender " in summary and "; mean age " in summary
    code, out, err = run_cli(["predict", *inputs, "--overwrite", "-q"], capsys)
    assert code == 1 and out == "" and err == ""


def test_progress_hears_every_second_of_audio_as_chunks_are_embedded(tmp_path, tiny_model):
    seconds = {"a.wav": 1.0, "b.wav": 2.5, "long.wav": 45.0}  # the long one is two 30 s chunks
    for name, duration in seconds.items():
        sf.write(tmp_path / name, voice_like(duration, seed=len(name)), SAMPLE_RATE)
    heard: list[float] = []
    predictor = Predictor(tiny_model, workers=2, batch_size=1)
    predictions = list(predictor.predict_files(sorted(tmp_path.iterdir()), progress=heard.append))
    assert all(p.error is None for p in predictions)
    assert sum(heard) == pytest.approx(sum(seconds.values())) and len(heard) >= 4
