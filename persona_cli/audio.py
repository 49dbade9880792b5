"""Find audio files and turn each into 16 kHz mono float32 chunks, streamed so long files fit in memory."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from persona_cli.errors import AudioLoadError, UsageError

log = logging.getLogger("persona")

SAMPLE_RATE = 16_000
# Walked in folders. The last four are not decodable by libsndfile, but are listed anyway so that a
# folder of them gives one error row each instead of silently vanishing.
AUDIO_EXTENSIONS = frozenset(".wav .flac .ogg .oga .opus .mp3 .aif .aiff .au .m4a .aac .wma .webm".split())
_UNSUPPORTED = frozenset({".m4a", ".aac", ".wma", ".webm"})
_OS_ERRORS = {FileNotFoundError: "file not found", PermissionError: "permission denied"}
# Frames read per call: small enough that 192 kHz x 8 channels stays around a few MB.
_BLOCK_FRAMES = 65_536


def find_audio_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Named files (any extension) plus audio files under named folders: sorted, without duplicates."""
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            candidates = sorted(_walk(path), key=str)
        elif path.exists():
            candidates = [path]  # the user named it, so a decode error row beats silence
        else:
            raise UsageError(f"no such file or folder: {given}")
        for candidate in candidates:
            # abspath normalises './x' vs 'x' without resolving symlinks, which stay distinct files
            found.setdefault(os.path.abspath(candidate), candidate)
    return sorted(found.values(), key=str)


def _walk(folder: Path) -> Iterator[Path]:
    # followlinks=False: a symlink pointing at an ancestor folder would otherwise loop forever
    def warn(err: OSError) -> None:
        log.warning("skipping unreadable folder %s: %s", err.filename, err.strerror)

    for dirpath, _dirnames, filenames in os.walk(folder, onerror=warn, followlinks=False):
        for name in filenames:
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                yield Path(dirpath, name)


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float  # from the header; MP3 headers may overstate it by a few ms of encoder padding
    sample_rate: int  # of the file, before resampling
    channels: int
    format: str  # libsndfile's major format: "WAV", "FLAC", "OGG", "MP3"...


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header facts about one file, without decoding it."""
    with _open(path) as f:
        return AudioInfo(f.frames / f.samplerate, f.samplerate, f.channels, f.format)


def iter_chunks(path: str | os.PathLike, chunk_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """16 kHz mono float32 chunks of exactly chunk_seconds (the last one shorter).

    A generator: AudioLoadError is raised while iterating, possibly after some chunks.
    """
    size = round(chunk_seconds * SAMPLE_RATE)
    if size <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    with _open(path) as f:
        empty = True
        for chunk in _rechunk(_decoded(f), size):
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
        message = _OS_ERRORS.get(type(err)) or f"cannot open: {(err.strerror or str(err)).lower()}"
        raise AudioLoadError(message) from None
    try:
        return sf.SoundFile(path)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as err:
        suffix = Path(path).suffix.lower()
        if suffix in _UNSUPPORTED:
            raise AudioLoadError(f"unsupported format: {suffix[1:]}") from None
        if getattr(err, "code", None) == 3:  # SF_ERR_MALFORMED_FILE: right format, broken content
            raise AudioLoadError(f"decode error: {_reason(err)}") from None
        raise AudioLoadError("not an audio file") from None


def _reason(err: Exception) -> str:
    # libsndfile's texts look like "Error : FLAC decoder lost sync."; keep the middle, lowercased
    text = str(getattr(err, "error_string", None) or err).strip().rstrip(".").lower()
    return text.removeprefix("error :").strip()


def _decoded(f: sf.SoundFile) -> Iterator[np.ndarray]:
    """Mono 16 kHz pieces of any length, in file order."""
    # One resampler per file keeps filter state across blocks: no clicks at block edges, and the
    # output equals a one-shot soxr.resample of the whole file.
    stream = soxr.ResampleStream(f.samplerate, SAMPLE_RATE, 1) if f.samplerate != SAMPLE_RATE else None
    while True:  # until an empty block, not f.frames: MP3 headers can overstate the length
        try:
            block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError, ValueError) as err:
            raise AudioLoadError(f"decode error: {_reason(err)}") from None
        last = not len(block)
        # Zero NaN/inf before the downmix and the resampler, which would smear them over neighbours.
        mono = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0).mean(axis=1, dtype=np.float32)
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
