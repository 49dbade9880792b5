"""audio.py: finding files, decoding every format libsndfile offers, downmix, resampling, chunking, errors."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import require_shared, voice_like
from persona_cli import audio
from persona_cli.audio import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    AudioInfo,
    audio_info,
    find_audio_files,
    iter_chunks,
    load_audio,
)
from persona_cli.errors import AudioLoadError, UsageError

TONE_HZ = 1_000.0  # below every Nyquist we test (8 kHz input -> 4 kHz)
# Per channel, so the downmix (a mean) is checkable. Silent sixth channel: in 5.1 Vorbis and Opus it
# is the LFE, which the encoder low-passes, so a 1 kHz tone there would vanish by design.
AMPLITUDES = (0.6, 0.2, 0.4, 0.3, 0.5, 0.0)

# (format, subtype, suffix, lossy)
CODECS = [
    ("WAV", "PCM_U8", ".wav", False),
    ("WAV", "PCM_16", ".wav", False),
    ("WAV", "PCM_24", ".wav", False),
    ("WAV", "PCM_32", ".wav", False),
    ("WAV", "FLOAT", ".wav", False),
    ("WAV", "DOUBLE", ".wav", False),
    ("FLAC", "PCM_16", ".flac", False),
    ("FLAC", "PCM_24", ".flac", False),
    ("AIFF", "PCM_16", ".aiff", False),
    ("AU", "PCM_16", ".au", False),
    ("OGG", "VORBIS", ".ogg", True),
    ("OGG", "OPUS", ".opus", True),
    ("MP3", "MPEG_LAYER_III", ".mp3", True),
]
RATES = (8_000, 22_050, 44_100, 48_000, 192_000)
CHANNELS = (1, 2, 6)


def _supported(fmt: str, subtype: str, rate: int, channels: int) -> bool:
    """The encoders' own limits, so the matrix only holds files that can exist."""
    if subtype == "OPUS":
        return rate in (8_000, 12_000, 16_000, 24_000, 48_000)
    if fmt == "MP3":
        return rate <= 48_000 and channels <= 2
    return True


MATRIX = [
    pytest.param(fmt, sub, suffix, lossy, rate, ch, id=f"{sub.lower()}{suffix}-{rate}-{ch}ch")
    for fmt, sub, suffix, lossy in CODECS
    for rate in RATES
    for ch in CHANNELS
    if _supported(fmt, sub, rate, ch)
]


def tone(seconds: float, rate: int, channels: int, hz: float = TONE_HZ) -> np.ndarray:
    """(frames, channels) sine, channel c scaled by AMPLITUDES[c]."""
    t = np.arange(round(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * hz * t)
    return np.stack([a * wave for a in AMPLITUDES[:channels]], axis=1)


def write(path: Path, data: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "FLOAT") -> Path:
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    return path


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(x))


def middle(x: np.ndarray) -> np.ndarray:
    """Drop 0.1 s each side: codec priming and resampler edges are not what we check."""
    return x[SAMPLE_RATE // 10 : -SAMPLE_RATE // 10]


# --- every format, sample rate and channel count ----------------------------------------------


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "lossy", "rate", "channels"), MATRIX)
def test_decodes_to_16k_mono_float32(tmp_path, fmt, subtype, suffix, lossy, rate, channels):
    seconds = 1.0
    path = write(tmp_path / f"tone{suffix}", tone(seconds, rate, channels), rate, fmt, subtype)

    out = load_audio(path)

    assert out.dtype == np.float32 and out.ndim == 1
    assert np.isfinite(out).all()
    # lossless: exact to a sample; lossy: codec padding may add or drop a few ms
    tolerance = 0.005 * SAMPLE_RATE if lossy else 1
    assert abs(len(out) - seconds * SAMPLE_RATE) <= tolerance
    assert abs(peak_hz(middle(out)) - TONE_HZ) <= 2.0
    expected_rms = np.mean(AMPLITUDES[:channels]) / np.sqrt(2)
    assert np.sqrt(np.mean(middle(out) ** 2)) == pytest.approx(expected_rms, rel=0.1 if lossy else 0.02)


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "lossy", "rate", "channels"), MATRIX[::7])
def test_audio_info_reads_header(tmp_path, fmt, subtype, suffix, lossy, rate, channels):
    path = write(tmp_path / f"tone{suffix}", tone(1.5, rate, channels), rate, fmt, subtype)
    info = audio_info(path)
    assert info.sample_rate == rate and info.channels == channels and info.format == fmt
    assert info.duration_s == pytest.approx(1.5, abs=0.02)


def test_oga_suffix_is_found_and_decoded(tmp_path):
    path = write(tmp_path / "x.oga", tone(1.0, 48_000, 2), 48_000, "OGG", "VORBIS")
    assert find_audio_files([tmp_path]) == [path]
    assert abs(len(load_audio(path)) - SAMPLE_RATE) <= 80


def test_downmix_is_the_mean_of_channels(tmp_path):
    wave = voice_like(1.0, 16_000)
    path = write(tmp_path / "phase.wav", np.stack([wave, -wave, 2 * wave], axis=1), 16_000)
    np.testing.assert_allclose(load_audio(path), (wave - wave + 2 * wave) / 3, atol=1e-7)


def test_16k_input_passes_through_unchanged(tmp_path):
    wave = voice_like(2.0, 16_000)
    np.testing.assert_array_equal(load_audio(write(tmp_path / "v.wav", wave, 16_000)), wave)


def test_resampling_matches_one_shot_soxr(tmp_path):
    wave = voice_like(3.0, 44_100)
    out = load_audio(write(tmp_path / "v.wav", wave, 44_100))
    np.testing.assert_allclose(out, soxr.resample(wave, 44_100, SAMPLE_RATE), atol=1e-6)


def test_nan_and_inf_become_zero(tmp_path):
    wave = voice_like(1.0, 16_000)
    wave[[10, 500, 9000]] = [np.nan, np.inf, -np.inf]
    out = load_audio(write(tmp_path / "bad.wav", wave, 16_000))
    assert np.isfinite(out).all() and (out[[10, 500, 9000]] == 0).all()
    bad = write(tmp_path / "bad48.wav", np.repeat(wave, 3), 48_000)
    assert np.isfinite(load_audio(bad)).all()


# --- real clips --------------------------------------------------------------------------------


def test_ravdess_flac_is_read_sample_exact(ravdess_clips):
    for clip in ravdess_clips[:3]:
        raw, rate = sf.read(clip, dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE
        np.testing.assert_array_equal(load_audio(clip), raw.mean(axis=1))
        assert audio_info(clip).duration_s == pytest.approx(len(raw) / rate)


def test_ravdess_stereo_clip_is_downmixed():
    clip = require_shared("ravdess", "Actor_01", "03-01-02-01-01-02-01.flac")
    assert audio_info(clip) == AudioInfo(57_657 / 16_000, 16_000, 2, "FLAC")
    raw, _ = sf.read(clip, dtype="float32")
    np.testing.assert_allclose(load_audio(clip), raw.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize(
    ("lang", "name", "rate"),
    [("ab", "common_voice_ab_19904197.mp3", 48_000), ("ar", "common_voice_ar_24025002.mp3", 32_000)],
    ids=["ab-48kHz", "ar-32kHz"],
)
def test_common_voice_mp3(lang, name, rate):
    clip = require_shared("commonvoice", lang, "clips", name)
    info = audio_info(clip)
    assert (info.sample_rate, info.channels, info.format) == (rate, 1, "MP3")
    raw, _ = sf.read(clip, dtype="float32")
    out = load_audio(clip)
    np.testing.assert_allclose(out, soxr.resample(raw, rate, SAMPLE_RATE), atol=1e-6)
    # the MP3 header counts encoder padding too: it overstates the decoded length by a few ms
    assert 0 <= info.duration_s - len(out) / SAMPLE_RATE < 0.025


# --- chunking ----------------------------------------------------------------------------------


def test_75_seconds_in_30_second_chunks(tmp_path):
    path = write(tmp_path / "long.flac", voice_like(75.0, 44_100), 44_100, "FLAC", "PCM_16")
    chunks = list(iter_chunks(path, chunk_seconds=30))
    assert [len(c) for c in chunks] == [480_000, 480_000, 240_000]
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    (whole,) = iter_chunks(path, chunk_seconds=10_000)
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-6)
    np.testing.assert_array_equal(load_audio(path), whole)


@pytest.mark.parametrize("rate", [16_000, 48_000], ids=["16kHz", "48kHz"])
@pytest.mark.parametrize(
    "chunk_seconds", [0.05, 0.73, 1.0, 3.0], ids=["chunk0.05s", "chunk0.73s", "chunk1s", "chunk3s"]
)
def test_chunks_are_exact_size_and_add_up(tmp_path, rate, chunk_seconds):
    path = write(tmp_path / "v.wav", voice_like(2.0, rate), rate)
    chunks = list(iter_chunks(path, chunk_seconds))
    size = round(chunk_seconds * SAMPLE_RATE)
    assert all(len(c) == size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= size
    np.testing.assert_array_equal(np.concatenate(chunks), load_audio(path))


def test_exact_multiple_gives_no_empty_last_chunk(tmp_path):
    path = write(tmp_path / "two.wav", voice_like(2.0, 16_000), 16_000)
    assert [len(c) for c in iter_chunks(path, chunk_seconds=1)] == [16_000, 16_000]


@pytest.mark.parametrize("chunk_seconds", [0, -1.0, 1e-6], ids=["zero", "negative", "under-one-sample"])
def test_chunk_seconds_must_be_positive(tmp_path, chunk_seconds):
    path = write(tmp_path / "v.wav", voice_like(0.5), 16_000)
    with pytest.raises(ValueError):
        next(iter_chunks(path, chunk_seconds))


def test_long_file_is_streamed_not_held_whole(tmp_path):
    # 10 minutes at 8 kHz: 38 MB as 16 kHz float32, but chunks of 30 s are 1.9 MB each
    rate, seconds = 8_000, 600
    one_minute = (voice_like(60.0, rate) * 32_767).astype(np.int16)
    sf.write(tmp_path / "long.wav", np.tile(one_minute, seconds // 60), rate, subtype="PCM_16")
    del one_minute
    tracemalloc.start()
    try:
        total = sum(len(c) for c in iter_chunks(tmp_path / "long.wav", chunk_seconds=30))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == seconds * SAMPLE_RATE
    assert peak < 10_000_000


# --- finding files -----------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """root/ with audio at several depths, mixed-case suffixes, and non-audio files."""
    monkeypatch.chdir(tmp_path)
    root = Path("root")
    for name in ["b.wav", "A.FLAC", "sub/c.mp3", "sub/deeper/d.Opus", "sub/e.m4a", "notes.txt", "sub/x.png"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


def test_walk_is_recursive_sorted_and_filtered(tree):
    expected = ["root/A.FLAC", "root/b.wav", "root/sub/c.mp3", "root/sub/deeper/d.Opus", "root/sub/e.m4a"]
    assert [str(p) for p in find_audio_files([tree])] == expected
    assert [str(p) for p in find_audio_files(["root/"])] == expected


def test_named_file_is_kept_whatever_its_suffix(tree):
    assert find_audio_files([tree / "notes.txt"]) == [tree / "notes.txt"]


def test_duplicates_are_removed_keeping_given_style(tree):
    found = find_audio_files(["./root/b.wav", "root/b.wav", str(Path.cwd() / "root/b.wav"), "root", "./root"])
    assert [str(p) for p in found].count("root/b.wav") == 1
    assert len(found) == 5 and all(not p.is_absolute() for p in found)


def test_result_is_sorted_across_inputs(tree):
    found = find_audio_files(["root/sub", "root/b.wav", "root/notes.txt"])
    assert found == sorted(found, key=str) and Path("root/notes.txt") in found


def test_symlinked_file_is_listed_separately(tree):
    (tree / "link.wav").symlink_to("b.wav")
    found = find_audio_files([tree])
    assert tree / "link.wav" in found and tree / "b.wav" in found


def test_directory_symlink_loop_is_not_followed(tree):
    (tree / "sub" / "loop").symlink_to(Path.cwd() / "root", target_is_directory=True)
    found = find_audio_files([tree])
    assert len(found) == 5 and not any("loop" in str(p) for p in found)


def test_missing_path_is_a_usage_error(tree):
    with pytest.raises(UsageError, match="no such file or folder: root/nope.wav"):
        find_audio_files([tree / "b.wav", "root/nope.wav"])


def test_no_inputs_no_files():
    assert find_audio_files([]) == []


def test_extension_list():
    assert all(ext == ext.lower() and ext.startswith(".") for ext in AUDIO_EXTENSIONS)
    assert {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm"} <= AUDIO_EXTENSIONS


# --- errors ------------------------------------------------------------------------------------


def _load_error(path) -> str:
    with pytest.raises(AudioLoadError) as caught:
        load_audio(path)
    return str(caught.value)


def test_missing_file(tmp_path):
    assert _load_error(tmp_path / "gone.wav") == "file not found"
    with pytest.raises(AudioLoadError, match="file not found"):
        audio_info(tmp_path / "gone.wav")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.wav").touch()
    assert _load_error(tmp_path / "empty.wav") == "empty file"


def test_folder_is_not_a_file(tmp_path):
    assert _load_error(tmp_path) == "is a folder, not a file"


def test_named_pipe_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    assert _load_error(tmp_path / "pipe.wav") == "not a regular file"


def test_random_bytes_named_wav(tmp_path):
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(10_000))
    assert _load_error(tmp_path / "noise.wav") == "not an audio file"


def test_text_named_mp3(tmp_path):
    (tmp_path / "notes.mp3").write_text("not music at all\n" * 200)
    assert _load_error(tmp_path / "notes.mp3") == "not an audio file"


@pytest.mark.parametrize("suffix", [".m4a", ".M4A", ".aac", ".wma", ".webm"])
def test_unsupported_container(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + np.random.default_rng(1).bytes(4_000))
    assert _load_error(path) == f"unsupported format: {suffix[1:].lower()}"


def test_wav_without_samples(tmp_path):
    path = write(tmp_path / "silent.wav", np.zeros((0, 1)), 16_000)
    assert _load_error(path) == "no audio samples in file"


def test_unreadable_file(tmp_path):
    path = write(tmp_path / "secret.wav", voice_like(0.5), 16_000)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user (root?) whom file permissions do not stop")
        assert _load_error(path) == "permission denied"
    finally:
        path.chmod(0o644)


def test_permission_error_is_named(tmp_path, monkeypatch):
    # the same path as above, reachable even when the tests run as root
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(audio, "open", refuse, raising=False)
    assert _load_error(write(tmp_path / "v.wav", voice_like(0.5), 16_000)) == "permission denied"


def test_truncated_flac_is_a_decode_error(tmp_path):
    path = write(tmp_path / "t.flac", voice_like(2.0, 44_100), 44_100, "FLAC", "PCM_16")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert _load_error(path) == "decode error: flac decoder lost sync"


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "lossy", "rate", "channels"), MATRIX[::5])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9], ids=["keep0.1", "keep0.5", "keep0.9"])
def test_truncated_file_gives_audio_or_a_named_error(tmp_path, fmt, subtype, suffix, lossy, rate, channels, keep):
    # WAV and MP3 just end early; Ogg either ends early or fails to open, depending on where the cut
    # lands. Either way: finite 16 kHz audio or an AudioLoadError, never a raw libsndfile error.
    path = write(tmp_path / f"t{suffix}", tone(2.0, rate, channels), rate, fmt, subtype)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    try:
        out = load_audio(path)
    except AudioLoadError as err:
        assert str(err).startswith(("decode error: ", "not an audio file", "no audio samples"))
    else:
        assert out.dtype == np.float32 and np.isfinite(out).all() and len(out) < 2.1 * SAMPLE_RATE


def test_corruption_mid_file_raises_after_earlier_chunks(tmp_path):
    path = write(tmp_path / "c.flac", voice_like(10.0, 16_000), 16_000, "FLAC", "PCM_16")
    data = bytearray(path.read_bytes())
    at = len(data) * 7 // 10
    data[at : at + 2_000] = np.random.default_rng(2).bytes(2_000)
    path.write_bytes(bytes(data))
    chunks = []
    with pytest.raises(AudioLoadError, match=r"^decode error: \S"):
        for chunk in iter_chunks(path, chunk_seconds=1):
            chunks.append(chunk)
    assert len(chunks) >= 3


def test_error_messages_are_short_and_lowercase(tmp_path):
    (tmp_path / "noise.flac").write_bytes(np.random.default_rng(3).bytes(3_000))
    for path in [tmp_path / "noise.flac", tmp_path / "none.ogg"]:
        message = _load_error(path)
        assert message == message.lower() and len(message) < 80 and str(tmp_path) not in message
