"""model.py: the multi-task network, the safetensors checkpoint format and its failure modes, the
bundled model, and the Predictor's checks that encoder and model belong together."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from persona_cli.encoders import load_encoder
from persona_cli.errors import ModelLoadingError, UsageError
from persona_cli.labels import EMOTIONS, GENDERS
from persona_cli.model import (
    METADATA_KEY,
    ModelMetadata,
    PersonaModel,
    PersonaNet,
    Predictions,
    bundled_model_path,
    load_model,
)
from persona_cli.options import PredictOptions
from persona_cli.predictor import Predictor

TRAINING = {"corpora": {"ravdess": 12, "emodb": 5}, "folds": 5, "uar": 0.41, "recipe": "test"}


def random_model(encoder: str = "ge2e", dim: int = 256, head: str = "cnn", seed: int = 0) -> PersonaModel:
    """Random weights, and non-trivial feature scaling so that the buffers are checked too."""
    torch.manual_seed(seed)
    network = PersonaNet(dim, head)
    with torch.no_grad():
        network.feature_mean.copy_(torch.randn(dim) * 0.1)
        network.feature_std.copy_(torch.rand(dim) + 0.5)
    metadata = ModelMetadata(
        encoder=encoder, encoder_dim=dim, head=head, age_mean=30, age_std=10, training=dict(TRAINING)
    )
    return PersonaModel(network, metadata)


def embeddings(n: int, dim: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file, read by hand from its documented layout."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size])


# --- the network ------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["cnn", "fcn"])
@pytest.mark.parametrize("dim", [80, 192, 256, 512], ids=["dim80", "dim192", "dim256", "dim512"])
def test_forward_shapes(head, dim):
    network = PersonaNet(dim, head).eval()
    emotion, gender, age = network(torch.randn(5, dim))
    assert emotion.shape == (5, len(EMOTIONS))
    assert gender.shape == (5, len(GENDERS))
    assert age.shape == (5,)
    assert all(torch.isfinite(t).all() for t in (emotion, gender, age))
    # a single-item batch keeps its batch axis (squeeze(1), not squeeze())
    assert network(torch.randn(1, dim))[2].shape == (1,)


def test_cnn_and_fcn_are_different_networks():
    assert PersonaNet(256, "cnn").conv is not None
    assert PersonaNet(256, "fcn").conv is None


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="head must be one of"):
        PersonaNet(256, "rnn")


def test_predictions_are_probabilities_and_years():
    model = random_model()
    x = embeddings(7, 256)

    predictions = model.predict(x)

    assert isinstance(predictions, Predictions)
    assert predictions.emotion_probs.shape == (7, 6) and predictions.gender_probs.shape == (7, 2)
    np.testing.assert_allclose(predictions.emotion_probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(predictions.gender_probs.sum(axis=1), 1.0, atol=1e-5)
    assert (predictions.emotion_probs >= 0).all()
    # age: the network's standardised output, scaled by the metadata's age_std and age_mean
    with torch.no_grad():
        _, _, age_z = model.network(torch.from_numpy(x))
    np.testing.assert_allclose(predictions.age_years, age_z.numpy() * 10 + 30, rtol=1e-6, atol=1e-4)
    model.metadata.age_mean, model.metadata.age_std = 50.0, 2.0
    np.testing.assert_allclose(model.predict(x).age_years, age_z.numpy() * 2 + 50, rtol=1e-6, atol=1e-4)


def test_predict_is_deterministic_in_eval_mode():
    model = random_model()  # dropout 0.3: training mode would make two calls differ
    x = embeddings(4, 256)
    np.testing.assert_array_equal(model.predict(x).emotion_probs, model.predict(x).emotion_probs)


# --- checkpoint round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["cnn", "fcn"])
def test_checkpoint_round_trip(tmp_path, head):
    model = random_model(head=head)
    x = embeddings(9, 256)
    before = model.predict(x)

    path = model.save(tmp_path / "nested" / "my-model.safetensors")
    loaded = load_model(path)

    assert path.is_file()
    assert loaded.name == "my-model"
    assert loaded.metadata == model.metadata
    assert loaded.metadata.training == TRAINING
    after = loaded.predict(x)
    np.testing.assert_array_equal(after.emotion_probs, before.emotion_probs)
    np.testing.assert_array_equal(after.gender_probs, before.gender_probs)
    np.testing.assert_array_equal(after.age_years, before.age_years)
    # the input scaling travels inside the checkpoint
    torch.testing.assert_close(loaded.network.feature_mean, model.network.feature_mean)
    torch.testing.assert_close(loaded.network.feature_std, model.network.feature_std)
    assert not loaded.network.training


def test_checkpoint_is_safetensors_with_persona_json_metadata(tmp_path):
    model = random_model()
    path = model.save(tmp_path / "m.safetensors")

    header = safetensors_header(path)

    stored = json.loads(header["__metadata__"][METADATA_KEY])
    assert METADATA_KEY == "persona"
    assert stored == dataclasses.asdict(model.metadata)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert set(tensors) == set(model.network.state_dict())
    assert tensors["feature_mean"]["shape"] == [256] and tensors["feature_mean"]["dtype"] == "F32"


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = random_model().save(tmp_path / "m.safetensors")

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint must load without pickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)

    assert load_model(path).metadata.encoder == "ge2e"


def test_unknown_metadata_fields_are_ignored(tmp_path):
    """A checkpoint from a newer persona with extra fields still loads."""
    model = random_model()
    path = tmp_path / "newer.safetensors"
    state = {k: v.contiguous() for k, v in model.network.state_dict().items()}
    fields = dict(dataclasses.asdict(model.metadata), added_in_a_later_version=[1, 2])
    save_file(state, str(path), metadata={METADATA_KEY: json.dumps(fields)})
    assert load_model(path).metadata == model.metadata


# --- damaged checkpoints ------------------------------------------------------------------------------


def _save_raw(path: Path, state: dict, metadata: dict | None) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    return path


def _damaged(kind: str, tmp_path: Path) -> Path:
    model = random_model()
    good = model.save(tmp_path / "good.safetensors")
    data = good.read_bytes()
    path = tmp_path / f"{kind}.safetensors"
    state = model.network.state_dict()
    if kind == "missing":
        return path
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "no-persona-metadata":
        _save_raw(path, state, None)
    elif kind == "other-metadata-only":
        _save_raw(path, state, {"format": "pt"})
    elif kind == "wrong-encoder-dim":
        fields = dict(dataclasses.asdict(model.metadata), encoder_dim=192)
        _save_raw(path, state, {METADATA_KEY: json.dumps(fields)})
    elif kind == "metadata-not-json":
        _save_raw(path, state, {METADATA_KEY: "{encoder: ge2e"})
    elif kind == "metadata-missing-encoder":
        _save_raw(path, state, {METADATA_KEY: json.dumps({"encoder_dim": 256})})
    elif kind == "unknown-head":
        fields = dict(dataclasses.asdict(model.metadata), head="rnn")
        _save_raw(path, state, {METADATA_KEY: json.dumps(fields)})
    elif kind == "missing-tensor":
        _save_raw(
            path,
            {k: v for k, v in state.items() if not k.startswith("age.")},
            {METADATA_KEY: json.dumps(dataclasses.asdict(model.metadata))},
        )
    elif kind == "metadata-is-a-list":
        _save_raw(path, state, {METADATA_KEY: "[]"})
    elif kind == "a-folder":
        path.mkdir()
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "zero-byte",
        "truncated",
        "random-bytes",
        "no-persona-metadata",
        "other-metadata-only",
        "wrong-encoder-dim",
        "metadata-not-json",
        "metadata-missing-encoder",
        "unknown-head",
        "missing-tensor",
        "a-folder",
        "metadata-is-a-list",
    ],
)
def test_damaged_checkpoint_is_one_line_model_loading_error(tmp_path, kind):
    path = _damaged(kind, tmp_path)
    with pytest.raises(ModelLoadingError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing", "model file not found"),
        ("zero-byte", "not a readable persona checkpoint"),
        ("truncated", "not a readable persona checkpoint"),
        ("random-bytes", "not a readable persona checkpoint"),
        ("no-persona-metadata", "no 'persona' metadata"),
        ("metadata-not-json", "damaged persona checkpoint"),
        ("wrong-encoder-dim", "damaged persona checkpoint"),
    ],
)
def test_damaged_checkpoint_messages_say_what_is_wrong(tmp_path, kind, expected):
    with pytest.raises(ModelLoadingError, match=expected):
        load_model(_damaged(kind, tmp_path))


# --- the bundled model ------------------------------------------------------------------------------


BUNDLED = [
    pytest.param("ge2e-layers+prosody", "none", 1317, id="ge2e-layers+prosody"),
    pytest.param("ge2e-layers+prosody", "speaker", 1317, id="ge2e-layers+prosody-speaker"),
    pytest.param("ge2e-layers+prosody", "corpus", 1317, id="ge2e-layers+prosody-corpus"),
    pytest.param("ge2e", "none", 256, id="ge2e"),
]


@pytest.mark.parametrize(("encoder", "normalization", "dim"), BUNDLED)
def test_bundled_models(encoder, normalization, dim):
    path = bundled_model_path(encoder, normalization)
    assert path.is_file()

    model = load_model(path)

    assert model.name == path.stem
    assert model.metadata.encoder == encoder and model.metadata.encoder_dim == dim
    assert model.metadata.normalization == normalization
    assert model.metadata.emotions == ["anger", "disgust", "fear", "happy", "neutral", "sad"]
    assert model.metadata.genders == ["female", "male"]
    assert model.metadata.age_std > 0 and 15 < model.metadata.age_mean < 70
    summary = json.dumps(model.metadata.training).lower()
    for corpus in ("ravdess", "emodb", "commonvoice"):
        assert corpus in summary
    width = 2 * dim if normalization == "speaker" else dim  # speaker: raw and normalised side by side
    inputs = model.network.feature_mean.numpy() + embeddings(3, width) * model.network.feature_std.numpy()
    predictions = model.predict(inputs)
    np.testing.assert_allclose(predictions.emotion_probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(predictions.age_years).all() and (np.abs(predictions.age_years - 40) < 40).all()


def test_no_bundled_model_for_mfcc():
    assert not bundled_model_path("mfcc").exists()


# --- Predictor: encoder and model must match ---------------------------------------------------------


def load_predictor(options: PredictOptions):
    predictor = Predictor.from_options(options)
    return predictor.encoder, predictor.model


def test_load_predictor_defaults_to_the_bundled_default_model():
    encoder, model = load_predictor(PredictOptions(device="cpu"))
    assert encoder.name == "ge2e-layers+prosody" and encoder.dim == 1317
    assert model.name == "persona-ge2e-layers+prosody"


def test_model_for_another_encoder_is_refused(tmp_path):
    path = random_model("ge2e", 256).save(tmp_path / "ge2e-model.safetensors")
    with pytest.raises(ModelLoadingError) as info:
        load_predictor(PredictOptions(model=str(path), encoder="mfcc", device="cpu"))
    message = str(info.value)
    assert "'ge2e'" in message and "'mfcc'" in message and "ge2e-model.safetensors" in message


def test_encoder_without_bundled_model_is_a_usage_error():
    with pytest.raises(UsageError, match="no bundled model for encoder 'mfcc'"):
        load_predictor(PredictOptions(encoder="mfcc", device="cpu"))


def test_unknown_encoder_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown encoder"):
        load_predictor(PredictOptions(encoder="wav2vec", device="cpu"))


def test_checkpoint_dimension_must_match_the_encoder(tmp_path):
    path = random_model("mfcc", 99).save(tmp_path / "odd.safetensors")
    with pytest.raises(ModelLoadingError, match=r"expects 99-d mfcc embeddings, but this encoder gives 160-d"):
        load_predictor(PredictOptions(model=str(path), device="cpu"))


def test_model_trained_on_mfcc_loads_with_its_encoder(tmp_path):
    path = random_model("mfcc", 160, head="fcn").save(tmp_path / "mfcc-model.safetensors")
    encoder, model = load_predictor(PredictOptions(model=str(path), device="cpu"))
    assert encoder.name == "mfcc" and model.name == "mfcc-model" and model.metadata.head == "fcn"


def test_a_model_trained_on_another_revision_of_its_features_is_used_with_a_warning(tmp_path, caplog):
    stale = random_model("mfcc", 160)
    stale.metadata.encoder_revision = "1"  # mfcc is at revision 2: 80-d then, so it can only be a test
    path = stale.save(tmp_path / "stale.safetensors")
    with caplog.at_level("WARNING", logger="persona"):
        encoder, _ = load_predictor(PredictOptions(model=str(path), device="cpu"))
    assert "stale.safetensors was trained on revision 1 of the mfcc features" in caplog.text
    assert f"computes revision {encoder.revision}" in caplog.text


@pytest.mark.parametrize("revision", ["", "2"], ids=["not-recorded", "current"])  # older models record none
def test_a_model_of_this_revision_or_of_an_unknown_one_loads_quietly(tmp_path, caplog, revision):
    model = random_model("mfcc", 160)
    model.metadata.encoder_revision = revision
    path = model.save(tmp_path / "m.safetensors")
    with caplog.at_level("WARNING", logger="persona"):
        load_predictor(PredictOptions(model=str(path), device="cpu"))
    assert "revision" not in caplog.text


@pytest.mark.parametrize(("encoder", "normalization", "dim"), BUNDLED)
def test_bundled_models_record_the_encoder_revision_they_were_trained_on(encoder, normalization, dim):
    model = load_model(bundled_model_path(encoder, normalization))
    assert model.metadata.encoder_revision == load_encoder(encoder).revision


def test_a_saved_model_gets_the_usual_file_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = random_model("ge2e", 256).save(tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(("encoder", "normalization", "dim"), BUNDLED)
def test_bundled_models_saw_every_label_and_keep_their_file_name(encoder, normalization, dim):
    """The bundled models are trained on every task (their label counts say so), so no head is
    blanked and they keep predicting all three; their name is their file's."""
    model = load_model(bundled_model_path(encoder, normalization))
    assert model.metadata.trained_heads in (None, ["emotion", "gender", "age"]) and model.untrained_heads == []
    assert all(model.metadata.training["labelled"][task] > 1000 for task in ("emotion", "gender", "age"))
    assert model.name == bundled_model_path(encoder, normalization).stem


def test_a_model_name_in_the_metadata_wins_over_the_file_name(tmp_path):
    model = random_model()
    model.metadata.name, model.metadata.trained_heads = "ravdess-only", ["emotion", "gender"]
    loaded = load_model(model.save(tmp_path / "persona-ge2e.safetensors"))
    assert loaded.name == "ravdess-only" and loaded.untrained_heads == ["age"]
