"""`persona predict --engine ray` on a local Ray instance started by the test: same rows as a local run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from conftest import SAMPLE_AUDIO, run_cli as run

if importlib.util.find_spec("ray") is None:
    pytest.skip("the ray extra is not installed (pip install 'persona-cli[ray]')", allow_module_level=True)


@pytest.mark.slow
def test_ray_rows_equal_the_local_rows(tmp_path: Path, capsys):
    """Starting Ray takes ~20 s on the 2-core machine, hence `slow`."""
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00")
    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"{p}\n" for p in [*sorted(SAMPLE_AUDIO.glob("*.mp3")), tmp_path / "broken.wav"]))
    code, _, _ = run(["predict", "--files-from", str(listing), "-o", str(tmp_path / "local.parquet"), "-q"], capsys)
    assert code == 1
    code, _, err = run(
        [
            "predict",
            "--files-from",
            str(listing),
            "--engine",
            "ray",
            "--workers",
            "2",
            "--batch-size",
            "4",
            "-o",
            str(tmp_path / "ray_out"),
            "-q",
        ],
        capsys,
    )
    assert code == 1, err
    local = pd.read_parquet(tmp_path / "local.parquet").sort_values("path", ignore_index=True)
    on_ray = pd.read_parquet(tmp_path / "ray_out").sort_values("path", ignore_index=True)
    assert len(on_ray) == len(local) == 10
    pd.testing.assert_frame_equal(on_ray, local, atol=1e-3)
    assert on_ray["error"].notna().sum() == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-o", "out.csv"], "Parquet dataset"),
        ([], "-o FOLDER"),
        (["-o", "OUT", "--resume"], "--resume"),
        (["-o", "OUT", "--normalize", "speaker"], "local engine"),
    ],
)
def test_ray_usage_errors_are_one_line(argv, message, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["predict", str(SAMPLE_AUDIO), "--engine", "ray", *argv], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_a_non_empty_output_folder_is_kept_unless_overwrite(tmp_path: Path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.parquet").write_bytes(b"x")
    code, _, err = run(["predict", str(SAMPLE_AUDIO), "--engine", "ray", "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and "not empty" in err
    assert (tmp_path / "out" / "keep.parquet").exists()
