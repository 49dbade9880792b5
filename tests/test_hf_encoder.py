"""`hf:ID_OR_DIR[@LAYER]` encoders, loaded through transformers' real `from_pretrained` path from tiny
random-weight model folders built here in the Hub's file format (no downloads)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import run_cli, voice_like
from persona_cli.audio import SAMPLE_RATE, SignalStats, iter_chunks
from persona_cli.embedding import embed_files
from persona_cli.embedding_cache import EmbeddingCache
from persona_cli.encoders import encoder_slug, is_encoder_name, load_encoder, parse_hf_name, split_encoder_name
from persona_cli.errors import ModelLoadingError, UsageError
from persona_cli.options import PredictOptions

if importlib.util.find_spec("transformers") is None:
    pytest.skip("the hf extra (transformers) is not installed", allow_module_level=True)

from persona_cli.encoders import huggingface as hf_encoders  # noqa: E402

# huggingface.py silences this torch warning about WavLM's padded batches with a process-wide filter,
# which pytest's per-test warning capture replaces
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")

#: a small convolutional stack with the real models' 320-sample (20 ms) frame step
_TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16, 16, 16),
    conv_stride=(5, 4, 4, 4),
    conv_kernel=(10, 4, 4, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)
#: kind -> (config class, convolution norm, pre-norm transformer, extractor returns a mask, normalises),
#: in the settings of the real models of these names: padded batches for the first and last; equal
#: lengths only for the others (wavlm-base-plus's extractor asks for a mask, but its first convolution
#: is group-normalised over time, padding included)
KINDS = {
    "wav2vec2-large": ("Wav2Vec2Config", "layer", True, True, True),
    "hubert-base": ("HubertConfig", "group", False, False, False),
    "wavlm-base-plus": ("WavLMConfig", "group", False, True, False),
    "wavlm-large": ("WavLMConfig", "layer", True, True, True),
}
PADDED = ("wav2vec2-large", "wavlm-large")


def build_hf_folder(folder: Path, kind: str, seed: int = 0) -> Path:
    """config.json + model.safetensors + preprocessor_config.json with random weights."""
    transformers = hf_encoders._import_transformers()  # with torchaudio importable, as persona does it

    config_class, norm, stable, mask, normalize = KINDS[kind]
    extra = {"num_buckets": 16, "max_bucket_distance": 64} if config_class == "WavLMConfig" else {}
    config = getattr(transformers, config_class)(**_TINY, feat_extract_norm=norm, do_stable_layer_norm=stable, **extra)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.AutoModel.from_config(config)
    transformers.utils.logging.disable_progress_bar()
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=normalize, return_attention_mask=mask
    ).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hf_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-models")
    return {kind: build_hf_folder(root / kind, kind) for kind in KINDS}


@pytest.fixture(scope="session")
def encoders(hf_folders) -> dict[str, hf_encoders.HFEncoder]:
    return {kind: load_encoder(f"hf:{folder}") for kind, folder in hf_folders.items()}  # type: ignore[misc]


def _waves() -> list[np.ndarray]:
    """Mixed lengths, including two of equal length and a tail chunk shorter than one 0.1 s."""
    durations = [2.3, 0.6, 1.7, 2.3, 3.1, 0.05, 1.0]
    return [voice_like(d, f0=110 + 15 * i, seed=i) for i, d in enumerate(durations)]


def _reference_stats(folder: Path, layer: int, waves: list[np.ndarray]) -> np.ndarray:
    """Mean and std of hidden state `layer` over all the waves' frames, from the full, untouched model
    run on each wave alone: what the encoder and its pooling must reproduce."""
    transformers = hf_encoders._import_transformers()

    model = transformers.AutoModel.from_pretrained(folder).eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    frames = []
    with torch.inference_mode():
        for wave in waves:
            values = extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_values"]
            frames.append(model(values, output_hidden_states=True).hidden_states[layer][0].double())
    every = torch.cat(frames)
    return torch.cat([every.mean(0), every.std(0, unbiased=False)]).numpy()


# ---------------------------------------------------------------------------------------------
# Names


def test_hf_names_parse_fuse_and_make_safe_file_names():
    assert parse_hf_name("hf:microsoft/wavlm-base-plus@6") == ("microsoft/wavlm-base-plus", 6)
    assert parse_hf_name("hf:/models/w2v@-1") == ("/models/w2v", -1)
    assert parse_hf_name("hf:/models/w2v") == ("/models/w2v", None)
    assert parse_hf_name("hf:") is None and parse_hf_name("hf:@3") is None and parse_hf_name("ge2e") is None
    assert is_encoder_name("hf:x") and is_encoder_name("ge2e+hf:a/b@3+prosody")
    assert not is_encoder_name("hf:") and not is_encoder_name("nonsense+hf:x") and not is_encoder_name("hf")
    # a "+" inside a folder path stays in it unless a registered name or another hf: part follows
    assert split_encoder_name("ge2e+hf:/m/a+b/c@2+mfcc") == ["ge2e", "hf:/m/a+b/c@2", "mfcc"]
    assert split_encoder_name("hf:a/b+hf:c/d") == ["hf:a/b", "hf:c/d"]
    assert encoder_slug("ge2e-layers+prosody+mfcc") == "ge2e-layers+prosody+mfcc"
    assert encoder_slug("hf:microsoft/wavlm-base-plus") == "hf-microsoft--wavlm-base-plus"
    assert encoder_slug("ge2e+hf:/data/my models/wavlm@-1") == "ge2e+hf-wavlm-L-1"


# ---------------------------------------------------------------------------------------------
# Vectors


@pytest.mark.parametrize("kind", list(KINDS))
def test_embeds_finite_mean_and_std_vectors(encoders, kind):
    encoder = encoders[kind]
    assert (encoder.dim, encoder.layer) == (64, 1)  # 2 x hidden_size; the middle of 3 hidden states
    assert encoder.pad_batches == (kind in PADDED)
    vectors = encoder.embed([voice_like(1.2), voice_like(2.0, seed=1)])
    assert vectors.shape == (2, 64) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all() and (vectors[:, 32:] >= 0).all()
    assert encoder.embed([]).shape == (0, 64)


@pytest.mark.parametrize("kind", list(KINDS))
def test_batched_equals_one_at_a_time(encoders, kind):
    encoder, waves = encoders[kind], _waves()
    batched = encoder.embed(waves)
    alone = np.stack([encoder.embed([w])[0] for w in waves])
    np.testing.assert_allclose(batched, alone, atol=1e-4)


def test_layer_choice_and_dropped_layers_match_the_full_model(hf_folders):
    folder, wave = hf_folders["wav2vec2-large"], voice_like(1.5, seed=3)
    vectors = {}
    for layer in (0, 1, 2, -1):
        encoder = load_encoder(f"hf:{folder}@{layer}")
        vectors[layer] = encoder.embed([wave])[0]
        # the encoder runs only the layers it needs, and still gives the full model's hidden state
        np.testing.assert_allclose(vectors[layer], _reference_stats(folder, layer, [wave]), atol=1e-4)
    assert not np.allclose(vectors[0], vectors[1]) and not np.allclose(vectors[1], vectors[2])
    np.testing.assert_array_equal(vectors[-1], vectors[2])
    with pytest.raises(UsageError, match="no layer 3; this model has hidden states 0 to 2"):
        load_encoder(f"hf:{folder}@3")


@pytest.mark.parametrize("kind", ["wav2vec2-large", "hubert-base"])
def test_long_file_pools_to_the_statistics_over_all_its_chunks_frames(encoders, hf_folders, tmp_path, kind):
    path = tmp_path / "long.wav"
    sf.write(path, voice_like(6.3, seed=5), SAMPLE_RATE, subtype="FLOAT")
    options = PredictOptions(chunk_seconds=2.0, workers=0, batch_size=4)
    (result,) = embed_files([path], encoders[kind], options)
    assert result.error is None and result.duration_s == pytest.approx(6.3)
    chunks = list(iter_chunks(path, 2.0, SignalStats()))
    assert [len(c) for c in chunks] == [32_000] * 3 + [4_800]
    np.testing.assert_allclose(result.vector, _reference_stats(hf_folders[kind], 1, chunks), atol=1e-4)


def test_pooling_chunks_as_they_come_weighs_them_by_frames_as_pool_does(encoders):
    encoder = encoders["hubert-base"]
    rng = np.random.default_rng(4)
    chunks = np.abs(rng.normal(size=(5, encoder.dim))).astype(np.float32)
    seconds = np.array([0.07, 0.5, 1.3, 2.0, 0.33])  # the frame counts are not proportional to these
    pooling = encoder.pooling()
    for chunk, length in zip(chunks, seconds):
        pooling.add(chunk[None], np.array([length]))
    np.testing.assert_allclose(pooling.result(), encoder.pool(chunks, seconds), rtol=1e-6, atol=1e-7)


def test_fused_with_a_built_in_encoder(hf_folders):
    encoder = load_encoder(f"mfcc+hf:{hf_folders['hubert-base']}@2")
    assert encoder.dim == 160 + 64 and encoder.name == f"mfcc+hf:{hf_folders['hubert-base']}@2"
    assert encoder.embed([voice_like(1.0)]).shape == (1, 224)
    assert set(encoder.cache_identity()) == {"1:weights", "1:layer"}


def test_cache_identity_names_weights_and_layer(hf_folders, tmp_path):
    options = PredictOptions()
    folder = Path(str(hf_folders["hubert-base"]))
    ids = {
        layer: EmbeddingCache(load_encoder(f"hf:{folder}@{layer}"), root=tmp_path).encoder_id(options)
        for layer in (1, 2)
    }
    assert ids[1] != ids[2] and all(i.startswith("hf-hubert-base-L") and "/" not in i for i in ids.values())
    config = folder / "config.json"
    config.write_text(config.read_text())  # rewritten: the folder's fingerprint changes
    assert EmbeddingCache(load_encoder(f"hf:{folder}@1"), root=tmp_path).encoder_id(options) != ids[1]


# ---------------------------------------------------------------------------------------------
# Loading failures: one line each, never a traceback or a wait


def test_missing_hub_id_offline_is_exit_code_2_and_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip = tmp_path / "clip.wav"
    sf.write(clip, voice_like(1.0), SAMPLE_RATE)
    start = time.monotonic()
    code, _, err = run_cli(
        ["embed", str(clip), "--encoder", "hf:nobody/no-such-model", "-o", str(tmp_path / "out.csv")], capsys
    )
    assert time.monotonic() - start < 10
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for needle in ("'nobody/no-such-model'", "not in the Hugging Face cache", "HF_HUB_OFFLINE", "hf download"):
        assert needle in err, err


def test_unreachable_hub_fails_fast_without_retrying(monkeypatch):
    monkeypatch.setattr(hf_encoders, "hub_offline", lambda: False)
    monkeypatch.setattr(hf_encoders, "hub_reachable", lambda: False)  # never touch the network in tests
    with pytest.raises(ModelLoadingError, match="the Hugging Face Hub is unreachable"):
        load_encoder("hf:nobody/no-such-model@3")


def test_missing_folder_and_unfit_checkpoint_are_model_loading_errors(hf_folders, tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(ModelLoadingError, match="no such folder"):
        load_encoder(f"hf:{tmp_path / 'nowhere'}")
    partial = tmp_path / "partial"
    partial.mkdir()
    for file in hf_folders["hubert-base"].iterdir():
        (partial / file.name).write_bytes(file.read_bytes())
    weights = load_file(partial / "model.safetensors")
    del weights["encoder.layers.0.attention.k_proj.weight"]
    save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadingError) as caught:
        load_encoder(f"hf:{partial}")
    message = str(caught.value)
    assert "\n" not in message and "lacks 1 of the model's parameters" in message
    assert "encoder.layers.0.attention.k_proj.weight" in message


def test_missing_transformers_is_a_usage_error_naming_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real_find_spec(name, *a)
    )
    hf_encoders._import_transformers.cache_clear()
    try:
        with pytest.raises(UsageError, match=r"pip install 'persona-cli\[hf\]'"):
            load_encoder("hf:microsoft/wavlm-base-plus")
    finally:
        hf_encoders._import_transformers.cache_clear()


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_embed_writes_hf_vectors(hf_folders, tmp_path, capsys):
    clip = tmp_path / "clip.wav"
    sf.write(clip, voice_like(1.5), SAMPLE_RATE)
    out = tmp_path / "out.csv"
    name = f"hf:{hf_folders['wavlm-base-plus']}"
    code, _, err = run_cli(["embed", str(clip), "--encoder", name, "-o", str(out), "--quiet"], capsys)
    assert code == 0, err
    row = pd.read_csv(out).iloc[0]
    assert row["encoder"] == name and pd.isna(row["error"])
    assert len(json.loads(row["vector"])) == 64


def test_cli_train_then_predict_with_an_hf_encoder(hf_folders, tmp_path, capsys):
    rows = []
    for i in range(16):
        gender = ("male", "female")[i % 2]
        path = tmp_path / f"clip{i:02d}.wav"
        sf.write(path, voice_like(1.0, f0=(110 if gender == "male" else 220) + i, seed=i), SAMPLE_RATE)
        rows.append({"path": path.name, "speaker": f"s{i % 8}", "emotion": ("anger", "sad")[i % 3 == 0],
                     "gender": gender, "age": 20 + i})  # fmt: skip
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    name, out = f"hf:{hf_folders['wav2vec2-large']}@2", tmp_path / "run"
    code, _, err = run_cli(
        ["train", f"manifest:{manifest}", "--encoder", name, "--folds", "0", "--epochs", "2", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    (model_file,) = out.glob("*.safetensors")
    assert model_file.name == "persona-hf-wav2vec2-large-L2.safetensors"
    # the model records the encoder's name, so predict rebuilds the same encoder from it
    code, stdout, err = run_cli(["predict", str(tmp_path / "clip00.wav"), "--model", str(model_file)], capsys)
    assert code == 0, err
    assert f",{name},run," in stdout  # the model column: the model's name, from its --out folder
