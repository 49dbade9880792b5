"""Running at scale: parallel workers, --shard K/N, and streamed output, each against the plain run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import soundfile as sf
import torch

from conftest import SAMPLE_AUDIO, run_cli as run, voice_like
from persona_cli.embedding import embed_files
from persona_cli.encoders import load_encoder
from persona_cli.errors import UsageError
from persona_cli.options import PredictOptions
from persona_cli.sharding import Shard


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The sequential runs below (workers=0) embed on the calling thread's torch threads: one, as in
    test_encoders.py, so that OpenMP threads waiting for each other on a busy 2-core machine cannot
    stretch them (the first parallel-workers case took 19 s there instead of 1.4 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory) -> list[Path]:
    """Real clips, generated ones of several lengths (one spans three 30 s chunks), and 3 failures."""
    folder = tmp_path_factory.mktemp("mixed")
    voices = []
    for i, seconds in enumerate([0.7, 3.0, 75.0, 1.5]):
        voices.append(folder / f"voice_{i}.wav")
        sf.write(voices[-1], voice_like(seconds, 16_000, f0=100 + 30 * i, seed=i), 16_000)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00")
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "too_short.wav", voice_like(0.1), 16_000)
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    return (
        clips[:3]
        + [voices[0], folder / "broken.wav"]
        + clips[3:6]
        + [voices[1], voices[2], folder / "too_short.wav", folder / "empty.wav"]
        + clips[6:]
        + [voices[3]]
    )


def _embed(files, workers: int, batch_size: int, processes: bool = False, progress=None) -> list:
    encoder = load_encoder("ge2e")
    options = PredictOptions(workers=workers, batch_size=batch_size, processes=processes)
    return list(embed_files(files, encoder, options, progress))


@pytest.fixture(scope="module")
def sequential(mixed_files) -> list:
    """The files embedded without workers, once for every case below."""
    return _embed(mixed_files, workers=0, batch_size=4)


@pytest.mark.parametrize(
    "workers, batch_size, processes",
    [(1, 4, False), (2, 3, False), (3, 1, False), (2, 32, False), (2, 3, True), (1, 32, True)],
    ids=[
        "workers1-batch4",
        "workers2-batch3",
        "workers3-batch1",
        "workers2-batch32",
        "processes2-batch3",
        "processes1-batch32",
    ],
)
def test_parallel_workers_give_the_sequential_results_in_input_order(
    mixed_files, sequential, workers, batch_size, processes
):
    heard: list[float] = []
    parallel = _embed(mixed_files, workers=workers, batch_size=batch_size, processes=processes, progress=heard.append)
    assert [r.path for r in parallel] == [Path(f) for f in mixed_files]
    assert [(r.error, r.warning, r.duration_s) for r in parallel] == [
        (r.error, r.warning, r.duration_s) for r in sequential
    ]
    assert sum(r.error is not None for r in parallel) == 3
    for ours, theirs in zip(parallel, sequential):
        if theirs.vector is not None:
            np.testing.assert_allclose(ours.vector, theirs.vector, atol=1e-5)
    # the progress bar hears of all the audio embedded, worker processes or not
    assert sum(heard) == pytest.approx(sum(r.duration_s or 0.0 for r in sequential), abs=0.01)


def test_worker_processes_work_after_torch_ran_on_several_threads(tmp_path):
    """OpenMP's pool threads do not survive a fork: a forked worker that asked for two torch threads
    after the parent had used them waited forever (a notebook that predicted before, the test suite).
    In its own interpreter, so that a regression fails by the timeout instead of hanging the suite."""
    clip = sorted(SAMPLE_AUDIO.glob("*.mp3"))[0]
    script = f"""
import torch
from persona_cli.embedding import embed_files
from persona_cli.encoders import load_encoder
from persona_cli.options import PredictOptions
torch.set_num_threads(2)
torch.hann_window(2_000_000)  # a parallel region: OpenMP now has pool threads
options = PredictOptions(workers=1, processes=True)
[result] = embed_files([{str(clip)!r}], load_encoder("ge2e"), options)
assert result.error is None and result.vector is not None
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_stopping_early_leaves_no_work_running(mixed_files, processes):
    """A consumer that stops (--fail-fast, Ctrl-C) must get control back, not wait for the whole input."""
    encoder = load_encoder("ge2e")
    results = embed_files(mixed_files * 20, encoder, PredictOptions(workers=2, batch_size=2, processes=processes))
    first = next(results)
    results.close()
    assert first.path == Path(mixed_files[0])


@pytest.mark.parametrize("extra", [["--workers", "0"], ["--per", "segment"]], ids=["no-workers", "per-segment"])
def test_worker_processes_are_refused_where_they_do_not_apply_before_any_work(capsys, extra):
    code, out, err = run(["predict", str(SAMPLE_AUDIO), "--processes", *extra], capsys)
    assert code == 2 and not out and "--processes" in err and "Traceback" not in err


# --- --shard K/N -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 7], ids=["1-shard", "2-shards", "3-shards", "7-shards"])
def test_shards_cover_every_file_exactly_once(count):
    paths = [Path(f"corpus/speaker_{i // 10}/clip_{i}.wav") for i in range(500)]
    shards = [Shard(k, count).select(paths) for k in range(1, count + 1)]
    assert sorted(p for shard in shards for p in shard) == sorted(paths)
    assert sum(len(shard) for shard in shards) == len(paths)
    for shard in shards:  # a hash split is even enough to share out work
        assert abs(len(shard) - len(paths) / count) < 0.25 * len(paths) / count + 5


def test_shard_membership_is_the_same_in_every_process():
    """Python's own hash() is salted per process; the split must not be."""
    paths = [f"clips/{i}.mp3" for i in range(50)]
    here = [int(Shard(2, 3).holds(p)) for p in paths]
    code = f"from persona_cli.sharding import Shard; print(''.join(str(int(Shard(2, 3).holds(p))) for p in {paths!r}))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert there.strip() == "".join(map(str, here))


@pytest.mark.parametrize(
    "text",
    ["0/4", "5/4", "1/0", "1", "a/b", "-1/2", "1/2/3"],
    ids=["K-zero", "K-over-N", "N-zero", "no-slash", "not-numbers", "K-negative", "three-parts"],
)
def test_bad_shard_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--shard"):
        Shard.parse(text)


def test_sharded_parquet_outputs_concatenate_into_the_unsharded_result(tmp_path: Path, capsys):
    code, _, _ = run(["predict", str(SAMPLE_AUDIO), "-o", str(tmp_path / "all.parquet"), "-q"], capsys)
    assert code == 0
    (tmp_path / "shards").mkdir()
    for k in range(1, 6):  # 9 clips in 5 shards: some shards may be empty, and must still be written
        code, _, _ = run(
            [
                "predict",
                str(SAMPLE_AUDIO),
                "--shard",
                f"{k}/5",
                "-o",
                str(tmp_path / "shards" / f"part-{k}.parquet"),
                "-q",
            ],
            capsys,
        )
        assert code == 0
    whole = pd.read_parquet(tmp_path / "all.parquet").sort_values("path", ignore_index=True)
    parts = ds.dataset(tmp_path / "shards", format="parquet").to_table().to_pandas()
    assert parts["path"].is_unique
    pd.testing.assert_frame_equal(parts.sort_values("path", ignore_index=True), whole, atol=1e-3)


def test_bad_shard_on_the_command_line_exits_2_with_one_line(capsys):
    code, out, err = run(["predict", str(SAMPLE_AUDIO), "--shard", "4/3"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--shard" in err


# --- streamed output ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, bundled",
    [
        # every writer, with the tiny mfcc model: these are about the rows that reach the file, and
        # the default encoder takes ~2 s a case here (25-50 s seen on a busy machine) against ~0.5 s
        pytest.param(".csv", False, id="csv"),
        pytest.param(".jsonl", False, id="jsonl"),
        pytest.param(".parquet", False, id="parquet"),
        # and once with the bundled model: the default encoder gives the same vectors in either batching
        pytest.param(".csv", True, id="csv-bundled-model"),
    ],
)
def test_streamed_output_equals_one_batch_output(mixed_files, suffix, bundled, tiny_model, tmp_path: Path, capsys):
    """Rows written as each file finishes (--batch-size 1, two workers) are the rows of one big batch."""
    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"{f}\n" for f in mixed_files))
    model = [] if bundled else ["--model", str(tiny_model)]
    outputs = {}
    for name, extra in {
        "streamed": ["--batch-size", "1", "--workers", "2"],
        "one_batch": ["--batch-size", "64", "--workers", "0"],
    }.items():
        outputs[name] = tmp_path / f"{name}{suffix}"
        code, _, _ = run(
            ["predict", "--files-from", str(listing), "-o", str(outputs[name]), "-q", *model, *extra], capsys
        )
        assert code == 1  # the broken files
    read = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[suffix]
    streamed, one_batch = read(outputs["streamed"]), read(outputs["one_batch"])
    assert len(streamed) == len(set(map(str, mixed_files)))
    pd.testing.assert_frame_equal(streamed, one_batch, atol=2e-3)


def test_an_empty_shard_writes_an_empty_file_and_succeeds(tmp_path: Path, capsys):
    """With more shards than files some get none; their jobs must still succeed, so a scheduler
    running N of them sees no spurious failures."""
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    empty = next(k for k in range(1, 51) if not Shard(k, 50).select(clips))
    code, _, _ = run(
        ["predict", str(SAMPLE_AUDIO), "--shard", f"{empty}/50", "-o", str(tmp_path / "p.parquet")], capsys
    )
    assert code == 0
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 0


def test_glibc_malloc_tuning_applies_on_linux():
    from persona_cli import memory

    if memory._LIBC is None:
        pytest.skip("libc is not glibc")
    assert memory.keep_large_buffers_out_of_the_heap()
    memory.return_free_memory()
