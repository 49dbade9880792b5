"""Training and evaluation: masking, speaker-grouped folds, determinism, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import require_shared, run_cli as run, voice_like
from persona_cli.corpora import LabelledClip
from persona_cli.cross_validation import make_folds
from persona_cli.model import load_model
from persona_cli.training import MISSING, Targets, TrainConfig, fit, multitask_loss


def clip(i: int, corpus: str, speaker: str, emotion=None, gender=None, age=None) -> LabelledClip:
    return LabelledClip(Path(f"/x/{corpus}/{i}.wav"), corpus, f"{corpus}:{speaker}", emotion, gender, age, emotion)


def mixed_clips() -> list[LabelledClip]:
    """An emotion corpus without ages and an age corpus without emotions, like RAVDESS + Common Voice."""
    acted = [
        clip(i, "acted", str(i % 6), ("anger", "sad", "happy")[i % 3], ("female", "male")[i % 2]) for i in range(60)
    ]
    crowd = [clip(i, "crowd", str(i // 2), None, ("female", "male")[i % 2], 20.0 + i % 40) for i in range(80)]
    return acted + crowd


def test_speaker_folds_never_share_a_speaker_and_cover_every_clip():
    clips = mixed_clips()
    folds = make_folds(clips, 5, "speaker")
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(clips)))
    speakers = [{clips[i].speaker for i in fold} for fold in folds]
    for a in range(5):
        for b in range(a + 1, 5):
            assert not speakers[a] & speakers[b]
    # every fold holds part of each corpus, so per-corpus scores exist in every fold
    assert all({clips[i].corpus for i in fold} == {"acted", "crowd"} for fold in folds)


def test_random_split_does_mix_speakers():
    clips = mixed_clips()
    folds = make_folds(clips, 5, "random")
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(clips)))
    speakers = [{clips[i].speaker for i in fold} for fold in folds]
    assert speakers[0] & speakers[1]


def test_missing_labels_are_masked_per_task():
    targets = Targets.from_clips(mixed_clips())
    assert (targets.emotion[60:] == MISSING).all() and np.isnan(targets.age[:60]).all()
    emotion_logits = torch.zeros(4, 6, requires_grad=True)
    gender_logits = torch.zeros(4, 2, requires_grad=True)
    age = torch.zeros(4, requires_grad=True)
    batch = {
        "emotion": torch.tensor([0, MISSING, MISSING, MISSING]),
        "gender": torch.tensor([MISSING, MISSING, MISSING, MISSING]),
        "age_z": torch.tensor([float("nan"), 2.0, float("nan"), float("nan")]),
    }
    loss = multitask_loss((emotion_logits, gender_logits, age), batch)
    # CE over the one emotion-labelled clip (log 6) + MSE over the one age-labelled clip (4); no gender term
    assert loss.item() == pytest.approx(np.log(6) + 4.0, abs=1e-5)
    loss.backward()
    assert emotion_logits.grad[1:].abs().sum() == 0
    assert gender_logits.grad is None  # no gender label in the batch: the head gets no gradient at all
    assert age.grad[[0, 2, 3]].abs().sum() == 0


def test_fit_is_deterministic_and_learns_a_separable_signal():
    rng = np.random.default_rng(0)
    clips = mixed_clips()
    targets = Targets.from_clips(clips)
    features = rng.standard_normal((len(clips), 32)).astype(np.float32)
    features[:, 0] += 3 * targets.gender  # gender is readable from one dimension
    speakers = [c.speaker for c in clips]
    # no validation part: its loss would be dominated by the random emotion and age labels here
    config = TrainConfig(head="fcn", epochs=60, validation_fraction=0.0)  # ~5 steps an epoch
    first, _ = fit(features, targets, speakers, "test", config)
    second, _ = fit(features, targets, speakers, "test", config)
    a, b = first.predict(features), second.predict(features)
    assert np.array_equal(a.emotion_probs, b.emotion_probs) and np.array_equal(a.age_years, b.age_years)
    assert (a.gender_probs.argmax(1) == targets.gender).mean() > 0.8  # chance is 0.5
    assert 20 <= first.metadata.age_mean <= 60  # standardisation uses the labelled training ages only


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A manifest of generated voices: low pitch 'male', high pitch 'female', with emotions and ages."""
    rows = []
    for i in range(24):
        gender = ("male", "female")[i % 2]
        path = tmp_path / f"clip{i:02d}.wav"
        sf.write(path, voice_like(1.0, f0=(110 if gender == "male" else 220) + i, seed=i), 16_000)
        rows.append(
            {
                "path": path.name,
                "speaker": f"s{i % 8}",
                "emotion": ("anger", "sad")[i % 3 == 0],
                "gender": gender,
                "age": 20 + i,
            }
        )
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_train_then_eval_end_to_end(tiny_corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(
        ["train", f"manifest:{tiny_corpus}", "--folds", "3", "--encoder", "mfcc", "--epochs", "3", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    assert "speaker-grouped 3-fold" in stdout and "| overall |" in stdout
    assert "24 labelled clips" in err or "read 24" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["overall"]) == {"emotion", "gender", "age"}
    assert set(metrics["per_corpus"]) == {"manifest"} and len(metrics["folds"]) == 3 and "std" in metrics
    assert metrics["overall"]["gender"]["n"] == 24
    for name in ("report.md", "confusion_emotion.png", "age_scatter.png", "learning_curves.png", "predictions.csv"):
        assert (out / name).is_file(), name
    predictions = pd.read_csv(out / "predictions.csv")
    folds = predictions.groupby("fold").speaker.apply(set).tolist()
    assert all(not (a & b) for i, a in enumerate(folds) for b in folds[i + 1 :])
    model_path = out / "persona-mfcc.safetensors"
    assert load_model(model_path).metadata.training["clips"] == 24

    # a second run reuses every embedding and gives the same numbers
    code, again, err = run(
        ["train", f"manifest:{tiny_corpus}", "--folds", "3", "--encoder", "mfcc", "--epochs", "3"], capsys
    )
    assert code == 0 and again == stdout and "24 reused from cache, 0 computed" in err

    code, stdout, err = run(
        ["eval", "--model", str(model_path), f"manifest:{tiny_corpus}", "--out", str(tmp_path / "eval")], capsys
    )
    assert code == 0, err
    evaluation = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluation["overall"]["gender"]["n"] == 24 and "no training" in evaluation["protocol"]
    assert "folds" not in evaluation


def test_train_usage_errors(tiny_corpus: Path, capsys):
    code, _, err = run(["train", str(tiny_corpus), "--split", "sideways"], capsys)
    assert code == 2 and "--split" in err
    code, _, err = run(["train", "/no/such/corpus"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_full_cross_validation_on_shared_data(tmp_path: Path, capsys):
    """The issue's full run: all corpora, speaker-grouped 5-fold, report and final model."""
    data = [str(require_shared(name)) for name in ("ravdess", "emodb", "commonvoice")]
    code, stdout, err = run(["train", *data, "--folds", "5", "--out", str(tmp_path / "full")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["per_corpus"]["ravdess"]["gender"]["accuracy"] > 0.97
    assert (
        metrics["per_corpus"]["commonvoice"]["age"]["rmse"]
        < metrics["per_corpus"]["commonvoice"]["age"]["baseline_rmse"]
    )


def _write_voices(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        sf.write(folder / name, voice_like(1.2, f0=100 + 7 * i, seed=i), 16_000)


def _emodb_sample(root: Path) -> str:
    """Every 20th real EmoDB recording (27 of 535, several speakers and emotions) and its speakers.csv,
    linked into the EmoDB layout: the reader on real files at a twentieth of the embedding time."""
    emodb = require_shared("emodb")
    (root / "wav").mkdir(parents=True)
    for path in sorted((emodb / "wav").iterdir())[::20]:
        (root / "wav" / path.name).symlink_to(path)
    (root / "speakers.csv").symlink_to(emodb / "speakers.csv")
    return str(root)


def _generated_corpus(kind: str, root: Path) -> str:
    """CREMA-D and TESS audio cannot be had here: real file names, generated voices."""
    if kind == "crema-d":
        index = require_shared("crema-d", "AudioWAV_lfs_index.csv")
        names = [line.split(",")[0] for line in index.read_text().splitlines()[1:]][::400]
        _write_voices(root / "AudioWAV", names)
        return str(root)
    if kind == "tess":
        for speaker in ("OAF", "YAF"):
            _write_voices(root / f"{speaker}_angry", [f"{speaker}_back_angry.wav", f"{speaker}_bar_angry.wav"])
            _write_voices(root / f"{speaker}_neutral", [f"{speaker}_base_neutral.wav"])
        return str(root)
    _write_voices(root, ["a.wav", "b.wav"])
    (root / "list.csv").write_text("path,speaker,emotion,gender,age\na.wav,s1,sad,female,30\nb.wav,s2,,male,\n")
    return f"manifest:{root / 'list.csv'}"


@pytest.mark.parametrize(
    "corpus, spec",
    [
        pytest.param("ravdess", lambda tmp: str(require_shared("ravdess", "Actor_01")), id="ravdess-one-actor"),
        pytest.param("emodb", lambda tmp: _emodb_sample(tmp / "emodb"), id="emodb-sample"),
        # all 535 files: 5 s of embedding with the default encoder, for what the sample above checks
        pytest.param("emodb", lambda tmp: str(require_shared("emodb")), marks=pytest.mark.slow, id="emodb-all"),
        pytest.param("commonvoice", lambda tmp: str(require_shared("commonvoice", "de")), id="commonvoice-de"),
        pytest.param("crema-d", lambda tmp: _generated_corpus("crema-d", tmp / "crema"), id="crema-d-generated"),
        pytest.param("tess", lambda tmp: _generated_corpus("tess", tmp / "tess"), id="tess-generated"),
        pytest.param("manifest", lambda tmp: _generated_corpus("manifest", tmp / "manifest"), id="manifest-generated"),
    ],
)
def test_eval_bundled_model_on_every_reader(corpus, spec, tmp_path: Path, capsys):
    out = tmp_path / "report"
    code, stdout, err = run(["eval", spec(tmp_path), "-q", "--out", str(out)], capsys)
    assert code == 0, err
    assert f"| {corpus} |" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["per_corpus"]) == [corpus]
    assert metrics["overall"]["gender"]["n"] > 0
    assert len(pd.read_csv(out / "predictions.csv")) == metrics["overall"]["gender"]["n"]


def test_speaker_normalised_training_round_trips_through_train_and_eval(tiny_corpus: Path, tmp_path: Path, capsys):
    """A model trained on raw + speaker-normalised inputs records it, and eval feeds it the same inputs."""
    out = tmp_path / "run"
    code, _, err = run(
        ["train", str(tiny_corpus), "--folds", "0", "--epochs", "2", "--normalize", "speaker", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    # the default encoder, and a name that says how it normalises
    model_path = out / "persona-ge2e-layers+prosody-speaker.safetensors"
    model = load_model(model_path)
    assert model.metadata.normalization == "speaker" and model.metadata.encoder_dim == 1317
    assert model.metadata.encoder_revision == "1+2"  # ge2e-layers, prosody
    assert model.network.feature_mean.shape == (2 * 1317,)
    code, _, err = run(["eval", "--model", str(model_path), str(tiny_corpus)], capsys)
    assert code == 0, err


def test_leave_one_corpus_out_needs_two_corpora_and_says_so_before_any_work(tiny_corpus: Path, capsys):
    code, _, err = run(["train", f"manifest:{tiny_corpus}", "--split", "corpus", "--encoder", "mfcc"], capsys)
    assert code == 2 and "give at least two corpora" in err and "embeddings" not in err
    code, _, err = run(["train", f"manifest:{tiny_corpus}", "--weak-neutral", "nosuch"], capsys)
    assert code == 2 and "--weak-neutral nosuch: no clips of that corpus" in err
