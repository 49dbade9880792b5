"""Result writers: CSV, Parquet and JSON Lines, chosen from a table by format, all streaming.

Rows arrive in batches as the pipeline finishes them, so memory does not grow with the number of
files. A file target is written under a temporary name in the same folder and renamed when the
writer closes, so a reader never sees a half-written file under the final name.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from persona_cli.errors import UsageError

STDOUT = "-"
#: rows buffered before a Parquet row group is written: large groups read fast, small ones lose less
PARQUET_ROW_GROUP = 1024


class RowWriter:
    """Base for the writers: `write(rows)` any number of times, then `close()` (or use `with`)."""

    def __init__(self, stream: IO, schema: pa.Schema):
        self.stream = stream
        self.schema = schema

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Flush what is buffered; the stream itself is closed by the caller."""

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


def _plain(value: Any) -> Any:
    """NaN and missing values become empty cells; vectors become JSON arrays (for CSV)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class CsvWriter(RowWriter):
    def __init__(self, stream: IO, schema: pa.Schema):
        super().__init__(stream, schema)
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow(schema.names)

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            cells = [_plain(row[name]) for name in self.schema.names]
            self.writer.writerow(["" if c is None else json.dumps(c) if isinstance(c, list) else c for c in cells])
        self.stream.flush()


class JsonLinesWriter(RowWriter):
    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            record = {name: _plain(row[name]) for name in self.schema.names}
            self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()


class ParquetWriter(RowWriter):
    def __init__(self, stream: IO, schema: pa.Schema):
        super().__init__(stream, schema)
        self.writer = pq.ParquetWriter(stream, schema)
        self.pending: list[dict[str, Any]] = []

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        self.pending.extend(rows)
        if len(self.pending) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_pylist(self.pending, schema=self.schema))
            self.pending = []

    def finish(self) -> None:
        try:
            self._flush()
        finally:
            self.writer.close()


WRITERS: dict[str, type[RowWriter]] = {"csv": CsvWriter, "jsonl": JsonLinesWriter, "parquet": ParquetWriter}
_SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def resolve_format(target: str | None, fmt: str | None) -> str:
    """`--format` wins; else the extension of `-o`; stdout defaults to CSV."""
    if fmt:
        if fmt not in WRITERS:
            raise UsageError(f"unknown format {fmt!r}; choose one of: {', '.join(WRITERS)}")
        return fmt
    if target in (None, STDOUT):
        return "csv"
    suffix = Path(target).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise UsageError(f"cannot tell the format of {target!r} from its extension; use --format {{csv,jsonl,parquet}}")
    return _SUFFIX_FORMATS[suffix]


class OutputTarget:
    """Opens the writer for `-o TARGET` and, for files, publishes it under its final name on close."""

    def __init__(self, target: str | None, fmt: str | None, schema: pa.Schema, overwrite: bool = False):
        self.format = resolve_format(target, fmt)
        self.path = None if target in (None, STDOUT) else Path(target)
        if self.path is None and self.format == "parquet":
            raise UsageError("Parquet cannot be written to stdout; give -o FILE.parquet")
        if self.path is not None:
            if self.path.exists() and not overwrite:
                raise UsageError(f"output exists: {self.path} (use --overwrite to replace it)")
            if not self.path.parent.is_dir():
                raise UsageError(f"output folder does not exist: {self.path.parent}")
            if not os.access(self.path.parent, os.W_OK):
                raise UsageError(f"output folder is not writable: {self.path.parent}")
        self.schema = schema
        self.temp_path: Path | None = None

    def __enter__(self) -> RowWriter:
        if self.path is None:
            self.stream = sys.stdout
        else:
            binary = self.format == "parquet"
            handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
            self.temp_path = Path(name)
            self.stream = os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""}))
        self.writer = WRITERS[self.format](self.stream, self.schema)
        return self.writer

    def __exit__(self, *exc) -> None:
        # Rows already written are worth keeping even when the run stops early (Ctrl-C, a crash),
        # so the file is completed and published either way.
        if self.temp_path is None:
            self.writer.finish()
            return
        try:
            self.writer.finish()
        except BaseException:
            self.stream.close()
            self.temp_path.unlink(missing_ok=True)  # a file that could not be completed is not published
            raise
        self.stream.close()
        os.chmod(self.temp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give it an ordinary file's mode
        os.replace(self.temp_path, self.path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
