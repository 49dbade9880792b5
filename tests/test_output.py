"""output.py: CSV / JSON Lines / Parquet writers read back with pandas and pyarrow, format resolution,
overwrite and folder checks, and publishing through a temporary file."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE_AUDIO, run_cli
from persona_cli.errors import UsageError
from persona_cli.labels import EMOTIONS
from persona_cli.output import PARQUET_ROW_GROUP, OutputTarget, resolve_format
from persona_cli.results import EMBEDDING_SCHEMA, PREDICTION_SCHEMA

FORMATS = ("csv", "jsonl", "parquet")
SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
#: a comma, a double quote, non-ASCII letters and CJK: everything CSV quoting and UTF-8 must survive
AWKWARD_PATH = 'clips/Zoë, "the quiet one"/話者_ä.wav'


def prediction_row(i: int, path: str | None = None, error: str | None = None) -> dict:
    """A PREDICTION_SCHEMA row; with `error`, a failed file's row (predictions None)."""
    row = {name: None for name in PREDICTION_SCHEMA.names}
    row.update(path=path or f"audio/clip_{i:04d}.wav", encoder="ge2e", model="persona-ge2e", error=error)
    if error is None:
        probs = np.random.default_rng(i).dirichlet(np.ones(len(EMOTIONS))).round(4)
        row.update({f"prob_{e}": float(p) for e, p in zip(EMOTIONS, probs)})
        row.update(
            duration_s=round(1.0 + i * 0.137, 3),
            emotion=EMOTIONS[int(probs.argmax())],
            emotion_confidence=float(probs.max()),
            gender=("female", "male")[i % 2],
            gender_confidence=0.5 + (i % 50) / 100,
            age=round(20 + i * 0.7, 1),
        )
    return row


def sample_batches() -> list[list[dict]]:
    return [
        [prediction_row(0), prediction_row(1, path=AWKWARD_PATH)],
        [prediction_row(2, path="broken.wav", error="decode error: flac decoder lost sync")],
        [prediction_row(3), prediction_row(4), prediction_row(5)],
    ]


def read_back(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path, encoding="utf-8")
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, encoding="utf-8")
    return pd.read_parquet(path)


def write(
    path: Path | str | None, fmt: str | None, batches: list[list[dict]], schema: pa.Schema = PREDICTION_SCHEMA, **kwargs
) -> None:
    with OutputTarget(None if path is None else str(path), fmt, schema, **kwargs) as writer:
        for batch in batches:
            writer.write(batch)


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def assert_rows_equal(frame: pd.DataFrame, rows: list[dict]) -> None:
    assert list(frame.columns) == PREDICTION_SCHEMA.names
    assert len(frame) == len(rows)
    for got, want in zip(frame.to_dict("records"), rows):
        for name in PREDICTION_SCHEMA.names:
            if want[name] is None:
                assert is_missing(got[name]), (name, got[name])
            elif isinstance(want[name], float):
                assert got[name] == pytest.approx(want[name], abs=1e-12), name
            else:
                assert got[name] == want[name], name


# --- every format round-trips through pandas ---------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_prediction_rows_round_trip(tmp_path, fmt):
    path = tmp_path / f"predictions{SUFFIX[fmt]}"
    batches = sample_batches()

    write(path, None, batches)

    frame = read_back(path, fmt)
    assert_rows_equal(frame, [row for batch in batches for row in batch])
    failed = frame.iloc[2]
    assert failed["path"] == "broken.wav" and failed["error"] == "decode error: flac decoder lost sync"
    assert all(is_missing(failed[name]) for name in ("duration_s", "emotion", "age", "prob_anger"))
    assert frame.iloc[1]["path"] == AWKWARD_PATH


def test_csv_cells_are_plain_text(tmp_path):
    path = tmp_path / "p.csv"
    write(path, None, sample_batches())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(PREDICTION_SCHEMA.names)
    assert len(lines) == 1 + 6
    assert '"clips/Zoë, ""the quiet one""/話者_ä.wav"' in lines[2]  # RFC 4180 quoting, UTF-8
    # a failed row: empty cells, not "None" or "nan"
    assert lines[3].startswith("broken.wav,,,")
    assert "None" not in path.read_text() and "nan" not in path.read_text().lower()


def test_jsonl_is_strict_json_with_nulls(tmp_path):
    path = tmp_path / "p.jsonl"
    row = prediction_row(7)
    row["age"] = float("nan")  # NaN is not JSON: it must become null
    write(path, None, [[row], sample_batches()[1]])

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    records = [json.loads(line, parse_constant=no_constants) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [list(r) for r in records] == [PREDICTION_SCHEMA.names] * 2
    assert records[0]["age"] is None and records[0]["emotion"] == row["emotion"]
    assert records[1]["emotion"] is None and records[1]["error"].startswith("decode error")


def test_jsonl_keeps_non_ascii_as_utf8(tmp_path):
    path = tmp_path / "p.jsonl"
    write(path, None, [[prediction_row(1, path=AWKWARD_PATH)]])
    assert "話者_ä" in path.read_bytes().decode("utf-8")


def test_parquet_uses_the_schema_types(tmp_path):
    path = tmp_path / "p.parquet"
    write(path, None, sample_batches())
    table = pq.read_table(path)
    assert table.schema.equals(PREDICTION_SCHEMA, check_metadata=False)
    assert table.column("emotion").null_count == 1 and table.column("error").null_count == 5


# --- embeddings -----------------------------------------------------------------------------------------


def embedding_rows() -> list[dict]:
    rng = np.random.default_rng(3)
    first, last = rng.random(256, np.float32).tolist(), rng.standard_normal(256).astype(np.float32).tolist()
    return [
        {"path": "a.wav", "duration_s": 2.5, "encoder": "ge2e", "vector": first, "error": None},
        {"path": AWKWARD_PATH, "duration_s": None, "encoder": "ge2e", "vector": None, "error": "not an audio file"},
        {"path": "c.wav", "duration_s": 31.0, "encoder": "ge2e", "vector": last, "error": None},
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_embedding_rows_round_trip(tmp_path, fmt):
    path = tmp_path / f"embeddings{SUFFIX[fmt]}"
    rows = embedding_rows()

    write(path, None, [rows[:1], rows[1:]], schema=EMBEDDING_SCHEMA)

    frame = read_back(path, fmt)
    assert list(frame.columns) == EMBEDDING_SCHEMA.names
    assert frame["path"].tolist() == [r["path"] for r in rows]
    vectors = frame["vector"].tolist()
    if fmt == "csv":  # CSV holds the vector as a JSON array in one cell
        vectors = [json.loads(v) if isinstance(v, str) else v for v in vectors]
    for got, want in zip(vectors, rows):
        if want["vector"] is None:
            assert got is None or (isinstance(got, float) and math.isnan(got))
        else:
            np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want["vector"], np.float32))
    assert frame["error"].iloc[1] == "not an audio file" and is_missing(frame["error"].iloc[0])
    assert is_missing(frame["duration_s"].iloc[1]) and frame["duration_s"].iloc[2] == 31.0


def test_parquet_vector_is_a_list_of_float32(tmp_path):
    path = tmp_path / "e.parquet"
    write(path, None, [embedding_rows()], schema=EMBEDDING_SCHEMA)
    table = pq.read_table(path)
    assert table.schema.field("vector").type == pa.list_(pa.float32())
    assert table.column("vector").null_count == 1
    assert len(table.column("vector")[0].as_py()) == 256


def test_parquet_many_rows_make_several_row_groups(tmp_path):
    path = tmp_path / "many.parquet"
    n = 2 * PARQUET_ROW_GROUP + 500
    rows = [prediction_row(i) for i in range(n)]

    write(path, None, [rows[i : i + 100] for i in range(0, n, 100)])

    parquet = pq.ParquetFile(path)
    assert parquet.num_row_groups > 1
    sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
    assert sum(sizes) == n
    assert all(size >= PARQUET_ROW_GROUP for size in sizes[:-1])
    frame = pd.read_parquet(path)
    assert frame["path"].tolist() == [r["path"] for r in rows]  # order kept across groups


# --- choosing the format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("out.csv", "csv"),
        ("out.jsonl", "jsonl"),
        ("out.ndjson", "jsonl"),
        ("out.parquet", "parquet"),
        ("dir.v2/OUT.CSV", "csv"),
        pytest.param(None, "csv", id="no-target-csv"),
        pytest.param("-", "csv", id="dash-csv"),
    ],
)
def test_format_from_extension(target, expected):
    assert resolve_format(target, None) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_option_names_the_format_of_unknown_extensions_and_stdout(fmt):
    assert resolve_format(f"results.{fmt}", fmt) == fmt
    assert resolve_format("results.txt", fmt) == fmt
    assert resolve_format("results", fmt) == fmt
    assert resolve_format("-", fmt) == fmt


@pytest.mark.parametrize(("target", "fmt"), [("m.csv", "parquet"), ("m.parquet", "csv"), ("M.JSONL", "csv")])
def test_format_option_contradicting_the_extension_is_refused(target, fmt):
    with pytest.raises(UsageError, match=f"--format {fmt} contradicts"):
        resolve_format(target, fmt)


def test_output_that_is_a_folder_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    code, out, err = run_cli(
        ["predict", str(SAMPLE_AUDIO), "-o", str(tmp_path / "out"), "--format", "csv", "--overwrite"], capsys
    )
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"persona: error: -o {tmp_path / 'out'} is a folder; give a file name, such as {tmp_path / 'out' / 'predictions.csv'}"
    ]
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("target", ["results.txt", "results", "results.csv.gz", "results.xlsx"])
def test_unknown_extension_is_a_usage_error(target):
    with pytest.raises(UsageError, match="--format"):
        resolve_format(target, None)


def test_unknown_format_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown format 'xml'"):
        resolve_format("out.csv", "xml")


def test_format_option_is_what_gets_written(tmp_path):
    path = tmp_path / "results.txt"
    write(path, "jsonl", sample_batches())
    assert_rows_equal(pd.read_json(path, lines=True), [r for b in sample_batches() for r in b])


@pytest.mark.parametrize("target", [None, "-"], ids=["no-target", "dash"])
def test_parquet_to_stdout_is_a_usage_error(target):
    with pytest.raises(UsageError, match="stdout"):
        OutputTarget(target, "parquet", PREDICTION_SCHEMA)


@pytest.mark.parametrize("target", [None, "-"], ids=["no-target", "dash"])
def test_stdout_defaults_to_csv(capsys, target):
    write(target, None, sample_batches())
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == ",".join(PREDICTION_SCHEMA.names)
    assert len(lines) == 7 and lines[1].startswith("audio/clip_0000.wav,")


def test_stdout_jsonl(capsys):
    write("-", "jsonl", sample_batches())
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records][:2] == ["audio/clip_0000.wav", AWKWARD_PATH]


# --- overwrite and folders ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_output_is_refused_without_overwrite(tmp_path, fmt):
    path = tmp_path / f"out{SUFFIX[fmt]}"
    path.write_bytes(b"precious earlier results\n")

    with pytest.raises(UsageError, match="--overwrite"):
        write(path, None, sample_batches())

    assert path.read_bytes() == b"precious earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_output_is_replaced_with_overwrite(tmp_path, fmt):
    path = tmp_path / f"out{SUFFIX[fmt]}"
    path.write_bytes(b"old\n")
    write(path, None, sample_batches(), overwrite=True)
    assert_rows_equal(read_back(path, fmt), [r for b in sample_batches() for r in b])


def test_missing_output_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="folder does not exist"):
        OutputTarget(str(tmp_path / "no" / "such" / "out.csv"), None, PREDICTION_SCHEMA)
    assert not (tmp_path / "no").exists()


# --- publishing through a temporary file -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_file_appears_only_when_complete(tmp_path, fmt):
    path = tmp_path / f"out{SUFFIX[fmt]}"
    batches = sample_batches()

    with OutputTarget(str(path), None, PREDICTION_SCHEMA) as writer:
        writer.write(batches[0])
        assert not path.exists()
        # the fixed name is what lets --resume find an interrupted run's rows
        assert [p.name for p in tmp_path.iterdir()] == [f".{path.name}.partial"]
        for batch in batches[1:]:
            writer.write(batch)
        assert not path.exists()

    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert_rows_equal(read_back(path, fmt), [r for b in batches for r in b])


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_written_before_an_error_are_published(tmp_path, fmt):
    path = tmp_path / f"out{SUFFIX[fmt]}"
    batches = sample_batches()

    with pytest.raises(Interrupted):
        with OutputTarget(str(path), None, PREDICTION_SCHEMA) as writer:
            writer.write(batches[0])
            writer.write(batches[1])
            raise Interrupted

    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert_rows_equal(read_back(path, fmt), batches[0] + batches[1])
    if fmt == "parquet":
        assert pq.ParquetFile(path).metadata.num_rows == 3


def test_empty_run_still_writes_a_valid_file(tmp_path):
    path = tmp_path / "empty.parquet"
    write(path, None, [])
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.schema.names == PREDICTION_SCHEMA.names
    csv_path = tmp_path / "empty.csv"
    write(csv_path, None, [])
    assert csv_path.read_text() == ",".join(PREDICTION_SCHEMA.names) + "\n"


# --- permissions and failures ------------------------------------------------------------------------


def test_published_file_has_ordinary_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        reference = tmp_path / "plain.csv"
        reference.write_text("x\n")
        path = tmp_path / "out.csv"
        write(path, None, sample_batches())
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode) == 0o644


def test_failed_parquet_conversion_publishes_nothing_but_keeps_the_journal(tmp_path):
    path = tmp_path / "out.parquet"
    bad = dict(prediction_row(1), duration_s="not a number")
    with pytest.raises(pa.ArrowInvalid):
        write(path, None, [[prediction_row(0)], [bad]])
    # no half-converted Parquet under any name; the JSONL journal stays so no row is lost
    assert [p.name for p in tmp_path.iterdir()] == [".out.parquet.partial"]
    assert len((tmp_path / ".out.parquet.partial").read_text().splitlines()) == 2
