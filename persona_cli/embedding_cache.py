"""On-disk cache of per-file embeddings, so `persona train` / `persona eval` embed each clip once.

Keys. An entry is found by (encoder identity, file content):

- the encoder identity is the encoder's name, dim and revision (bumped when its features change), a
  cheap fingerprint of where its weights came from (the source string, plus size and mtime of the
  files when it names a local file or folder), what the encoder itself resolved (`cache_identity`:
  an `hf:` encoder's weights fingerprint and layer), the chunk length (it changes how long files
  are pooled) and CACHE_VERSION. All of it is hashed into one folder name (after a readable prefix,
  `encoder_slug`), so two encoders, or one encoder with other weights, never share entries.
  The device is deliberately left out: CPU and GPU agree to the 1e-4 the encoders promise anyway.
- the file content is the sha256 of the file's bytes, so renamed or copied clips are hits and a
  rewritten clip is a miss. To skip re-hashing unchanged files, a small index maps
  (absolute path, size, mtime_ns, ctime_ns) -> sha256. It is an optimisation only: it is rebuilt
  when lost or unreadable, and files modified in the last couple of seconds are not put in it
  (a rewrite within one timestamp tick could otherwise keep the same stat, as in "racy git").

Storage: one small `.npy` file per entry, `<root>/<encoder-id>/<sha[:2]>/<sha>.npy`, holding one
structured record (duration_s, crc32, vector). Chosen over a single sqlite database because

- each entry is written to a temp file in its own folder and `os.replace`d into place, which is
  atomic on POSIX and Windows: a crash leaves at most a stray `*.tmp` file, which is never read;
  concurrent runs (several CV jobs sharing one cache) need no locks, the last identical write wins;
- caches often live on network home folders (HPC clusters), where sqlite's locking and WAL mode
  are documented not to work; plain files do;
- one damaged entry costs one recomputation, never the whole cache ("database disk image is
  malformed" would lose everything);
- 10^4-10^5 entries spread over 256 sub-folders is a few hundred files per folder, and reading one
  back is a single small `np.load` (docs/measurements.md, "Embedding cache"), so sqlite would not be
  meaningfully faster here.

Reading never unpickles (`allow_pickle=False`), and an entry that cannot be read, has the wrong
layout or fails its crc32 is a miss and gets overwritten. Failed files are never cached.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from persona_cli.cache import cache_dir, source_fingerprint
from persona_cli.embedding import EmbeddingResult, embed_files
from persona_cli.encoders import Encoder, encoder_slug
from persona_cli.options import PredictOptions

log = logging.getLogger("persona")

#: bump when decoding, chunking or the entry format changes in a way that alters stored vectors
CACHE_VERSION = 1
#: bytes read per hashing step
HASH_BLOCK = 1 << 20
#: files changed more recently than this are hashed every time, not remembered in the index
RACY_SECONDS = 2.0
#: the path -> hash index keeps at most this many (most recently used) files
INDEX_MAX_ENTRIES = 500_000
INDEX_FILE = "content-index.json"
ENTRY_SUFFIX = ".npy"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


class _ContentIndex:
    """(absolute path, size, mtime_ns, ctime_ns) -> sha256, in one JSON file; safe to lose."""

    def __init__(self, file: Path):
        self.file = file
        self.entries: dict[str, list] = {}
        self.dirty = False
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            if data.get("version") == CACHE_VERSION and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError, AttributeError):
            pass  # missing or damaged: start afresh

    def content_hash(self, path: Path) -> str:
        """sha256 of the file, from the index when its stat is unchanged; OSError if unreadable."""
        absolute = os.path.abspath(path)
        st = os.stat(absolute)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        known = self.entries.get(absolute)
        if isinstance(known, list) and len(known) == 4 and known[:3] == stamp:
            return known[3]
        digest = sha256_file(Path(absolute))
        if max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - int(RACY_SECONDS * 1e9):
            self.entries.pop(absolute, None)  # re-insert at the end: most recently used
            self.entries[absolute] = [*stamp, digest]
            self.dirty = True
        elif self.entries.pop(absolute, None) is not None:
            self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty:
            return
        entries = self.entries
        if len(entries) > INDEX_MAX_ENTRIES:
            entries = dict(list(entries.items())[-INDEX_MAX_ENTRIES:])
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.file, json.dumps({"version": CACHE_VERSION, "files": entries}).encode())
            self.dirty = False
        except OSError as error:
            log.debug("could not save the embedding cache index %s: %s", self.file, error)


class EmbeddingCache:
    """Embeddings of audio files, computed once per (encoder identity, file content)."""

    def __init__(self, encoder: Encoder, root: Path | None = None, encoder_source: str | None = None):
        self.encoder = encoder
        self.root = Path(root) if root is not None else cache_dir("embeddings")
        self.encoder_source = encoder_source
        self.hits = 0  # entries read back in the last embed() call
        self.misses = 0  # files embedded (or failed) in the last embed() call
        self._index = _ContentIndex(self.root / INDEX_FILE)

    def encoder_id(self, options: PredictOptions) -> str:
        """Folder name for this encoder's entries: readable prefix + hash of everything that matters."""
        identity: dict = {
            "cache_version": CACHE_VERSION,
            "encoder": self.encoder.name,
            "dim": int(self.encoder.dim),
            "revision": self.encoder.revision,
            "class": f"{type(self.encoder).__module__}.{type(self.encoder).__qualname__}",
            "source": source_fingerprint(self.encoder_source),
            "chunk_seconds": float(options.chunk_seconds),
        }
        resolved = self.encoder.cache_identity()
        if resolved:  # only where there is one, so the built-in encoders keep their cache folders
            identity["resolved"] = resolved
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return f"{encoder_slug(self.encoder.name)}-{self.encoder.dim}-{digest}"

    def entry_path(self, content_hash: str, options: PredictOptions) -> Path:
        return self.root / self.encoder_id(options) / content_hash[:2] / f"{content_hash}{ENTRY_SUFFIX}"

    def embed(self, paths: Sequence[Path], options: PredictOptions) -> list[EmbeddingResult]:
        """One result per path, in order: cached entries read back, the rest embedded in one pass."""
        folder = self.root / self.encoder_id(options)
        results: list[EmbeddingResult | None] = [None] * len(paths)
        missing: list[tuple[int, Path | None]] = []  # (position, entry file or None when unhashable)
        for i, path in enumerate(paths):
            try:
                digest = self._index.content_hash(Path(path))
            except OSError:  # unreadable: embed_files reports why
                missing.append((i, None))
                continue
            entry = folder / digest[:2] / f"{digest}{ENTRY_SUFFIX}"
            cached = self._read(entry)
            if cached is not None and cached[0] >= options.min_seconds:
                results[i] = EmbeddingResult(Path(path), duration_s=cached[0], vector=cached[1])
            else:
                missing.append((i, entry))
        self._index.save()
        self.hits, self.misses = len(paths) - len(missing), len(missing)

        stored = 0
        fresh = embed_files((Path(paths[i]) for i, _ in missing), self.encoder, options)
        for (i, target), result in zip(missing, fresh):
            results[i] = result
            if (
                target is not None
                and result.error is None
                and result.vector is not None
                and result.duration_s is not None
            ):  # embed_files sets the duration with the vector
                stored += self._write(target, result.duration_s, result.vector)
        log.debug("embedding cache %s: %d hits, %d misses, %d stored", folder, self.hits, self.misses, stored)
        return results  # type: ignore[return-value]

    def _read(self, entry: Path) -> tuple[float, np.ndarray] | None:
        """(duration_s, vector) from an entry file, or None when absent, damaged or of another layout."""
        try:
            with open(entry, "rb") as f:
                record = np.load(f, allow_pickle=False)
            if record.shape != (1,) or record.dtype.names != ("duration_s", "crc32", "vector"):
                raise ValueError(f"unexpected layout {record.dtype}")
            vector = np.array(record["vector"][0])
            duration = float(record["duration_s"][0])
            if vector.shape != (self.encoder.dim,) or int(record["crc32"][0]) != _crc(duration, vector):
                raise ValueError("checksum or shape mismatch")
            return duration, vector
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, TypeError, KeyError, IndexError) as error:
            log.debug("ignoring damaged embedding cache entry %s: %s", entry, error)
            return None

    def _write(self, entry: Path, duration_s: float, vector: np.ndarray) -> bool:
        vector = np.ascontiguousarray(vector)
        duration = float(duration_s)
        dtype = np.dtype([("duration_s", "<f8"), ("crc32", "<u4"), ("vector", vector.dtype, vector.shape)])
        record = np.zeros(1, dtype)
        record["duration_s"], record["crc32"], record["vector"][0] = duration, _crc(duration, vector), vector
        buffer = io.BytesIO()
        np.save(buffer, record, allow_pickle=False)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(entry, buffer.getvalue())
            return True
        except OSError as error:  # a full or read-only cache must not stop the run
            log.warning("could not write embedding cache entry %s: %s", entry, error)
            return False


def _crc(duration: float, vector: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(vector).tobytes(), zlib.crc32(np.float64(duration).tobytes()))


def _atomic_write(target: Path, data: bytes) -> None:
    """Write to a temp file beside `target`, then rename it into place: readers see all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
