"""Training and evaluation: masking, speaker-grouped folds, determinism, and a tiny end-to-end run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import require_shared, run_cli as run, voice_like
from persona_cli.corpora import LabelledClip
from persona_cli.cross_validation import cross_validate, make_folds
from persona_cli.labels import EMOTIONS
from persona_cli.model import load_model
from persona_cli.training import (
    ADVERSARY_MIN_CLIPS,
    MISSING,
    Targets,
    TrainConfig,
    fit,
    multitask_loss,
    speaker_classes,
)


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


def test_speaker_adversary_classes_are_the_speakers_with_enough_clips_per_corpus():
    speakers = ["a"] * ADVERSARY_MIN_CLIPS + ["b"] * (ADVERSARY_MIN_CLIPS - 1) + ["a"] * ADVERSARY_MIN_CLIPS
    corpus = np.array([0] * (2 * ADVERSARY_MIN_CLIPS - 1) + [1] * ADVERSARY_MIN_CLIPS)
    classes = speaker_classes(speakers, corpus)
    first, second = classes[0], classes[-1]
    assert (classes[:ADVERSARY_MIN_CLIPS] == first).all() and (classes[-ADVERSARY_MIN_CLIPS:] == second).all()
    assert first != second >= 0  # one speaker name in two corpora is two people
    assert (classes[ADVERSARY_MIN_CLIPS:-ADVERSARY_MIN_CLIPS] == -100).all()  # too few clips: ignored


def test_fit_with_a_speaker_adversary_still_learns_the_tasks():
    rng = np.random.default_rng(0)
    clips = mixed_clips()
    targets = Targets.from_clips(clips)
    features = rng.standard_normal((len(clips), 32)).astype(np.float32)
    features[:, 0] += 3 * targets.gender
    config = TrainConfig(head="fcn", epochs=60, validation_fraction=0.0, speaker_adversarial=0.1)
    model, history = fit(features, targets, [c.speaker for c in clips], "test", config)
    assert (model.predict(features).gender_probs.argmax(1) == targets.gender).mean() > 0.8
    assert np.isfinite(history.train_loss).all()


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
    # the bundled model learnt these three (and others not here): scoring it on them is no test
    assert metrics["in_training_data"] == ([corpus] if corpus in ("ravdess", "emodb", "commonvoice") else [])
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
    assert model.metadata.encoder_revision == "2+3"  # ge2e-layers, prosody
    assert model.network.feature_mean.shape == (2 * 1317,)
    code, _, err = run(["eval", "--model", str(model_path), str(tiny_corpus)], capsys)
    assert code == 0, err


def test_leave_one_corpus_out_needs_two_corpora_and_says_so_before_any_work(tiny_corpus: Path, capsys):
    code, _, err = run(["train", f"manifest:{tiny_corpus}", "--split", "corpus", "--encoder", "mfcc"], capsys)
    assert code == 2 and "give at least two corpora" in err and "embeddings" not in err
    code, _, err = run(["train", f"manifest:{tiny_corpus}", "--weak-neutral", "nosuch"], capsys)
    assert code == 2 and "--weak-neutral nosuch: no clips of that corpus" in err


# --- issue 16: a new user's first hour ---------------------------------------------------------------


def _manifest(tmp_path: Path, rows: list[dict]) -> Path:
    """A manifest of generated voices, one row per dict (path: the file to generate)."""
    for i, row in enumerate(rows):
        sf.write(tmp_path / row["path"], voice_like(1.0, f0=110 + 9 * i, seed=i), 16_000)
    manifest = tmp_path / "list.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_too_few_speakers_for_the_folds_is_one_line_before_any_work(tiny_corpus: Path, capsys):
    """It was numpy warnings, then ZeroDivisionError: a fold without a test speaker trained on nothing."""
    actor = require_shared("ravdess", "Actor_01")
    code, _, err = run(["train", str(actor), "--folds", "2", "--encoder", "mfcc", "-q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--folds 2" in err and "ravdess: 1 speaker" in err and "--folds 0" in err
    assert "embeddings" not in err  # nothing was embedded
    code, _, err = run(["train", str(actor), "--folds", "2", "--compare", "-q"], capsys)
    assert code == 2 and "ravdess: 1 speaker" in err
    code, _, err = run(["train", f"manifest:{tiny_corpus}", "--folds", "9", "--encoder", "mfcc"], capsys)
    assert code == 2 and "manifest: 8 speakers" in err and "use --folds 8 or fewer" in err
    code, _, err = run(["train", str(tiny_corpus), "--folds", "30", "--split", "random", "--encoder", "mfcc"], capsys)
    assert code == 2 and "random folds need at least 30 clips, and there are 24" in err


def test_a_non_empty_out_folder_is_refused_without_overwrite(tiny_corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "report.md").write_text("an earlier run's report\n")
    for command in (["train", "--folds", "2"], ["eval"]):
        argv = [*command, str(tiny_corpus), "--out", str(out)] + (
            ["--encoder", "mfcc"] if command[0] == "train" else []
        )
        code, _, err = run(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "--overwrite" in err, err
        assert "embeddings" not in err and (out / "report.md").read_text() == "an earlier run's report\n"
    argv = ["train", str(tiny_corpus), "--folds", "0", "--epochs", "1", "--encoder", "mfcc", "--out", str(out)]
    code, _, err = run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert "an earlier" not in (out / "report.md").read_text()


def test_train_without_cross_validation_writes_a_report_and_says_where_the_model_went(
    tiny_corpus: Path, tmp_path: Path, capsys
):
    """`--folds 1 --out` used to write only a model, with no report and no message."""
    out = tmp_path / "untested"
    argv = ["train", str(tiny_corpus), "--folds", "1", "--epochs", "2", "--encoder", "mfcc", "--out", str(out)]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert "no held-out score" in stdout and "no held-out score" in err
    assert f"saved to {out / 'persona-mfcc.safetensors'}" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"] == {} and metrics["training_data"]["clips"] == 24
    text = (out / "report.md").read_text()
    assert "no held-out score" in text and "## Training data" in text and "24 clips of 8 speakers" in text
    assert (out / "learning_curves.png").is_file()
    # without -o nothing would be kept: refused before any work
    code, _, err = run(["train", str(tiny_corpus), "--folds", "0", "--encoder", "mfcc"], capsys)
    assert code == 2 and "add -o DIR" in err and "embeddings" not in err


def test_untrained_heads_leave_their_columns_empty_and_user_models_carry_a_name(
    tiny_corpus: Path, tmp_path: Path, capsys
):
    """A model trained without age (and here gender) labels wrote ages like 0.6, under the bundled model's name."""
    rows = [
        {"path": f"c{i}.wav", "speaker": f"s{i % 3}", "emotion": ("anger", "sad")[i % 2], "gender": "", "age": ""}
        for i in range(9)
    ]
    manifest = _manifest(tmp_path, rows)
    out = tmp_path / "actors-only"
    argv = ["train", str(manifest), "--folds", "0", "--epochs", "1", "--encoder", "mfcc", "--out", str(out)]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    model_path = out / "persona-mfcc.safetensors"
    metadata = load_model(model_path).metadata
    assert metadata.trained_heads == ["emotion"] and metadata.name == "actors-only"

    code, stdout, err = run(
        ["predict", "--model", str(model_path), str(tmp_path / "c0.wav"), str(tmp_path / "c1.wav")], capsys
    )
    assert code == 0, err
    rows_out = pd.read_csv(io.StringIO(stdout))
    assert (
        rows_out["age"].isna().all() and rows_out["gender"].isna().all() and rows_out["gender_confidence"].isna().all()
    )
    assert rows_out["emotion"].notna().all() and (rows_out["model"] == "actors-only").all()
    assert err.count("age: this model saw no age labels in training; the age column is empty") == 1
    assert err.count("gender: this model saw no gender labels in training; the gender columns are empty") == 1

    # eval on data with genders and ages scores neither, and leaves them out of predictions.csv
    code, _, err = run(["eval", "--model", str(model_path), str(tiny_corpus), "--out", str(tmp_path / "ev")], capsys)
    assert code == 0 and "age: this model saw no age labels in training; not scored" in err
    assert set(json.loads((tmp_path / "ev" / "metrics.json").read_text())["overall"]) == {"emotion"}
    scored = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert scored[["age_pred", "gender_pred", "prob_female"]].isna().all().all() and scored["age_true"].isna().all()

    # --name wins over the folder's name
    code, _, err = run([*argv, "--overwrite", "--name", "my-actors"], capsys)
    assert code == 0 and load_model(model_path).name == "my-actors"


def test_eval_of_a_model_on_its_own_training_corpus_says_so(tmp_path: Path, capsys):
    """The README's `persona eval emodb` scored the bundled model on its training data without a word."""
    out = tmp_path / "report"
    code, _, err = run(["eval", _emodb_sample(tmp_path / "emodb"), "--out", str(out)], capsys)
    assert code == 0, err
    assert err.count("the model was trained on emodb: these figures are in-corpus, not a test") == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["in_training_data"] == ["emodb"]
    title, _, warning = (out / "report.md").read_text().splitlines()[:3]
    assert title.startswith("# persona eval") and "in-corpus, not a test" in warning


def test_cross_validation_report_holds_fold_scores_probabilities_and_held_out_curves(
    tiny_corpus: Path, tmp_path: Path, capsys
):
    out = tmp_path / "cv"
    argv = ["train", f"manifest:{tiny_corpus}", "--folds", "2", "--encoder", "mfcc", "--epochs", "3", "--out", str(out)]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    text = (out / "report.md").read_text()
    folds = [line for line in text.splitlines() if line.startswith("- Fold")]
    assert len(folds) == 2 and all(
        "emotion acc" in line and "gender acc" in line and "age RMSE" in line for line in folds
    )
    assert (out / "confusion_gender.png").is_file()
    predictions = pd.read_csv(out / "predictions.csv")
    emotion_probs = predictions[[f"prob_{e}" for e in EMOTIONS]].sum(axis=1)
    np.testing.assert_allclose(emotion_probs, 1.0, atol=1e-3)
    np.testing.assert_allclose(predictions[["prob_female", "prob_male"]].sum(axis=1), 1.0, atol=1e-3)


def test_fit_records_the_held_out_loss_without_changing_the_training():
    rng = np.random.default_rng(0)
    clips = mixed_clips()
    targets = Targets.from_clips(clips)
    features = rng.standard_normal((len(clips), 16)).astype(np.float32)
    config = TrainConfig(head="fcn", epochs=3)
    watched, history = fit(
        features[:100],
        targets.subset(np.arange(100)),
        [c.speaker for c in clips[:100]],
        "t",
        config,
        held_out=(features[100:], targets.subset(np.arange(100, len(clips)))),
    )
    plain, plain_history = fit(
        features[:100], targets.subset(np.arange(100)), [c.speaker for c in clips[:100]], "t", config
    )
    assert len(history.held_out_loss) == 3 and not plain_history.held_out_loss
    assert history.train_loss == plain_history.train_loss
    np.testing.assert_array_equal(watched.predict(features).age_years, plain.predict(features).age_years)
    assert watched.metadata.trained_heads == ["emotion", "gender", "age"]


def test_a_fold_that_tests_one_gender_only_is_left_out_of_the_fold_mean_with_a_warning(caplog):
    """45.8 % ± 46.9 came from folds whose test part held one gender: their accuracy is luck."""
    sizes = {"F1": ("female", 10), "M1": ("male", 6), "M2": ("male", 3), "F2": ("female", 2)}
    clips = [
        clip(100 * s + i, "acted", name, ("anger", "sad", "happy")[i % 3], gender)
        for s, (name, (gender, n)) in enumerate(sizes.items())
        for i in range(n)
    ]
    # dealt largest first onto the lightest fold: fold 1 = F1 (female only), fold 2 = M1 + M2 + F2
    assert [sorted({clips[i].gender for i in fold}) for fold in make_folds(clips, 2)] == [
        ["female"],
        ["female", "male"],
    ]
    features = np.random.default_rng(0).standard_normal((len(clips), 8)).astype(np.float32)
    with caplog.at_level("WARNING", logger="persona"):
        result = cross_validate(features, clips, "t", 2, "speaker", TrainConfig(head="fcn", epochs=2))
    report = result.report
    assert report["single_class_folds"] == {"gender": [1]}
    assert report["fold_mean"]["gender"]["n_folds"] == 1 and "gender" not in report["std"]
    assert report["fold_mean"]["emotion"]["n_folds"] == 2
    assert "gender: the test part of fold 1 holds one gender class only" in caplog.text
    assert report["warnings"] == [caplog.records[-1].getMessage()]
    assert all(len(h.held_out_loss) == 2 for h in result.histories)


def test_training_embeds_with_a_float32_lstm_on_any_cpu():
    """A CPU with bfloat16 units runs predict's LSTM in bfloat16; what is trained and cross-validated
    must not depend on the machine, so embed_clips switches it back to float32."""
    from conftest import SAMPLE_AUDIO
    from persona_cli.corpora import read_corpora
    from persona_cli.encoders import load_encoder
    from persona_cli.experiments import embed_clips
    from persona_cli.options import PredictOptions

    encoder = load_encoder("ge2e-layers+prosody")
    encoder.parts[0].bfloat16 = True
    labelled = embed_clips(read_corpora([str(SAMPLE_AUDIO / "manifest.csv")])[:2], encoder, PredictOptions())
    assert not encoder.parts[0].bfloat16
    assert labelled.features.shape == (2, encoder.dim)
