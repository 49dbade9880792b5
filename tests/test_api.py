"""The Python API under the CLI: README's example, Predictor/Embedder results against the CLI's rows,
waveforms in memory, train()/evaluate() returning metrics.json, and a lean import."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import persona_cli as persona
from conftest import REPO_ROOT, SAMPLE_AUDIO, run_cli as run, voice_like
from persona_cli.errors import UsageError
from persona_cli.labels import EMOTIONS
from persona_cli.results import EMBEDDING_SCHEMA, PREDICTION_SCHEMA, Embedding, Prediction
from persona_cli.runtime import compute_threads

CLIPS = sorted(SAMPLE_AUDIO.glob("*.mp3"))[:3]


@pytest.fixture(scope="module")
def ge2e_predictor() -> persona.Predictor:
    return persona.Predictor(encoder="ge2e", device="cpu")


def readme_python_example() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_as_written(monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    exec(compile(readme_python_example(), "README.md", "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sample_audio/common_voice_en_215456.mp3 ") and lines[0].endswith(" None")
    assert lines[-1] == "(256,)"


def test_public_names_are_few_and_all_resolve():
    assert set(persona.__all__) >= {"Predictor", "Embedder", "Prediction", "Embedding", "train", "evaluate"}
    for name in persona.__all__:
        assert getattr(persona, name) is not None
    with pytest.raises(AttributeError):
        persona.load_predictor  # noqa: B018 - the old internal name is not part of the API


def test_result_fields_are_the_output_columns():
    assert [f.name for f in dataclasses.fields(Prediction)] == PREDICTION_SCHEMA.names
    assert [f.name for f in dataclasses.fields(Embedding)] == EMBEDDING_SCHEMA.names
    assert [n for n in PREDICTION_SCHEMA.names if n.startswith("prob_")] == [f"prob_{e}" for e in EMOTIONS]


def test_predict_files_gives_the_rows_the_cli_writes(ge2e_predictor, capsys):
    code, out, _ = run(["predict", *map(str, CLIPS), "--encoder", "ge2e", "--device", "cpu", "-q"], capsys)
    assert code == 0
    cli_rows = pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])
    api_rows = pd.DataFrame([p.row() for p in ge2e_predictor.predict_files(CLIPS)]).fillna(np.nan)
    pd.testing.assert_frame_equal(cli_rows, api_rows, check_dtype=False)


def test_a_broken_file_is_a_result_with_an_error_not_an_exception(ge2e_predictor, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    results = list(ge2e_predictor.predict_files([broken, CLIPS[0]]))
    assert results[0].error == "not an audio file" and results[0].emotion is None
    assert results[1].error is None and results[1].emotion in EMOTIONS


def test_predict_waveform_equals_predicting_the_file(ge2e_predictor):
    wave, rate = sf.read(CLIPS[0], dtype="float32")
    from_memory = ge2e_predictor.predict_waveform(wave, rate)
    (from_file,) = ge2e_predictor.predict_files([CLIPS[0]])
    assert from_memory.path is None and from_memory.duration_s == pytest.approx(from_file.duration_s, abs=1e-3)
    assert from_memory.emotion == from_file.emotion and from_memory.gender == from_file.gender
    np.testing.assert_allclose(
        list(from_memory.emotion_probabilities.values()), list(from_file.emotion_probabilities.values()), atol=2e-3
    )
    assert from_memory.age == pytest.approx(from_file.age, abs=0.2)


def test_a_stereo_waveform_is_downmixed_like_a_file():
    embedder = persona.Embedder("ge2e", device="cpu")
    mono = voice_like(2.0, sample_rate=22_050)
    stereo = np.stack([mono, mono], axis=1)
    np.testing.assert_allclose(
        embedder.embed_waveform(stereo, 22_050).vector, embedder.embed_waveform(mono, 22_050).vector, atol=1e-6
    )


@pytest.mark.parametrize(
    ("wave", "rate", "error"),
    [
        pytest.param(np.zeros(800, np.float32), 16_000, "too short: 0.05 s < 0.5 s", id="too-short"),
        pytest.param(np.zeros((2, 2, 8000), np.float32), 16_000, "must be 1-D or (frames, channels)", id="3-d"),
        pytest.param(np.zeros(16_000, np.float32), 0, "unsupported sample rate: 0 Hz", id="zero-rate"),
        pytest.param(np.zeros(0, np.float32), 16_000, "no audio samples", id="empty"),
    ],
)
def test_a_waveform_that_cannot_be_used_gives_an_error(ge2e_predictor, wave, rate, error):
    prediction = ge2e_predictor.predict_waveform(wave, rate)
    assert error in prediction.error and prediction.emotion is None and prediction.age is None


def test_integer_pcm_and_a_whole_number_float_rate_are_read_as_a_file_would_be():
    embedder = persona.Embedder("ge2e", device="cpu")
    wave = voice_like(2.0)
    pcm = np.round(wave * 32768).astype(np.int16)
    as_float = embedder.embed_waveform(pcm.astype(np.float32) / 32768, 16_000).vector
    np.testing.assert_allclose(embedder.embed_waveform(pcm, 16_000.0).vector, as_float, atol=1e-6)


def test_channels_first_is_refused_with_the_layout_named(ge2e_predictor):
    stereo = np.stack([voice_like(1.0), voice_like(1.0)])  # (2, frames), as librosa gives it
    assert "transpose it" in ge2e_predictor.predict_waveform(stereo, 16_000).error


def test_a_normalised_model_refuses_a_single_waveform():
    predictor = persona.Predictor(normalize="speaker", device="cpu")
    with pytest.raises(persona.UsageError, match="use predict_files"):
        predictor.predict_waveform(voice_like(1.0), 16_000)


def test_library_callers_get_the_cli_thread_layout():
    persona.Embedder("mfcc", device="cpu", workers=2)
    assert torch.get_num_threads() == compute_threads(2)


def test_embed_files_gives_typed_vectors():
    embeddings = list(persona.Embedder("ge2e", device="cpu").embed_files(CLIPS[:2]))
    assert [e.path for e in embeddings] == [str(c) for c in CLIPS[:2]]
    assert all(e.vector.shape == (256,) and e.vector.dtype == np.float32 for e in embeddings)
    assert len(embeddings[0].row()["vector"]) == 256


def test_train_and_evaluate_return_what_metrics_json_holds(tmp_path):
    manifest = tmp_path / "manifest.csv"
    rows = []
    for i in range(16):
        gender = ("male", "female")[i % 2]
        sf.write(tmp_path / f"clip{i:02d}.wav", voice_like(1.0, f0=(110 if i % 2 == 0 else 220) + i, seed=i), 16_000)
        rows.append(
            dict(
                path=f"clip{i:02d}.wav",
                speaker=f"s{i % 8}",
                emotion=("anger", "sad")[i % 3 == 0],
                gender=gender,
                age=20 + i,
            )
        )
    pd.DataFrame(rows).to_csv(manifest, index=False)
    report = persona.train([f"manifest:{manifest}"], folds=2, encoder="mfcc", epochs=2, out=tmp_path / "run")
    assert report == json.loads((tmp_path / "run" / "metrics.json").read_text())
    model = tmp_path / "run" / "persona-mfcc.safetensors"
    scored = persona.evaluate([f"manifest:{manifest}"], model=model, out=tmp_path / "eval")
    assert scored == json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert scored["overall"]["gender"]["accuracy"] >= 0.5


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def test_import_is_cheap_until_a_model_is_needed():
    done = _python("import sys, persona_cli; print('torch' in sys.modules, persona_cli.__version__)")
    assert done.returncode == 0 and done.stdout.split() == ["False", persona.__version__]


def test_predict_needs_neither_pandas_nor_matplotlib_and_train_names_the_extra():
    block = (
        "import sys; sys.modules['pandas'] = None; sys.modules['matplotlib'] = None; from persona_cli.cli import main; "
    )
    done = _python(block + f"main(['predict', {str(CLIPS[0])!r}, '--encoder', 'ge2e', '-q'])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("path,duration_s,emotion")
    done = _python(block + "main(['train', 'sample_audio'])")
    assert done.returncode == 2
    assert done.stderr.strip() == "persona: error: persona train/eval need pandas: pip install 'persona-cli[train]'"


def test_half_precision_on_the_cpu_is_refused_before_loading_weights(capsys):
    with pytest.raises(UsageError, match="--half needs a GPU, and this run uses the CPU; drop --half"):
        persona.Embedder("ge2e", device="cpu", half=True)
    code, out, err = run(["predict", str(CLIPS[0]), "--device", "cpu", "--half"], capsys)
    assert (
        code == 2
        and out == ""
        and err == "persona: error: --half needs a GPU, and this run uses the CPU; drop --half\n"
    )
