"""Per-group feature normalisation, cross-corpus evaluation, and the prosodic / fused encoders."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_shared, voice_like
from persona_cli.audio import load_audio
from persona_cli.encoders import load_encoder
from persona_cli.encoders.prosody import FEATURE_NAMES, SEMITONE_REFERENCE_HZ, median_pitch_hz
from persona_cli.errors import UsageError
from persona_cli.normalization import MIN_GROUP_FILES, normalize_within_groups


def test_each_group_gets_zero_mean_and_unit_std():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(5, 2, (20, 3)), rng.normal(-1, 0.5, (12, 3))])
    groups = ["a"] * 20 + ["b"] * 12
    out = normalize_within_groups(features, groups)
    for _name, rows in (("a", slice(0, 20)), ("b", slice(20, 32))):
        np.testing.assert_allclose(out[rows].mean(0), 0, atol=1e-6)
        np.testing.assert_allclose(out[rows].std(0), 1, atol=1e-5)
    # a row's value depends only on its own group: changing group b leaves group a alone
    changed = features.copy()
    changed[20:] *= 10
    np.testing.assert_array_equal(normalize_within_groups(changed, groups)[:20], out[:20])


def test_a_constant_feature_is_centred_not_blown_up():
    features = np.column_stack([np.full(10, 3.0), np.arange(10.0)])
    out = normalize_within_groups(features, ["x"] * 10)
    np.testing.assert_array_equal(out[:, 0], 0)


def test_groups_too_small_for_statistics_are_refused():
    features = np.zeros((MIN_GROUP_FILES + 2, 2))
    groups = ["big"] * MIN_GROUP_FILES + ["tiny"] * 2
    with pytest.raises(
        UsageError, match=r"speaker normalisation needs at least \d+ files per speaker; 1 have fewer: tiny \(2\)"
    ):
        normalize_within_groups(features, groups, what="speaker")


def test_small_groups_can_fall_back_to_a_larger_one():
    rng = np.random.default_rng(1)
    features = rng.normal(0, 1, (30, 2))
    speakers = ["s1"] * 20 + ["s2", "s2", "s3"] + [f"s{i}" for i in range(4, 11)]
    corpora = ["big"] * 20 + ["cv"] * 10
    out = normalize_within_groups(features, speakers, what="speaker", fallback=corpora)
    np.testing.assert_allclose(out[:20].mean(0), 0, atol=1e-6)  # s1 is large enough for its own statistics
    np.testing.assert_allclose(out[20:], normalize_within_groups(features[20:], ["cv"] * 10), atol=1e-6)


# --- prosody --------------------------------------------------------------------------------------


@pytest.mark.parametrize("f0", [110.0, 220.0], ids=["110Hz", "220Hz"])
def test_prosody_finds_the_pitch_of_a_voiced_tone(f0):
    encoder = load_encoder("prosody")
    (vector,) = encoder.embed([voice_like(2.0, f0=f0)])
    values = dict(zip(FEATURE_NAMES, vector))
    expected = 12 * np.log2(f0 / SEMITONE_REFERENCE_HZ)  # voice_like wobbles ±5 % (under a semitone)
    assert abs(values["pitch_p50"] - expected) < 1.0
    assert values["voiced_fraction"] > 0.8


@pytest.mark.parametrize("f0", [80.0, 90.0, 100.0], ids=["80Hz", "90Hz", "100Hz"])
def test_a_low_voice_with_a_strong_second_harmonic_keeps_its_octave(f0):
    # the second harmonic carries most of the energy, as when a formant sits on it; an
    # autocorrelation left tapered by the analysis window used to read this an octave too high
    t = np.arange(32_000) / 16_000
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))) / 16_000
    wave = 0.3 * np.sin(phase) + np.sin(2 * phase) + 0.2 * np.sin(3 * phase)
    (hz,) = median_pitch_hz(load_encoder("prosody").embed([(0.3 * wave / np.abs(wave).max()).astype(np.float32)]))
    assert hz == pytest.approx(f0, rel=0.05)


def test_real_male_voices_are_not_read_an_octave_up():
    root = require_shared("ravdess")
    # neutral and calm clips of RAVDESS's male actors (odd numbers); median F0 81-167 Hz, where
    # the uncorrected tracker put two of them at 308 and 500 Hz
    files = sorted(f for actor in range(1, 21, 2) for f in (root / f"Actor_{actor:02d}").glob("03-01-0[12]-*.flac"))
    assert len(files) == 120
    hz = median_pitch_hz(load_encoder("prosody").embed([load_audio(f) for f in files]))
    assert hz.max() < 200


def test_prosody_tells_loud_from_quiet_and_noise_from_voice():
    encoder = load_encoder("prosody")
    voice = voice_like(2.0)
    noise = np.random.default_rng(0).standard_normal(32_000).astype(np.float32) * 0.1
    loud, quiet, hiss = (dict(zip(FEATURE_NAMES, v)) for v in encoder.embed([voice, voice * 0.1, noise]))
    assert loud["loudness_mean"] - quiet["loudness_mean"] == pytest.approx(20, abs=0.5)
    assert hiss["voiced_fraction"] < 0.1 < loud["voiced_fraction"]
    assert hiss["flatness_unvoiced_mean"] > 0.3


def test_fused_encoder_is_its_parts_side_by_side():
    fused, ge2e, prosody = (load_encoder(name) for name in ("ge2e+prosody", "ge2e", "prosody"))
    waves = [voice_like(1.5, f0=120, seed=1), voice_like(3.0, f0=200, seed=2)]
    assert fused.name == "ge2e+prosody" and fused.dim == ge2e.dim + prosody.dim
    np.testing.assert_allclose(fused.embed(waves), np.hstack([ge2e.embed(waves), prosody.embed(waves)]), atol=1e-6)
    chunks, seconds = fused.embed(waves), np.array([1.5, 3.0])
    pooled = fused.pool(chunks, seconds)
    np.testing.assert_allclose(pooled[: ge2e.dim], ge2e.pool(chunks[:, : ge2e.dim], seconds), atol=1e-6)
    assert np.linalg.norm(pooled[: ge2e.dim]) == pytest.approx(1, abs=1e-5)  # GE2E's part stays unit length


def test_a_feature_constant_in_training_cannot_blow_up_a_prediction():
    """GE2E has ReLU dimensions that are 0 on every training clip; a new clip where one is not 0 must
    get the prediction it would get with a 0 there, not a huge standardised input."""
    from persona_cli.training import Targets, TrainConfig, fit

    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (60, 4)).astype(np.float32)
    features[:, 2] = 0.0
    targets = Targets(
        emotion=rng.integers(0, 6, 60), gender=rng.integers(0, 2, 60), age=rng.uniform(20, 60, 60).astype(np.float32)
    )
    model, _ = fit(features, targets, [f"s{i % 6}" for i in range(60)], "test", TrainConfig(epochs=2))
    probe = features[:5].copy()
    shifted = probe.copy()
    shifted[:, 2] = 0.3
    before, after = model.predict(probe), model.predict(shifted)
    np.testing.assert_allclose(after.emotion_probs, before.emotion_probs, atol=1e-4)
    np.testing.assert_allclose(after.age_years, before.age_years, atol=1e-2)


def test_egemaps_gives_88_functionals_when_opensmile_is_installed():
    pytest.importorskip("opensmile")
    encoder = load_encoder("ge2e+egemaps")
    vectors = encoder.embed([voice_like(2.0, f0=120), voice_like(2.0, f0=240)])
    assert vectors.shape == (2, 256 + 88) and np.isfinite(vectors).all()
    assert not np.allclose(vectors[0, 256:], vectors[1, 256:])  # the pitch functionals differ
