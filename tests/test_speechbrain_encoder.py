"""SpeechBrain x-vector / ECAPA encoders, loaded through the real `EncoderClassifier.from_hparams`
path from small random-weight model folders built here in the Hub repos' file format (no downloads).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import voice_like
from persona_cli.encoders import load_encoder
from persona_cli.errors import ModelLoadingError

if importlib.util.find_spec("speechbrain") is None:
    pytest.skip("the speechbrain extra is not installed", allow_module_level=True)

from persona_cli.encoders import speechbrain as sb_encoders  # noqa: E402
from speechbrain_folders import build_model_folder  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These tiny models gain nothing from threads, and on a busy 2-core machine OpenMP threads
    waiting for each other made this file ~6x slower (30 s instead of 5 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("speechbrain-models")
    return {kind: build_model_folder(root / kind, kind) for kind in ("xvector", "ecapa")}


def _waves() -> list[np.ndarray]:
    """Mixed lengths, including two of equal length (batched together) and a short tail chunk."""
    durations = [2.3, 0.6, 1.7, 2.3, 3.1, 0.05, 1.0]
    return [voice_like(d, f0=110 + 15 * i, seed=i) for i, d in enumerate(durations)]


def _one_at_a_time(encoder, waves) -> np.ndarray:
    return np.stack([encoder.embed([w])[0] for w in waves])


# ---------------------------------------------------------------------------------------------
# Loading


@pytest.mark.parametrize("kind, dim", [("xvector", 512), ("ecapa", 192)])
def test_loads_local_folder_through_from_hparams(model_folders, kind, dim):
    from speechbrain.inference.classifiers import EncoderClassifier

    encoder = load_encoder(kind, source=str(model_folders[kind]))
    assert isinstance(encoder, sb_encoders.SpeechBrainEncoder)
    assert isinstance(encoder.classifier, EncoderClassifier)
    assert (encoder.name, encoder.dim) == (kind, dim)
    vectors = encoder.embed([voice_like(1.2), voice_like(2.0, seed=1)])
    assert vectors.shape == (2, dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert encoder.embed([]).shape == (0, dim)


def test_loading_writes_nothing_into_the_working_directory(model_folders, tmp_path, monkeypatch):
    workdir = tmp_path / "cwd"
    shutil.copytree(model_folders["xvector"], workdir / "xvec")  # a relative source, inside cwd
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    monkeypatch.chdir(workdir)
    encoder = load_encoder("xvector", source="xvec")
    encoder.embed([voice_like(1.0)])
    assert sorted(p.relative_to(workdir) for p in workdir.rglob("*")) == before
    # SpeechBrain's savedir went to persona's cache instead
    cache = Path(os.environ["PERSONA_CACHE_DIR"], "speechbrain")
    assert any((d / "embedding_model.ckpt").exists() for d in cache.iterdir())


def test_downloaded_hub_model_loads_offline_from_the_cache(model_folders, monkeypatch):
    """A Hub id whose files are already in the savedir needs no network (default source included)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    savedir = Path(os.environ["PERSONA_CACHE_DIR"], "speechbrain", "speechbrain--spkrec-xvect-voxceleb")
    shutil.copytree(model_folders["xvector"], savedir, dirs_exist_ok=True)
    # SpeechBrain's Pretrainer stores every loadable under `<name>.ckpt` in the savedir
    (savedir / "label_encoder.txt").rename(savedir / "label_encoder.ckpt")
    encoder = load_encoder("xvector")
    assert encoder.dim == 512


def _assert_one_clear_line(error: ModelLoadingError, *needles: str) -> None:
    message = str(error)
    assert "\n" not in message
    for needle in ("hf download", "--encoder-source", *needles):
        assert needle in message, message


def test_unknown_hub_id_offline_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelLoadingError) as caught:
        load_encoder("xvector", source="speechbrain/does-not-exist")
    assert time.monotonic() - start < 5
    _assert_one_clear_line(caught.value, "xvector", "speechbrain/does-not-exist", "HF_HUB_OFFLINE")


def test_unreachable_hub_fails_fast_without_retrying(monkeypatch):
    monkeypatch.setattr(sb_encoders, "_hub_offline", lambda: False)
    monkeypatch.setattr(sb_encoders, "_hub_reachable", lambda: False)  # never touch the network in tests
    start = time.monotonic()
    with pytest.raises(ModelLoadingError) as caught:
        load_encoder("ecapa")
    assert time.monotonic() - start < 5
    _assert_one_clear_line(caught.value, "ecapa", "speechbrain/spkrec-ecapa-voxceleb", "unreachable")


def test_empty_folder_is_a_model_loading_error(tmp_path):
    with pytest.raises(ModelLoadingError) as caught:
        load_encoder("ecapa", source=str(tmp_path))
    _assert_one_clear_line(caught.value, "ecapa", str(tmp_path), "hyperparams.yaml", "spkrec-ecapa-voxceleb")


def test_missing_folder_is_a_model_loading_error(tmp_path):
    with pytest.raises(ModelLoadingError) as caught:
        load_encoder("xvector", source=str(tmp_path / "nowhere"))
    _assert_one_clear_line(caught.value, "no such folder")


def test_missing_checkpoint_is_a_model_loading_error(model_folders, tmp_path):
    folder = shutil.copytree(model_folders["xvector"], tmp_path / "partial")
    (folder / "embedding_model.ckpt").unlink()
    with pytest.raises(ModelLoadingError) as caught:
        load_encoder("xvector", source=str(folder))
    _assert_one_clear_line(caught.value, "embedding_model.ckpt")


def test_checkpoint_of_another_model_is_a_model_loading_error(model_folders, tmp_path, caplog):
    """SpeechBrain would only warn (printing the module once per missing key) and keep random weights."""
    folder = shutil.copytree(model_folders["xvector"], tmp_path / "mixed")
    shutil.copy(model_folders["ecapa"] / "embedding_model.ckpt", folder / "embedding_model.ckpt")
    with caplog.at_level(logging.WARNING), pytest.raises(ModelLoadingError) as caught:
        load_encoder("xvector", source=str(folder))
    _assert_one_clear_line(caught.value, "embedding_model.ckpt does not fit", "blocks.0.conv.weight")
    assert not [r for r in caplog.records if "During parameter transfer" in r.getMessage()]


def test_broken_yaml_is_a_model_loading_error(model_folders, tmp_path):
    folder = shutil.copytree(model_folders["ecapa"], tmp_path / "broken")
    (folder / "hyperparams.yaml").write_text("embedding_model: !new:speechbrain.no.such.Module\n  x: [1\n")
    with pytest.raises(ModelLoadingError) as caught:
        load_encoder("ecapa", source=str(folder))
    _assert_one_clear_line(caught.value, "ecapa")


def test_speechbrain_info_logging_is_silenced(model_folders, caplog):
    with caplog.at_level(logging.INFO):
        load_encoder("xvector", source=str(model_folders["xvector"]))
    assert not [r for r in caplog.records if r.name.startswith("speechbrain") and r.levelno < logging.WARNING]


# ---------------------------------------------------------------------------------------------
# Embedding


@pytest.mark.parametrize("kind", ["xvector", "ecapa"])
def test_batched_equals_one_at_a_time(model_folders, kind):
    encoder = load_encoder(kind, source=str(model_folders[kind]))
    waves = _waves()
    batched = encoder.embed(waves)
    assert batched.shape == (len(waves), encoder.dim) and batched.dtype == np.float32
    assert np.isfinite(batched).all()
    np.testing.assert_allclose(batched, _one_at_a_time(encoder, waves), rtol=0, atol=1e-4)
    # order is restored whatever the batch composition, and sub-batches of a group agree too
    encoder.max_batch = 1
    np.testing.assert_allclose(encoder.embed(waves[::-1]), batched[::-1], rtol=0, atol=1e-4)


def test_embeddings_are_deterministic(model_folders):
    """SpeechBrain's StatisticsPooling adds random noise to the mean; we pin it to its expectation."""
    encoder = load_encoder("xvector", source=str(model_folders["xvector"]))
    wave = voice_like(1.5)
    np.testing.assert_array_equal(encoder.embed([wave]), encoder.embed([wave]))


def test_distinct_waves_give_distinct_embeddings(model_folders):
    encoder = load_encoder("ecapa", source=str(model_folders["ecapa"]))
    low, high = encoder.embed([voice_like(1.5, f0=90), voice_like(1.5, f0=220, seed=1)])
    assert np.abs(low - high).max() > 1e-3


def test_rejects_empty_and_multichannel_waves(model_folders):
    encoder = load_encoder("xvector", source=str(model_folders["xvector"]))
    with pytest.raises(ValueError, match="no samples"):
        encoder.embed([np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match="mono"):
        encoder.embed([np.zeros((2, 16_000), np.float32)])


@pytest.mark.parametrize("kind", ["xvector", "ecapa"])
def test_batched_equals_one_at_a_time_on_real_speech(model_folders, ravdess_clips, kind):
    from persona_cli.audio import load_audio

    encoder = load_encoder(kind, source=str(model_folders[kind]))
    waves = [load_audio(path) for path in ravdess_clips[:3]]
    waves.append(waves[0][: len(waves[1])])  # same length as another clip: batched with it
    np.testing.assert_allclose(encoder.embed(waves), _one_at_a_time(encoder, waves), rtol=0, atol=1e-4)
