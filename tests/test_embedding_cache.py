"""The on-disk embedding cache: hits, misses, invalidation, damage and crash tolerance."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import voice_like
from persona_cli import embedding_cache
from persona_cli.embedding import embed_files
from persona_cli.embedding_cache import EmbeddingCache
from persona_cli.encoders import load_encoder
from persona_cli.options import PredictOptions

OPTIONS = PredictOptions(batch_size=4)


def counting(encoder, monkeypatch):
    """Wrap encoder.embed so a test can tell whether the encoder ran at all."""
    calls = {"waves": 0}
    original = encoder.embed

    def embed(waves):
        calls["waves"] += len(waves)
        return original(waves)

    monkeypatch.setattr(encoder, "embed", embed)
    return calls


def write_clip(path: Path, seconds: float = 1.0, f0: float = 140.0, seed: int = 0) -> Path:
    sf.write(path, voice_like(seconds, f0=f0, seed=seed), 16_000)
    return path


def entry_files(root: Path) -> list[Path]:
    return sorted(root.rglob(f"*{embedding_cache.ENTRY_SUFFIX}"))


@pytest.fixture
def mfcc(monkeypatch):
    encoder = load_encoder("mfcc")
    encoder.calls = counting(encoder, monkeypatch)
    return encoder


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    folder = tmp_path / "clips"
    folder.mkdir()
    return [write_clip(folder / f"clip{i}.wav", 0.8 + 0.3 * i, f0=110 + 20 * i, seed=i) for i in range(5)]


def assert_same(results, expected):
    assert [r.path for r in results] == [e.path for e in expected]
    for got, want in zip(results, expected):
        assert got.error == want.error
        assert got.duration_s == want.duration_s
        assert got.vector.dtype == want.vector.dtype
        np.testing.assert_array_equal(got.vector, want.vector)


def test_first_call_misses_then_second_call_hits_without_the_encoder(tmp_path, clips, mfcc):
    expected = list(embed_files(clips, load_encoder("mfcc"), OPTIONS))
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")

    first = cache.embed(clips, OPTIONS)
    assert (cache.hits, cache.misses) == (0, len(clips))
    assert_same(first, expected)
    assert len(entry_files(tmp_path / "cache")) == len(clips)

    mfcc.calls["waves"] = 0
    second = cache.embed(clips, OPTIONS)
    assert (cache.hits, cache.misses) == (len(clips), 0)
    assert mfcc.calls["waves"] == 0
    assert_same(second, expected)


def test_default_root_is_the_persona_cache_dir(clips, mfcc):
    cache = EmbeddingCache(mfcc)
    assert cache.root == Path(os.environ["PERSONA_CACHE_DIR"]) / "embeddings"
    cache.embed(clips[:1], OPTIONS)
    assert len(entry_files(cache.root)) >= 1


def test_a_second_instance_reads_the_first_ones_entries(tmp_path, clips, mfcc, monkeypatch):
    first = EmbeddingCache(mfcc, root=tmp_path / "cache").embed(clips, OPTIONS)
    fresh_encoder = load_encoder("mfcc")
    calls = counting(fresh_encoder, monkeypatch)
    other = EmbeddingCache(fresh_encoder, root=tmp_path / "cache")
    assert_same(other.embed(clips, OPTIONS), first)
    assert (other.hits, calls["waves"]) == (len(clips), 0)


def test_same_content_under_another_name_is_a_hit(tmp_path, clips, mfcc):
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    original = cache.embed(clips[:1], OPTIONS)[0]
    copy = tmp_path / "elsewhere" / "renamed.wav"
    copy.parent.mkdir()
    copy.write_bytes(clips[0].read_bytes())
    mfcc.calls["waves"] = 0
    [result] = cache.embed([copy], OPTIONS)
    assert (cache.hits, mfcc.calls["waves"]) == (1, 0)
    assert result.path == copy
    np.testing.assert_array_equal(result.vector, original.vector)
    assert result.duration_s == original.duration_s


def test_duplicate_paths_in_one_call(tmp_path, clips, mfcc):
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    results = cache.embed([clips[0], clips[1], clips[0]], OPTIONS)
    np.testing.assert_array_equal(results[0].vector, results[2].vector)
    assert cache.embed([clips[0], clips[0]], OPTIONS)[1].path == clips[0]
    assert cache.hits == 2


def test_changed_content_at_the_same_path_is_a_miss(tmp_path, clips, mfcc):
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    before = cache.embed(clips[:1], OPTIONS)[0]
    write_clip(clips[0], 2.0, f0=220, seed=9)  # other audio, other size
    later = time.time_ns() + 5_000_000_000
    os.utime(clips[0], ns=(later, later))
    [after] = cache.embed(clips[:1], OPTIONS)
    assert cache.misses == 1
    assert after.duration_s == 2.0 and before.duration_s != 2.0
    expected = next(embed_files(clips[:1], load_encoder("mfcc"), OPTIONS))
    np.testing.assert_array_equal(after.vector, expected.vector)


def test_the_index_skips_rehashing_but_not_a_same_size_same_mtime_rewrite(tmp_path, clips, mfcc, monkeypatch):
    monkeypatch.setattr(embedding_cache, "RACY_SECONDS", 0.0)  # test files are all brand new
    hashed = []
    real_sha = embedding_cache.sha256_file
    monkeypatch.setattr(embedding_cache, "sha256_file", lambda p: hashed.append(p) or real_sha(p))
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    cache.embed(clips, OPTIONS)
    assert len(hashed) == len(clips)

    hashed.clear()
    EmbeddingCache(mfcc, root=tmp_path / "cache").embed(clips, OPTIONS)  # index read back from disk
    assert hashed == []

    # rewrite clip 0 with same-length audio and put its old mtime back: only ctime tells them apart
    st = clips[0].stat()
    time.sleep(0.05)
    write_clip(clips[0], 0.8, f0=300, seed=7)
    os.utime(clips[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert clips[0].stat().st_size == st.st_size
    [result] = cache.embed(clips[:1], OPTIONS)
    assert cache.misses == 1
    np.testing.assert_array_equal(result.vector, next(embed_files(clips[:1], load_encoder("mfcc"), OPTIONS)).vector)


def test_a_lost_or_damaged_index_only_costs_rehashing(tmp_path, clips, mfcc, monkeypatch):
    monkeypatch.setattr(embedding_cache, "RACY_SECONDS", 0.0)
    root = tmp_path / "cache"
    EmbeddingCache(mfcc, root=root).embed(clips, OPTIONS)
    index = root / embedding_cache.INDEX_FILE
    assert index.is_file()
    index.write_bytes(b"{not json")
    cache = EmbeddingCache(mfcc, root=root)
    cache.embed(clips, OPTIONS)
    assert cache.hits == len(clips)
    index.unlink()
    cache = EmbeddingCache(mfcc, root=root)
    cache.embed(clips, OPTIONS)
    assert cache.hits == len(clips)


def test_a_new_encoder_revision_never_reads_the_old_revisions_entries(tmp_path, clips, mfcc, monkeypatch):
    root = tmp_path / "cache"
    EmbeddingCache(mfcc, root=root).embed(clips[:2], OPTIONS)
    monkeypatch.setattr(mfcc, "revision", "next", raising=False)
    revised = EmbeddingCache(mfcc, root=root)
    revised.embed(clips[:2], OPTIONS)
    assert (revised.hits, revised.misses) == (0, 2)


def test_encoders_and_weights_never_share_entries(tmp_path, clips, mfcc):
    root = tmp_path / "cache"
    EmbeddingCache(mfcc, root=root).embed(clips[:2], OPTIONS)
    ge2e_cache = EmbeddingCache(load_encoder("ge2e"), root=root)
    results = ge2e_cache.embed(clips[:2], OPTIONS)
    assert ge2e_cache.misses == 2
    assert all(r.vector.shape == (256,) for r in results)
    ge2e_cache.embed(clips[:2], OPTIONS)
    assert ge2e_cache.hits == 2
    mfcc_cache = EmbeddingCache(mfcc, root=root)
    assert all(r.vector.shape == (160,) for r in mfcc_cache.embed(clips[:2], OPTIONS))
    assert mfcc_cache.hits == 2

    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"pretend weights")
    other_weights = EmbeddingCache(mfcc, root=root, encoder_source=str(weights))
    other_weights.embed(clips[:2], OPTIONS)
    assert other_weights.misses == 2
    weights.write_bytes(b"retrained weights, other size")
    retrained = EmbeddingCache(mfcc, root=root, encoder_source=str(weights))
    retrained.embed(clips[:2], OPTIONS)
    assert retrained.misses == 2
    assert len({p.parent.parent for p in entry_files(root)}) == 4


def test_failed_files_pass_their_error_through_and_are_not_cached(tmp_path, clips, mfcc):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    missing = tmp_path / "gone.wav"
    short = write_clip(tmp_path / "short.wav", 0.2)
    paths = [clips[0], text, missing, short, clips[1]]
    expected = list(embed_files(paths, load_encoder("mfcc"), OPTIONS))
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    for _ in range(2):
        results = cache.embed(paths, OPTIONS)
        assert [r.error for r in results] == [e.error for e in expected]
        assert results[1].error and results[2].error and results[3].error.startswith("too short")
        assert results[1].vector is None
    assert (cache.hits, cache.misses) == (2, 3)
    assert len(entry_files(tmp_path / "cache")) == 2


def test_a_cached_entry_shorter_than_min_seconds_is_still_an_error(tmp_path, clips, mfcc):
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    cache.embed(clips[:1], PredictOptions(min_seconds=0.1))
    [result] = cache.embed(clips[:1], PredictOptions(min_seconds=5.0))
    assert result.vector is None and result.error.startswith("too short")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "flipped", "pickle"])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(tmp_path, clips, mfcc, damage):
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    [good] = cache.embed(clips[:1], OPTIONS)
    [entry] = entry_files(tmp_path / "cache")
    data = entry.read_bytes()
    if damage == "garbage":
        entry.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "flipped":  # valid header, one byte of the vector changed
        entry.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    else:
        np.save(entry, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    mfcc.calls["waves"] = 0
    [result] = cache.embed(clips[:1], OPTIONS)
    assert cache.misses == 1 and mfcc.calls["waves"] == 1
    np.testing.assert_array_equal(result.vector, good.vector)
    assert entry.read_bytes() == data  # overwritten with a good entry
    cache.embed(clips[:1], OPTIONS)
    assert cache.hits == 1


def test_a_leftover_temp_file_from_a_crash_is_ignored(tmp_path, clips, mfcc, monkeypatch):
    root = tmp_path / "cache"
    cache = EmbeddingCache(mfcc, root=root)

    def crash(src, dst):
        raise KeyboardInterrupt  # the process dies between writing the temp file and renaming it

    monkeypatch.setattr(embedding_cache.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.embed(clips[:1], OPTIONS)
    monkeypatch.undo()
    assert entry_files(root) == []
    # a hard kill would not even have cleaned up: leave a half-written temp file where it would be
    digest = embedding_cache.sha256_file(clips[0])
    entry = cache.entry_path(digest, OPTIONS)
    entry.parent.mkdir(parents=True, exist_ok=True)
    (entry.parent / f".{entry.name}.abc123.tmp").write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr'")

    cache = EmbeddingCache(mfcc, root=root)
    [result] = cache.embed(clips[:1], OPTIONS)
    assert cache.misses == 1 and result.error is None
    assert entry.is_file()
    cache.embed(clips[:1], OPTIONS)
    assert cache.hits == 1


def test_real_clips(tmp_path, ravdess_clips, mfcc):
    expected = list(embed_files(ravdess_clips[:3], load_encoder("mfcc"), OPTIONS))
    cache = EmbeddingCache(mfcc, root=tmp_path / "cache")
    assert_same(cache.embed(ravdess_clips[:3], OPTIONS), expected)
    mfcc.calls["waves"] = 0
    assert_same(cache.embed(ravdess_clips[:3], OPTIONS), expected)
    assert (cache.hits, mfcc.calls["waves"]) == (3, 0)
