"""Speech detection (speech.py): real speech holds speech, noise, tones, hum and synthesised music hold
none, and a file without speech is an error row instead of a confident prediction."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import SAMPLE_AUDIO, require_shared, voice_like
from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.predictor import LITTLE_SPEECH_SECONDS, NO_SPEECH_SECONDS, Embedder, Predictor
from persona_cli.speech import normalize_volume, speech_seconds, voiced_windows

SECONDS = 4.0
_T = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE


def _pink(level: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frequencies = np.fft.rfftfreq(_T.size, 1 / SAMPLE_RATE)
    spectrum = rng.normal(size=frequencies.size) + 1j * rng.normal(size=frequencies.size)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    wave = np.fft.irfft(spectrum, _T.size)
    return level * wave / np.abs(wave).max()


def _melody() -> np.ndarray:
    """Synthesised notes with harmonics and a decaying envelope, one every half second."""
    wave = np.zeros(_T.size)
    note = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    for i, f0 in enumerate([220, 247, 262, 294, 330, 349, 392, 440]):
        start = i * note.size
        wave[start : start + note.size] = np.exp(-3 * note) * sum(
            0.2 / k * np.sin(2 * np.pi * f0 * k * note) for k in range(1, 6)
        )
    return wave


NON_SPEECH = {
    "silence": np.zeros(_T.size),
    "white-noise-loud": np.random.default_rng(1).uniform(-0.5, 0.5, _T.size),
    "white-noise-quiet": np.random.default_rng(2).uniform(-0.01, 0.01, _T.size),
    "pink-noise-loud": _pink(0.5),
    "pink-noise-quiet": _pink(0.001),
    "tone-440Hz": 0.3 * np.sin(2 * np.pi * 440 * _T),
    "hum-50Hz": sum(0.1 / k * np.sin(2 * np.pi * 50 * k * _T) for k in range(1, 8)),
    "synth-melody": _melody(),
}


@pytest.mark.parametrize("name", list(NON_SPEECH))
def test_non_speech_holds_no_speech(name):
    assert speech_seconds(NON_SPEECH[name].astype(np.float32)) < NO_SPEECH_SECONDS


def test_webrtcvad_alone_calls_noise_and_tones_speech():
    """Why speech.py checks what the detector flags: without the check, these would pass."""
    for name in ("white-noise-loud", "tone-440Hz", "synth-melody"):
        voiced = voiced_windows(normalize_volume(NON_SPEECH[name].astype(np.float32)))
        assert voiced.mean() > 0.9, name


def test_real_speech_holds_speech():
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    clips += sorted(require_shared("baved", "6").glob("*.opus"))[:10]  # single short words
    for clip in clips:
        assert speech_seconds(load_audio(clip)) >= LITTLE_SPEECH_SECONDS / 2, clip.name


def test_ge2e_measures_speech_with_its_own_mask_and_the_same_vectors():
    from persona_cli.encoders import load_encoder

    encoder = load_encoder("ge2e-layers+prosody")
    waves = [load_audio(sorted(SAMPLE_AUDIO.glob("*.mp3"))[0]), voice_like(2.0), NON_SPEECH["white-noise-loud"]]
    waves = [w.astype(np.float32) for w in waves]
    vectors, speech = encoder.embed_with_speech(waves)
    np.testing.assert_array_equal(vectors, encoder.embed(waves))
    assert speech == [speech_seconds(w) for w in waves]
    assert speech[0] > 2 and speech[1] > 1.5 and speech[2] == 0


@pytest.fixture(scope="module")
def predictor(tiny_model) -> Predictor:
    return Predictor(tiny_model, workers=0)


def test_no_speech_is_an_error_without_predictions(predictor, tmp_path):
    sf.write(tmp_path / "noise.wav", NON_SPEECH["white-noise-loud"], SAMPLE_RATE)
    sf.write(tmp_path / "voice.wav", voice_like(2.0), SAMPLE_RATE)
    noise, voice = predictor.predict_files([tmp_path / "noise.wav", tmp_path / "voice.wav"])
    assert noise.error == "no speech detected" and noise.warning is None
    assert noise.emotion is None and noise.gender is None and noise.age is None and noise.prob_sad is None
    assert noise.duration_s == pytest.approx(SECONDS)
    assert voice.error is None and voice.warning is None and voice.emotion is not None


def test_waveforms_are_checked_too(predictor):
    assert predictor.predict_waveform(NON_SPEECH["tone-440Hz"], SAMPLE_RATE).error == "no speech detected"
    few_words = np.concatenate([np.zeros(SAMPLE_RATE), voice_like(0.3, seed=3), np.zeros(SAMPLE_RATE)])
    prediction = predictor.predict_waveform(few_words, SAMPLE_RATE)
    assert prediction.error is None and prediction.warning == "little speech: 0.39 s"
    assert prediction.emotion is not None


def test_embed_gives_no_vector_for_no_speech(tmp_path):
    sf.write(tmp_path / "hum.wav", NON_SPEECH["hum-50Hz"], SAMPLE_RATE)
    (embedding,) = Embedder("mfcc", workers=0).embed_files([tmp_path / "hum.wav"])
    assert embedding.error == "no speech detected" and embedding.vector is None
