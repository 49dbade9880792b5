"""Interrupted runs: --resume, Ctrl-C and SIGKILL lose nothing, and the resumed output equals a clean run's."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from conftest import SAMPLE_AUDIO, voice_like
from persona_cli.cli import main

READERS = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}
PERSONA = str(Path(sys.executable).with_name("persona"))


def run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory) -> Path:
    """Enough short files that a run with --batch-size 1 is still going well after its 20th row
    (about a second of work with the tiny mfcc model), long enough to interrupt."""
    folder = tmp_path_factory.mktemp("many")
    for i in range(500):
        sf.write(folder / f"clip{i:03d}.wav", voice_like(0.6, f0=90 + i % 150, seed=i), 16_000)
    return folder


@pytest.fixture(scope="module")
def predict_many(many_clips: Path, tiny_model: Path) -> list[str]:
    """The `persona predict` command that the runs below interrupt and resume. A random-weight mfcc
    model instead of the bundled one: these tests are about the rows that reach the file, and a run
    embeds these 500 clips in about 1 s (the default encoder took 5.5 s for 300)."""
    return ["predict", str(many_clips), "--batch-size", "1", "--model", str(tiny_model)]


@pytest.fixture(scope="module")
def reference(predict_many: list[str], tmp_path_factory):
    """An uninterrupted run to compare with, in the format asked for (computed once per format, in
    this process: the same command and options, without a second interpreter start-up)."""
    out, tables = tmp_path_factory.mktemp("reference"), {}

    def table(suffix: str) -> pd.DataFrame:
        if suffix not in tables:
            target = out / f"all{suffix}"
            with pytest.raises(SystemExit) as done:
                main([*predict_many, "-q", "-o", str(target)])
            assert done.value.code == 0
            tables[suffix] = READERS[suffix](target)
        return tables[suffix]

    return table


@pytest.mark.parametrize("suffix", list(READERS))
def test_resume_after_a_partial_run_equals_a_full_run(suffix: str, tmp_path: Path, capsys):
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    full, partial = tmp_path / f"full{suffix}", tmp_path / f"resumed{suffix}"
    assert run(["predict", str(SAMPLE_AUDIO), "-q", "-o", str(full)], capsys)[0] == 0
    assert run(["predict", *map(str, clips[:4]), "-q", "-o", str(partial)], capsys)[0] == 0
    code, err = run(["predict", str(SAMPLE_AUDIO), "-o", str(partial), "--resume"], capsys)
    assert code == 0 and "4 of 9 files already done, 5 to go" in err
    pd.testing.assert_frame_equal(READERS[suffix](partial), READERS[suffix](full))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([full.name, partial.name])


def test_resume_of_a_finished_output_processes_nothing(tmp_path: Path, capsys):
    target = tmp_path / "out.csv"
    assert run(["predict", str(SAMPLE_AUDIO), "-q", "-o", str(target)], capsys)[0] == 0
    before = target.read_bytes()
    code, err = run(["predict", str(SAMPLE_AUDIO), "-o", str(target), "--resume"], capsys)
    assert code == 0 and "9 of 9 files already done, 0 to go" in err
    assert target.read_bytes() == before


def test_failed_rows_from_the_first_run_still_count_for_the_exit_code(tmp_path: Path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_broken.wav").write_bytes(b"garbage" * 100)
    sf.write(tmp_path / "in" / "b_good.wav", voice_like(2.0), 16_000)
    target = tmp_path / "out.jsonl"
    assert run(["predict", str(tmp_path / "in" / "a_broken.wav"), "-q", "-o", str(target)], capsys)[0] == 1
    code, _ = run(["predict", str(tmp_path / "in"), "-q", "-o", str(target), "--resume"], capsys)
    assert code == 1 and len(pd.read_json(target, lines=True)) == 2


def test_a_torn_last_line_is_cut_before_appending(tmp_path: Path, capsys):
    full, target = tmp_path / "full.csv", tmp_path / "out.csv"
    assert run(["predict", str(SAMPLE_AUDIO), "-q", "-o", str(full)], capsys)[0] == 0
    lines = full.read_text().splitlines(keepends=True)
    # what a SIGKILL in the middle of a write leaves: 3 whole rows and half of the 4th
    (tmp_path / ".out.csv.partial").write_text("".join(lines[:4]) + lines[4][:25])
    assert run(["predict", str(SAMPLE_AUDIO), "-q", "-o", str(target), "--resume"], capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(target), pd.read_csv(full))


def test_an_interrupted_runs_leftovers_are_not_clobbered_without_resume(tmp_path: Path, capsys):
    (tmp_path / ".out.csv.partial").write_text("precious\n")
    code, err = run(["predict", str(SAMPLE_AUDIO), "-o", str(tmp_path / "out.csv")], capsys)
    assert code == 2 and "--resume" in err
    assert (tmp_path / ".out.csv.partial").read_text() == "precious\n"
    code, err = run(["predict", str(SAMPLE_AUDIO), "-o", "-", "--resume"], capsys)
    assert code == 2 and "--resume needs an output file" in err


def _start_and_wait_for_rows(predict_many: list[str], target: Path, rows: int) -> subprocess.Popen:
    """Start `persona predict` and return once its in-progress file holds `rows` lines."""
    process = subprocess.Popen([PERSONA, *predict_many, "-q", "-o", str(target)], stderr=subprocess.PIPE, text=True)
    partial = target.with_name(f".{target.name}.partial")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if partial.exists() and partial.read_text().count("\n") >= rows:
            return process
        if process.poll() is not None:
            pytest.fail(f"persona ended before it could be interrupted: {process.stderr.read()}")
        time.sleep(0.01)
    process.kill()
    pytest.fail("no rows appeared within 60 s")


@pytest.mark.parametrize("suffix", [".csv", pytest.param(".parquet", marks=pytest.mark.slow)])
def test_sigkill_loses_at_most_the_batch_in_flight_and_resume_completes(
    suffix, predict_many, reference, tmp_path, capsys
):
    target = tmp_path / f"out{suffix}"
    process = _start_and_wait_for_rows(predict_many, target, rows=20)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    partial = tmp_path / f".out{suffix}.partial"
    assert not target.exists() and partial.exists()
    kept = partial.read_text().count("\n")
    assert kept >= 20

    # the resumed run only needs what the killed process left on disk: in-process, as in the tests above
    code, err = run([*predict_many, "-o", str(target), "--resume"], capsys)
    assert code == 0, err
    assert "already done" in err
    pd.testing.assert_frame_equal(READERS[suffix](target), reference(suffix))
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize(
    "stop",
    [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, marks=pytest.mark.slow, id="SIGTERM")],
)
def test_ctrl_c_publishes_a_valid_file_and_exits_130(stop, predict_many, reference, tmp_path, capsys):
    target = tmp_path / "out.parquet"
    process = _start_and_wait_for_rows(predict_many, target, rows=10)
    process.send_signal(stop)
    assert process.wait(timeout=60) == 130
    assert "interrupted" in process.stderr.read()
    written = pd.read_parquet(target)  # a complete Parquet file: footer written, readable
    assert 10 <= len(written) < len(reference(".parquet"))
    pd.testing.assert_frame_equal(written, reference(".parquet").iloc[: len(written)])
    assert [p.name for p in tmp_path.iterdir()] == [target.name]

    # the same command as the interrupted one (batch size included: batched and single-file
    # embeddings agree to ~1e-7, which can still flip the 4th decimal that rows are rounded to),
    # resumed in-process: it only needs what the interrupted process published
    assert run([*predict_many, "-q", "-o", str(target), "--resume"], capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(target), reference(".parquet"))


# --- resuming onto the wrong output ---------------------------------------------------------------


def test_resume_onto_an_output_of_other_inputs_is_refused(tmp_path: Path, capsys, tiny_model):
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    target = tmp_path / "out.csv"
    model = ["--model", str(tiny_model)]
    assert run(["predict", *map(str, clips[:3]), *model, "-q", "-o", str(target)], capsys)[0] == 0
    before = target.read_bytes()
    code, err = run(["predict", *map(str, clips[3:]), *model, "-o", str(target), "--resume"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        f"persona: error: cannot resume {target}: none of its 3 rows is from these inputs "
        "(is it the right file? --overwrite replaces it)"
    ]
    assert target.read_bytes() == before and not (tmp_path / ".out.csv.partial").exists()


def test_resume_with_some_rows_from_other_inputs_warns_and_keeps_them(tmp_path: Path, capsys, tiny_model):
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    target = tmp_path / "out.jsonl"
    model = ["--model", str(tiny_model)]
    assert run(["predict", *map(str, clips[:4]), *model, "-q", "-o", str(target)], capsys)[0] == 0
    code, err = run(["predict", *map(str, clips[2:6]), *model, "-o", str(target), "--resume"], capsys)
    assert code == 0 and f"resuming {target}: 2 of its 4 rows are from files not among these inputs" in err
    assert len(pd.read_json(target, lines=True)) == 6


def test_resume_with_another_model_is_refused(tmp_path: Path, capsys, tiny_model):
    clips = sorted(SAMPLE_AUDIO.glob("*.mp3"))
    target = tmp_path / "out.csv"
    assert run(["predict", *map(str, clips[:2]), "-q", "-o", str(target)], capsys)[0] == 0
    code, err = run(["predict", *map(str, clips), "--model", str(tiny_model), "-o", str(target), "--resume"], capsys)
    assert code == 2 and "its rows were made with encoder ge2e-layers+prosody, and this run uses mfcc" in err


def test_resume_onto_a_file_of_other_columns_is_refused(tmp_path: Path, capsys, tiny_model):
    target = tmp_path / "out.jsonl"
    target.write_text('{"path": "a.wav", "score": 1}\n')
    code, err = run(["predict", str(SAMPLE_AUDIO), "--model", str(tiny_model), "-o", str(target), "--resume"], capsys)
    assert code == 2 and "its columns are not persona's prediction columns" in err
