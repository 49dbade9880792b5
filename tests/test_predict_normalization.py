"""`persona predict` with a model trained on corpus- or speaker-normalised features."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import run_cli as run, voice_like
from persona_cli.embedding import embed_files
from persona_cli.encoders import load_encoder
from persona_cli.model import PersonaModel, build_network, bundled_model_path, load_model
from persona_cli.normalization import MIN_GROUP_FILES, network_inputs
from persona_cli.options import PredictOptions


def _model_with(normalization: str, folder: Path) -> Path:
    """An untrained ge2e model for normalised inputs: the pipeline's arithmetic is under test here,
    not the model's accuracy."""
    metadata = dataclasses.replace(load_model(bundled_model_path("ge2e")).metadata, normalization=normalization)
    torch.manual_seed(0)
    return PersonaModel(build_network(metadata), metadata).save(folder / f"{normalization}.safetensors")


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speakers")
    for s, base in enumerate((110, 210)):
        (root / f"speaker{s}").mkdir()
        for i in range(MIN_GROUP_FILES + 1):
            sf.write(root / f"speaker{s}" / f"clip{i}.wav", voice_like(1.0 + 0.1 * i, f0=base + 7 * i, seed=i), 16_000)
    return root


def test_speaker_normalised_predictions_use_each_folders_statistics(two_speakers, tmp_path, capsys):
    model_path = _model_with("speaker", tmp_path)
    code, _, err = run(
        ["predict", str(two_speakers), "--model", str(model_path), "-o", str(tmp_path / "p.csv")], capsys
    )
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "p.csv")
    assert (rows["normalization"] == "speaker").all() and rows["error"].isna().all()

    files = sorted(two_speakers.rglob("*.wav"))
    vectors = np.stack([r.vector for r in embed_files(files, load_encoder("ge2e"), PredictOptions(workers=0))])
    expected = load_model(model_path).predict(network_inputs(vectors, "speaker", [f.parent.name for f in files]))
    by_path = rows.set_index("path").loc[[str(f) for f in files]]
    np.testing.assert_allclose(by_path["age"], np.round(expected.age_years, 1), atol=0.11)
    assert list(by_path["gender"]) == [
        load_model(model_path).metadata.genders[i] for i in expected.gender_probs.argmax(1)
    ]


def test_a_speaker_folder_too_small_is_refused_before_any_work(two_speakers, tmp_path, capsys):
    model_path = _model_with("speaker", tmp_path)
    few = tmp_path / "few" / "speakerX"
    few.mkdir(parents=True)
    for i in range(3):
        sf.write(few / f"c{i}.wav", voice_like(1.0, seed=i), 16_000)
    code, out, err = run(["predict", str(two_speakers), str(few.parent), "--model", str(model_path)], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "at least" in err and "speakerX (3)" in err


def test_corpus_normalisation_makes_a_prediction_depend_on_the_run(two_speakers, tmp_path, capsys):
    model_path = _model_with("corpus", tmp_path)
    outputs = {}
    for name, inputs in {"both": [two_speakers], "one": [two_speakers / "speaker0"]}.items():
        outputs[name] = tmp_path / f"{name}.csv"
        code, _, _ = run(["predict", *map(str, inputs), "--model", str(model_path), "-o", str(outputs[name])], capsys)
        assert code == 0
    both = pd.read_csv(outputs["both"]).set_index("path")
    one = pd.read_csv(outputs["one"]).set_index("path")
    assert not np.allclose(both.loc[one.index, "age"], one["age"])


def test_normalize_option_must_match_the_model(two_speakers, tmp_path, capsys):
    model_path = _model_with("corpus", tmp_path)
    code, _, err = run(["predict", str(two_speakers), "--model", str(model_path), "--normalize", "speaker"], capsys)
    assert code == 2 and "trained with corpus normalisation" in err


@pytest.mark.parametrize("normalization", ["speaker", "corpus"])
def test_normalize_without_a_model_picks_the_bundled_model_trained_that_way(
    two_speakers, tmp_path, capsys, normalization
):
    output = tmp_path / "p.csv"
    code, _, err = run(["predict", str(two_speakers), "--normalize", normalization, "-o", str(output)], capsys)
    assert code == 0, err
    rows = pd.read_csv(output)
    assert set(rows["model"]) == {f"persona-ge2e-layers+prosody-{normalization}"} and set(rows["normalization"]) == {
        normalization
    }
    assert rows["error"].isna().all() and rows["age"].between(10, 90).all()


def test_normalize_for_an_encoder_without_such_a_bundled_model_is_a_usage_error(two_speakers, capsys):
    code, out, err = run(["predict", str(two_speakers), "--encoder", "ge2e", "--normalize", "speaker"], capsys)
    assert code == 2 and out == ""
    assert "no bundled model for encoder 'ge2e' with --normalize speaker" in err


def test_a_files_from_csv_speaker_column_sets_the_speaker_groups(two_speakers, tmp_path, capsys):
    """One flat folder, speakers in a CSV: the groups come from the column, not from the folder."""
    model_path = _model_with("speaker", tmp_path)
    flat = tmp_path / "flat"
    flat.mkdir()
    files, speakers = [], []
    for source in sorted(two_speakers.rglob("*.wav")):
        target = flat / f"{source.parent.name}_{source.name}"
        target.write_bytes(source.read_bytes())
        files.append(target)
        speakers.append(source.parent.name)
    listing = tmp_path / "calls.csv"
    listing.write_text("path,speaker\n" + "".join(f"{f},{s}\n" for f, s in zip(files, speakers)))
    code, _, err = run(
        ["predict", "--files-from", str(listing), "--model", str(model_path), "-o", str(tmp_path / "p.csv")], capsys
    )
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "p.csv").set_index("path").loc[[str(f) for f in files]]

    vectors = np.stack([r.vector for r in embed_files(files, load_encoder("ge2e"), PredictOptions(workers=0))])
    model = load_model(model_path)
    by_speaker = model.predict(network_inputs(vectors, "speaker", speakers))
    by_folder = model.predict(network_inputs(vectors, "speaker", ["flat"] * len(files)))
    np.testing.assert_allclose(rows["age"], np.round(by_speaker.age_years, 1), atol=0.11)
    assert not np.allclose(rows["age"], np.round(by_folder.age_years, 1), atol=0.11)


def test_a_csv_speaker_with_too_few_files_is_refused_by_name(two_speakers, tmp_path, capsys):
    model_path = _model_with("speaker", tmp_path)
    files = sorted(two_speakers.rglob("*.wav"))
    listing = tmp_path / "calls.csv"
    listing.write_text(
        "path,speaker\n" + "".join(f"{f},{'rare' if i < 2 else 'common'}\n" for i, f in enumerate(files))
    )
    code, out, err = run(["predict", "--files-from", str(listing), "--model", str(model_path)], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "speaker rare (2)" in err


def test_a_corpus_model_names_the_run_even_when_a_csv_gives_speakers(two_speakers, tmp_path, capsys):
    model_path = _model_with("corpus", tmp_path)
    files = sorted(two_speakers.rglob("*.wav"))[:3]
    listing = tmp_path / "calls.csv"
    listing.write_text("path,speaker\n" + "".join(f"{f},anna\n" for f in files))
    code, out, err = run(["predict", "--files-from", str(listing), "--model", str(model_path)], capsys)
    assert code == 2 and out == ""
    assert "run normalisation needs at least" in err and "speaker" not in err


def test_speaker_folders_are_named_as_the_speakers_in_one_warning(two_speakers, tmp_path, capsys):
    model_path = _model_with("speaker", tmp_path)
    flat = tmp_path / "flat"
    flat.mkdir()
    for source in sorted(two_speakers.rglob("*.wav")):
        (flat / f"{source.parent.name}_{source.name}").write_bytes(source.read_bytes())
    code, _, err = run(["predict", str(flat), "--model", str(model_path), "-o", str(tmp_path / "p.csv")], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "groups files by folder" in line]
    assert warnings == [
        f"persona: --normalize speaker groups files by folder: {2 * (MIN_GROUP_FILES + 1)} files in {flat} are "
        "treated as one speaker; if they are not, give each file's speaker in a --files-from CSV"
    ]


def test_speakers_from_a_csv_need_no_folder_warning(two_speakers, tmp_path, capsys):
    model_path = _model_with("speaker", tmp_path)
    files = sorted(two_speakers.rglob("*.wav"))
    listing = tmp_path / "calls.csv"
    listing.write_text("path,speaker\n" + "".join(f"{f},{f.parent.name}\n" for f in files))
    code, _, err = run(["predict", "--files-from", str(listing), "--model", str(model_path), "-o", "-"], capsys)
    assert code == 0 and "groups files by folder" not in err
