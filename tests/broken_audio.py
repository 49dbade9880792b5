"""A corpus of broken, odd and hostile audio files, for the bad-input tests (tests/test_bad_input.py).

`make_broken_corpus(folder)` writes every case into `folder` and returns
{name: the substring its `error` must contain, or None where the file must succeed}. Names are paths
relative to `folder` as the output shows them (a non-UTF-8 name in its backslash-escaped form).
`WARNINGS` holds, for the files that succeed with a warning, the substring their `warning` must
contain. Everything is generated: no downloads, about 2 MB, well under a second.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import voice_like

RATE = 16_000
#: not valid UTF-8: a Latin-1 "café.wav"; shown in output rows as the text caf\xe9.wav
NON_UTF8_NAME = b"caf\xe9.wav"
NON_UTF8_SHOWN = "caf\\xe9.wav"

#: files that decode and get predictions, but also a warning containing this text
WARNINGS = {
    "few_words.wav": "little speech: 0.3",
    "nan_and_inf.wav": "non-finite samples replaced with 0",
    "clipped.wav": "clipped: ",
    "header_claims_more.wav": "truncated: header declares 20.00 s, file holds 2.00 s",
}


def wav_bytes(wave: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    """A canonical 44-byte-header WAV, as bytes (fmt chunk at 12, data chunk header at 36)."""
    import io

    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype=subtype)
    data = buffer.getvalue()
    assert data[36:40] == b"data", "expected the canonical 44-byte WAV header"
    return data


def with_format_tag(data: bytes, tag: int) -> bytes:
    """The same WAV with another codec tag in its `fmt ` chunk (e.g. 0x0055 MP3, 0x0083 G.729A)."""
    patched = bytearray(data)
    patched[20:22] = struct.pack("<H", tag)
    return bytes(patched)


def make_broken_corpus(folder: str | os.PathLike) -> dict[str, str | None]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    voice = voice_like(2.0, RATE, f0=150, seed=1)
    expected: dict[str, str | None] = {}

    def audio(name: str, wave: np.ndarray, rate: int = RATE, subtype: str = "PCM_16", error: str | None = None, **kw):
        sf.write(folder / name, wave, rate, subtype=subtype, **kw)
        expected[name] = error

    def raw(name: str, data: bytes, error: str | None):
        (folder / name).write_bytes(data)
        expected[name] = error

    # --- files that are fine and must be unaffected by their neighbours
    audio("good_a.wav", voice)
    audio("good_b.flac", voice_like(3.0, RATE, f0=210, seed=2), format="FLAC")
    # --- not audio, or not there
    raw("zero_bytes.wav", b"", "empty file")
    raw("random_bytes.wav", rng.bytes(20_000), "not an audio file")
    raw("random_bytes.ogg", rng.bytes(20_000), "not an audio file")
    raw("text.mp3", b"these are meeting notes, not music\n" * 100, "not an audio file")
    raw("fake.m4a", b"\x00\x00\x00\x20ftypM4A " + rng.bytes(4_000), "unsupported format: m4a")
    os.mkfifo(folder / "pipe.wav")  # a reader that opened it would wait forever
    expected["pipe.wav"] = "not a regular file"
    # --- broken WAV headers and codecs libsndfile does not decode
    good = wav_bytes(voice)
    raw("truncated_header.wav", good[:20], "truncated wav header")
    raw("truncated_in_fmt.wav", good[:30], "truncated wav header")
    raw("header_only.wav", good[:44], "no audio samples in file")
    claims_more = bytearray(good)
    claims_more[40:44] = struct.pack("<I", 10 * (len(good) - 44))  # data chunk: 20 s declared, 2 s present
    claims_more[4:8] = struct.pack("<I", 36 + 10 * (len(good) - 44))
    raw("header_claims_more.wav", bytes(claims_more), None)
    raw("mp3_in_wav.wav", with_format_tag(good, 0x0055), "unsupported format: wav codec 0x0055 (mp3)")
    raw("g729_in_wav.wav", with_format_tag(good, 0x0083), "unsupported format: wav codec 0x0083 (g.729a)")
    # --- odd content: errors for what cannot be characterised, warnings for what is doubtful
    audio("short_50ms.wav", voice_like(0.05, RATE), error="too short: 0.05 s < 0.5 s")
    audio("silence.wav", np.zeros(2 * RATE, np.float32), error="no speech detected")
    audio("white_noise.wav", rng.uniform(-0.5, 0.5, 2 * RATE), error="no speech detected")
    audio(
        "hum.wav",
        sum(0.1 / k * np.sin(2 * np.pi * 50 * k * np.arange(2 * RATE) / RATE) for k in range(1, 8)),
        error="no speech detected",
    )
    audio("few_words.wav", np.concatenate([np.zeros(RATE), voice_like(0.25, RATE, seed=3), np.zeros(RATE)]))
    nan_wave = voice.copy()
    nan_wave[[100, 5_000, 20_000]] = [np.nan, np.inf, -np.inf]
    audio("nan_and_inf.wav", nan_wave, subtype="FLOAT")
    audio("clipped.wav", np.clip(voice * 5, -1, 1))  # 9 % of samples; harder clipping is no speech to webrtcvad
    # --- unusual but valid formats
    audio("six_channels.wav", np.repeat(voice[:, None], 6, axis=1) * np.linspace(1, 0.2, 6), subtype="FLOAT")
    audio("rate_8k.wav", voice_like(2.0, 8_000, f0=130, seed=3), 8_000)
    audio("rate_192k.wav", voice_like(2.0, 192_000, f0=170, seed=4), 192_000, subtype="PCM_24")
    audio("pcm_u8.wav", voice_like(2.0, RATE, f0=190, seed=5), subtype="PCM_U8")
    audio("float32.wav", voice_like(2.0, RATE, f0=230, seed=6), subtype="FLOAT")
    # --- the file system's odd corners
    audio("no_permission.wav", voice)
    (folder / "no_permission.wav").chmod(0)  # root reads it anyway: tests simulate the refusal there
    expected["no_permission.wav"] = "permission denied"
    (folder / "dangling.wav").symlink_to("nowhere.wav")
    expected["dangling.wav"] = "broken symlink"
    (folder / "loop_a.wav").symlink_to("loop_b.wav")
    (folder / "loop_b.wav").symlink_to("loop_a.wav")
    expected["loop_a.wav"] = expected["loop_b.wav"] = "symlink loop"
    (folder / "loops").mkdir()
    (folder / "loops" / "up").symlink_to("..", target_is_directory=True)  # not followed: no rows
    (folder / "no_audio").mkdir()
    (folder / "no_audio" / "readme.txt").write_text("nothing to hear here\n")
    fd = os.open(os.path.join(os.fsencode(folder), NON_UTF8_NAME), os.O_WRONLY | os.O_CREAT, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(wav_bytes(voice_like(2.0, RATE, f0=250, seed=7)))
    expected[NON_UTF8_SHOWN] = None
    return expected


def long_recording(path: str | os.PathLike, minutes: float = 12.0, rate: int = 8_000) -> Path:
    """A long 8 kHz 16-bit WAV built from one generated minute, repeated (fast to write)."""
    one_minute = (voice_like(60.0, rate, f0=140, seed=8) * 32_767).astype(np.int16)
    repeats = int(np.ceil(minutes))
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for i in range(repeats):
            f.write(one_minute[: int(min(60.0, (minutes - i) * 60) * rate)])
    return Path(path)
