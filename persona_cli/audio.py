"""Find audio files and turn each into 16 kHz mono float32 chunks, streamed so long files fit in memory.

What goes wrong with one file is an AudioLoadError whose message becomes that file's `error`
(a short, lowercase reason, never a traceback: `file not found`, `not an audio file`,
`unsupported format: m4a`...). Some files decode but deserve a second look; they are not errors,
and `SignalStats.warnings()` names them for the `warning` column (silence, NaN/inf samples, heavy
clipping, a WAV holding less audio than its header declares). docs/cli.md ("Bad input") is the one
complete list of both, with the engine's own `too short` and `embedding failed`: keep it complete
when adding a message.

Paths are kept as the OS gives them. A file name that is not valid UTF-8 decodes, as everywhere in
Python, to a str with surrogate escapes; `display_path` turns it into printable text ('caf\\xe9.wav')
for output rows, since CSV, JSON and Parquet all need valid UTF-8.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from persona_cli import wav_header
from persona_cli.errors import AudioLoadError, UsageError

log = logging.getLogger("persona")

SAMPLE_RATE = 16_000
# Walked in folders. The last four are not decodable by libsndfile, but are listed anyway so that a
# folder of them gives one error row each instead of silently vanishing.
AUDIO_EXTENSIONS = frozenset(".wav .flac .ogg .oga .opus .mp3 .aif .aiff .au .m4a .aac .wma .webm".split())
_UNSUPPORTED = frozenset({".m4a", ".aac", ".wma", ".webm"})
_OS_ERRORS = {FileNotFoundError: "file not found", PermissionError: "permission denied"}
# Frames read per call: small enough that 192 kHz x 8 channels stays around a few MB. Files with more
# channels, or low sample rates (which the resampler multiplies), read fewer frames per call.
_BLOCK_FRAMES = 65_536
_BLOCK_SAMPLES = 8 * _BLOCK_FRAMES

# Warning thresholds (see SignalStats.warnings)
SILENCE_DBFS = -70.0  # RMS below this over the whole file: "nearly silent"
FULL_SCALE = 1.0 - 2.0**-7  # |sample| at or above this (within one 8-bit step of ±1) counts as clipped
CLIPPED_FRACTION = 0.05  # more than this share of samples at full scale: "clipped"
TRUNCATED_SECONDS = 0.01  # a WAV holding at least this much less than its header declares: "truncated"


# libsndfile's sf_error codes that mean "this is no audio file at all" rather than "broken audio":
# 1 unrecognised format, 2 system error, 7 not a regular file (what the MP3 probe says about text).
_NOT_AUDIO_CODES = frozenset({1, 2, 7})
_SF_ERR_UNSUPPORTED_ENCODING = 4


def find_audio_files(paths: Iterable[str | os.PathLike], *, files_from: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Named files (any extension) plus audio files under named folders: sorted, without duplicates.

    A path in `paths` that does not exist is a UsageError, but a broken symlink is listed (its row
    says `broken symlink`). `files_from` holds paths read from a list file (`--files-from`): there a
    missing path is listed too, so that one stale line gives one `file not found` row instead of
    stopping a long batch.
    """
    found: dict[str, Path] = {}
    named = [(given, False) for given in paths] + [(given, True) for given in files_from]
    for given, missing_ok in named:
        path = Path(given)
        if path.is_dir():
            candidates = sorted(_walk(path), key=str)
        elif path.exists() or os.path.lexists(path) or missing_ok:
            candidates = [path]  # the user named it, so a decode error row beats silence
        else:
            raise UsageError(f"no such file or folder: {display_path(given)}")
        for candidate in candidates:
            # abspath normalises './x' vs 'x' without resolving symlinks, which stay distinct files
            found.setdefault(os.path.abspath(candidate), candidate)
    return sorted(found.values(), key=str)


def _walk(folder: Path) -> Iterator[Path]:
    # followlinks=False: a symlink pointing at an ancestor folder would otherwise loop forever.
    # Broken or looping file symlinks with an audio suffix are listed: their rows say what is wrong.
    def warn(err: OSError) -> None:
        log.warning("skipping unreadable folder %s: %s", display_path(err.filename or ""), err.strerror)

    for dirpath, _dirnames, filenames in os.walk(folder, onerror=warn, followlinks=False):
        for name in filenames:
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                yield Path(dirpath, name)


def display_path(path: str | bytes | os.PathLike) -> str:
    """The path as valid UTF-8 text: bytes that are not UTF-8 become backslash escapes ('caf\\xe9.wav').

    Valid names come back unchanged (str(path)); only undecodable bytes, which Python holds as
    surrogate escapes, are rewritten, so every writer (CSV on stdout, JSONL, Parquet) can store them.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no OS name produced: escape it as it is
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float  # from the header; MP3 headers may overstate it by a few ms of encoder padding
    sample_rate: int  # of the file, before resampling
    channels: int
    format: str  # libsndfile's major format: "WAV", "FLAC", "OGG", "MP3"...


@dataclass
class SignalStats:
    """What iter_chunks saw of one file's samples (all channels, before downmix), for the warnings.

    Pass one to iter_chunks(stats=...) and read it once the iteration is over.
    """

    samples: int = 0  # decoded samples, all channels
    non_finite: int = 0  # NaN or ±inf samples (replaced with 0)
    full_scale: int = 0  # finite samples with |x| >= FULL_SCALE
    sum_squares: float = 0.0  # of the samples after NaN/inf became 0, for the RMS
    peak: float = 0.0  # largest |x| after NaN/inf became 0
    frames: int = 0  # decoded frames (samples per channel)
    sample_rate: int = 0
    declared_frames: int | None = None  # what a WAV header's data chunk declares, when it is readable

    def add(self, block: np.ndarray) -> np.ndarray:
        """Count one (frames, channels) float32 block; returns it with NaN/inf replaced by 0."""
        self.frames += block.shape[0]
        self.samples += block.size
        if not block.size:
            return block
        # Few passes over the block, each one whole-array call: the workers share one interpreter,
        # and every small numpy call holds it for a moment. A plain reduction, not np.dot: BLAS
        # calls wake OpenBLAS's thread pool, whose spinning threads then compete with torch's for
        # the cores (it halved predict's throughput).
        sum_squares = float(np.square(block, dtype=np.float64).sum())
        if not math.isfinite(sum_squares):  # a NaN or an infinity somewhere (rare): find them
            finite = np.isfinite(block)
            self.non_finite += block.size - int(np.count_nonzero(finite))
            block = np.where(finite, block, np.float32(0))
            sum_squares = float(np.square(block, dtype=np.float64).sum())
        peak = max(float(block.max()), -float(block.min()))
        if peak >= FULL_SCALE:
            self.full_scale += int(np.count_nonzero(np.abs(block) >= FULL_SCALE))
        self.peak = max(self.peak, peak)
        self.sum_squares += sum_squares
        return block

    @property
    def rms_dbfs(self) -> float:
        rms = np.sqrt(self.sum_squares / self.samples) if self.samples else 0.0
        return float(20 * np.log10(rms)) if rms > 0 else float("-inf")

    def warnings(self) -> list[str]:
        """Short texts for what is doubtful about this audio; empty when nothing is."""
        found = []
        if self.declared_frames is not None and self.sample_rate:
            missing_s = (self.declared_frames - self.frames) / self.sample_rate
            if missing_s >= TRUNCATED_SECONDS:
                found.append(
                    f"truncated: header declares {self.declared_frames / self.sample_rate:.2f} s, "
                    f"file holds {self.frames / self.sample_rate:.2f} s"
                )
        if self.non_finite:
            found.append(f"non-finite samples replaced with 0: {self.non_finite} of {self.samples}")
        if self.samples and self.peak == 0:
            found.append("silent")
        elif self.samples and self.rms_dbfs < SILENCE_DBFS:
            found.append(f"nearly silent: {self.rms_dbfs:.0f} dBFS RMS")
        if self.samples and self.full_scale > CLIPPED_FRACTION * self.samples:
            found.append(f"clipped: {100 * self.full_scale / self.samples:.0f} % of samples at full scale")
        return found


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header facts about one file, without decoding it."""
    with _open(path) as f:
        return AudioInfo(f.frames / f.samplerate, f.samplerate, f.channels, f.format)


def iter_chunks(
    path: str | os.PathLike, chunk_seconds: float = 30.0, stats: SignalStats | None = None
) -> Iterator[np.ndarray]:
    """16 kHz mono float32 chunks of exactly chunk_seconds (the last one shorter).

    A generator: AudioLoadError is raised while iterating, possibly after some chunks. With `stats`,
    what the samples looked like (silence, NaN, clipping, truncation) is counted into it as they pass.
    """
    size = round(chunk_seconds * SAMPLE_RATE)
    if size <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    stats = SignalStats() if stats is None else stats
    with _open(path) as f:
        stats.sample_rate = f.samplerate
        if f.format in ("WAV", "WAVEX"):
            stats.declared_frames = wav_header.declared_frames(path)
        empty = True
        for chunk in _rechunk(_decoded(f, stats), size):
            empty = False
            yield chunk
    if empty:
        raise AudioLoadError("no audio samples in file")


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array: for tests and short clips only."""
    return np.concatenate(list(iter_chunks(path)))


def _open(path: str | os.PathLike) -> sf.SoundFile:
    # Python looks first: libsndfile calls a missing or unreadable file a "System error", and would
    # wait forever on a named pipe.
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise AudioLoadError("is a folder, not a file" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        if st.st_size == 0:
            raise AudioLoadError("empty file")
        open(path, "rb").close()  # raises PermissionError where we may not read it
    except OSError as err:
        raise AudioLoadError(_os_reason(path, err)) from None
    try:
        # bytes, not str: soundfile encodes a str path strictly, which fails on non-UTF-8 names
        return sf.SoundFile(os.fsencode(path) if os.name == "posix" else path)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as err:
        raise AudioLoadError(_open_failure(path, err)) from None


def _os_reason(path: str | os.PathLike, err: OSError) -> str:
    if isinstance(err, FileNotFoundError) and os.path.islink(path):
        return "broken symlink"
    if err.errno == errno.ELOOP:
        return "symlink loop"
    return _OS_ERRORS.get(type(err)) or f"cannot open: {(err.strerror or str(err)).lower()}"


def _open_failure(path: str | os.PathLike, err: Exception) -> str:
    """The row's error for a file libsndfile would not open."""
    suffix = Path(os.fsdecode(path)).suffix.lower()
    if suffix in _UNSUPPORTED:
        return f"unsupported format: {suffix[1:]}"
    wav_problem = wav_header.header_problem(path)
    if wav_problem:
        return wav_problem
    code = getattr(err, "code", None)
    if code == _SF_ERR_UNSUPPORTED_ENCODING:
        return f"unsupported format: {_reason(err)}"
    if code is None or code in _NOT_AUDIO_CODES:
        return "not an audio file"
    # 3 (SF_ERR_MALFORMED_FILE) and the format-specific codes: right format, broken content
    return f"decode error: {_reason(err)}"


def _reason(err: Exception) -> str:
    # libsndfile's texts look like "Error : FLAC decoder lost sync."; keep the middle, lowercased
    text = str(getattr(err, "error_string", None) or err).strip().rstrip(".").lower()
    return text.removeprefix("error :").strip()


def _decoded(f: sf.SoundFile, stats: SignalStats) -> Iterator[np.ndarray]:
    """Mono 16 kHz pieces of any length, in file order."""
    # One resampler per file keeps filter state across blocks: no clicks at block edges, and the
    # output equals a one-shot soxr.resample of the whole file.
    try:
        stream = soxr.ResampleStream(f.samplerate, SAMPLE_RATE, 1) if f.samplerate != SAMPLE_RATE else None
    except (ValueError, RuntimeError, OverflowError, TypeError):
        raise AudioLoadError(f"unsupported sample rate: {f.samplerate} Hz") from None
    # bound both the block read (channels) and what the resampler makes of it (low sample rates)
    frames = max(
        1, min(_BLOCK_FRAMES, _BLOCK_SAMPLES // max(f.channels, 1), _BLOCK_FRAMES * f.samplerate // SAMPLE_RATE)
    )
    while True:  # until an empty block, not f.frames: MP3 headers can overstate the length
        try:
            block = f.read(frames, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError, ValueError) as err:
            raise AudioLoadError(f"decode error: {_reason(err)}") from None
        last = not len(block)
        # Zero NaN/inf before the downmix and the resampler, which would smear them over neighbours.
        block = stats.add(block)
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        yield mono if stream is None else stream.resample_chunk(mono, last=last)
        if last:
            return


def _rechunk(pieces: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    # Collect pieces in a list and join once per chunk, rather than growing one array per piece.
    parts: list[np.ndarray] = []
    held = 0
    for piece in pieces:
        parts.append(piece)
        held += len(piece)
        if held < size:
            continue
        joined = np.concatenate(parts)
        full = held // size * size
        for start in range(0, full, size):
            yield joined[start : start + size]
        parts, held = [joined[full:]], held - full
    if held:
        yield np.concatenate(parts)


def iter_waveform_chunks(
    wave: np.ndarray, sample_rate: int, chunk_seconds: float = 30.0, stats: SignalStats | None = None
) -> Iterator[np.ndarray]:
    """An in-memory waveform as iter_chunks gives a file: 16 kHz mono float32 chunks.

    `wave` is 1-D (mono) or (frames, channels), as soundfile.read returns it, at `sample_rate` Hz.
    """
    size = round(chunk_seconds * SAMPLE_RATE)
    if size <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    raw = np.asarray(wave)
    # integer PCM (scipy.io.wavfile, pydub) is scaled to [-1, 1] as soundfile scales it from a file
    if raw.dtype.kind == "i":
        samples = raw.astype(np.float32) / np.float32(-np.iinfo(raw.dtype).min)
    elif raw.dtype.kind == "u":  # unsigned PCM (8-bit WAV) is centred on half its range
        middle = np.float32(np.iinfo(raw.dtype).max // 2 + 1)
        samples = (raw.astype(np.float32) - middle) / middle
    else:
        samples = np.asarray(raw, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise AudioLoadError(f"a waveform must be 1-D or (frames, channels), not {samples.ndim}-D")
    if 0 < samples.shape[0] < samples.shape[1]:  # librosa and torchaudio put channels first
        raise AudioLoadError(f"a waveform must be (frames, channels), not {samples.shape}: transpose it")
    if not float(sample_rate).is_integer() or sample_rate <= 0:
        raise AudioLoadError(f"unsupported sample rate: {sample_rate} Hz")
    sample_rate = int(sample_rate)
    stats = SignalStats() if stats is None else stats
    stats.sample_rate = int(sample_rate)
    mono = stats.add(samples).mean(axis=1, dtype=np.float32)
    if not len(mono):
        raise AudioLoadError("no audio samples in waveform")
    if sample_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, SAMPLE_RATE).astype(np.float32, copy=False)
    for start in range(0, len(mono), size):
        yield mono[start : start + size]
