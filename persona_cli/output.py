"""Result writers: CSV, Parquet and JSON Lines, chosen from a table by format, all streaming.

Rows arrive in batches as the pipeline finishes them, so memory does not grow with the number of
files. Nothing is lost when a run stops early:

- A file target is written as `.NAME.partial` beside it and renamed to NAME when the run ends
  (normally, by error, or by Ctrl-C), so a reader never sees a half-written file under the final
  name. A run killed outright (SIGKILL, power loss) leaves the `.partial` file, and `--resume`
  continues from it.
- Each batch is appended with one write call and flushed, so an interruption never leaves half a
  row; a SIGKILL inside that write can leave a torn last line, which resume cuts off.
- Parquet has no readable footer until it is closed, so a killed Parquet writer would lose
  everything. Parquet runs therefore journal their rows as JSON Lines in the `.partial` file and
  convert the journal to Parquet row groups at the end, reading it back in bounded chunks.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from persona_cli.errors import UsageError

log = logging.getLogger("persona")

STDOUT = "-"
#: columns naming what made a row: resuming refuses an output whose rows another setting made
MADE_BY = ("encoder", "model", "normalization")
#: rows per Parquet row group: large groups read fast
PARQUET_ROW_GROUP = 1024
#: bytes Arrow parses at a time when it converts the journal; a row must fit in one (a 1,024-d vector
#: takes about 20 kB)
JOURNAL_BLOCK = 8 << 20


def _plain(value: Any) -> Any:
    """NaN and missing values become empty cells."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class RowWriter:
    """Appends batches of rows to a text stream: `write(rows)` any number of times."""

    def __init__(self, stream: IO[str], schema: pa.Schema):
        self.stream = stream
        self.schema = schema

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        # one write call per batch: an interrupt lands between batches, never inside a row
        self.stream.write(self.format(rows))
        self.stream.flush()

    def format(self, rows: Sequence[dict[str, Any]]) -> str:
        raise NotImplementedError

    def header(self) -> str:
        """Text that starts a new file of this format."""
        return ""


class CsvWriter(RowWriter):
    def header(self) -> str:
        return self._lines([self.schema.names])

    def format(self, rows: Sequence[dict[str, Any]]) -> str:
        cells = ([_csv_cell(_plain(row[name])) for name in self.schema.names] for row in rows)
        return self._lines(cells)

    @staticmethod
    def _lines(rows) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list) else value  # vectors as JSON arrays


class JsonLinesWriter(RowWriter):
    def format(self, rows: Sequence[dict[str, Any]]) -> str:
        return "".join(
            json.dumps({name: _plain(row[name]) for name in self.schema.names}, ensure_ascii=False) + "\n"
            for row in rows
        )


class RttmWriter(RowWriter):
    """NIST's Rich Transcription Time Marked lines, which diarization scorers and viewers read: one
    `SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>` per segment row, the file
    named by its stem (RTTM fields cannot hold spaces, so these become underscores). Rows without a
    segment (a recording that failed) have no line; the other formats carry their errors."""

    def format(self, rows: Sequence[dict[str, Any]]) -> str:
        return "".join(
            f"SPEAKER {_rttm_name(row['path'])} 1 {row['start_s']:.3f} {row['end_s'] - row['start_s']:.3f} "
            f"<NA> <NA> {row['speaker']} <NA> <NA>\n"
            for row in rows
            if row.get("start_s") is not None
        )


def _rttm_name(path: str | None) -> str:
    return "_".join(Path(path or "waveform").stem.split()) or "_"


#: the writer that fills the `.partial` file for each output format
JOURNALS: dict[str, type[RowWriter]] = {
    "csv": CsvWriter,
    "jsonl": JsonLinesWriter,
    "parquet": JsonLinesWriter,
    "rttm": RttmWriter,
}
FORMATS = tuple(JOURNALS)
#: the formats that can hold any rows; RTTM holds only segments
TABLE_FORMATS = ("csv", "jsonl", "parquet")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".rttm": "rttm",
}


def resolve_format(target: str | None, fmt: str | None) -> str:
    """`--format`, else the extension of `-o`; stdout defaults to CSV. A `--format` that contradicts a
    known extension (`-o m.csv --format parquet`) is refused: the file would lie about its content."""
    suffix = "" if target in (None, STDOUT) else Path(target).suffix.lower()
    if fmt:
        if fmt not in JOURNALS:
            raise UsageError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        implied = _SUFFIX_FORMATS.get(suffix)
        if implied is not None and implied != fmt:
            raise UsageError(f"--format {fmt} contradicts the {suffix} extension of -o {target}; change one of them")
        return fmt
    if target in (None, STDOUT):
        return "csv"
    if suffix not in _SUFFIX_FORMATS:
        raise UsageError(
            f"cannot tell the format of {target!r} from its extension; use --format {{{','.join(FORMATS)}}}"
        )
    return _SUFFIX_FORMATS[suffix]


class OutputTarget:
    """The `-o` destination: refuses to clobber, resumes, and publishes the file under its name at the end.

    Use as a context manager; it yields a RowWriter. With `resume=True`, `done` holds the paths
    already in the existing output (or in an interrupted run's `.partial` file), whose rows are
    kept; the caller processes only the other files, and their rows are appended.
    """

    def __init__(
        self, target: str | None, fmt: str | None, schema: pa.Schema, overwrite: bool = False, resume: bool = False
    ):
        self.format = resolve_format(target, fmt)
        if self.format == "rttm" and "segment" not in schema.names:
            raise UsageError("RTTM holds who speaks when: it needs --per segment")
        if self.format == "rttm" and resume:
            raise UsageError("--resume needs a CSV, JSONL or Parquet output; RTTM keeps no record of failed files")
        self.schema = schema
        self.path = None if target in (None, STDOUT) else Path(target)
        self.resume = resume
        self.done: set[str] = set()  # paths whose rows are already written (resume)
        self.done_failed = 0  # how many of those rows carry an error
        self._republished = False  # resuming made `.partial` from the published file
        # the values those rows hold in the columns that name what made them (encoder, model...)
        self.done_made_by: dict[str, set[str]] = {name: set() for name in MADE_BY if name in schema.names}
        if self.path is None:
            if self.format == "parquet":
                raise UsageError("Parquet cannot be written to stdout; give -o FILE.parquet")
            if resume:
                raise UsageError("--resume needs an output file (-o FILE)")
            return
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        if self.path.is_dir():
            raise UsageError(
                f"-o {target} is a folder; give a file name, such as {self.path / ('predictions.' + self.format)}"
            )
        if not self.path.parent.is_dir():
            raise UsageError(f"output folder does not exist: {self.path.parent}")
        if not os.access(self.path.parent, os.W_OK):
            raise UsageError(f"output folder is not writable: {self.path.parent}")
        if resume:
            self._load_existing()
        elif not overwrite:
            if self.path.exists():
                raise UsageError(
                    f"output exists: {self.path} (use --resume to finish it, or --overwrite to replace it)"
                )
            if self.partial.exists():
                raise UsageError(f"an interrupted run left {self.partial}: use --resume to continue it, or --overwrite")

    # --- resuming --------------------------------------------------------------------------

    def _load_existing(self) -> None:
        """Make `.partial` hold every row written so far, and note which paths those rows cover."""
        assert self.path is not None  # only file targets resume
        if self.partial.exists():
            _cut_torn_last_line(self.partial)  # a killed run is newer than any published file
        elif self.path.exists():
            self._republish_as_partial()
            self._republished = True
        for row in self._journal_rows():
            if not self.done and sorted(row) != sorted(self.schema.names):
                self._refuse(f"its columns are not persona's {self._kind()} columns")
            self.done.add(row["path"])
            self.done_failed += bool(row.get("error"))
            for name, values in self.done_made_by.items():
                if row.get(name):
                    values.add(str(row[name]))

    def _refuse(self, why: str) -> NoReturn:
        """A UsageError, leaving the output as it was found: no `.partial` copy made only to resume."""
        if self._republished:
            self.partial.unlink(missing_ok=True)
        raise UsageError(f"cannot resume {self.path}: {why}")

    def _kind(self) -> str:
        if "segment" in self.schema.names:
            return "segment"
        if "speech_s" in self.schema.names:
            return "speaker"
        return "prediction" if "model" in self.schema.names else "embedding"

    def check_resume(self, paths: Iterable[str], made_by: Mapping[str, str]) -> None:
        """Refuse to append to an output made by other settings (`made_by`: this run's encoder, model
        and normalisation) or from other inputs (none of its rows' paths among `paths`, as rows show
        them); warn when only some of its rows are from other inputs. Nothing to check without --resume."""
        if not self.done:
            return
        for name, value in made_by.items():
            earlier = self.done_made_by.get(name, set())
            if earlier and earlier != {value}:
                self._refuse(
                    f"its rows were made with {name} {', '.join(sorted(earlier))}, "
                    f"and this run uses {value}; resume with the same settings, or write another file"
                )
        foreign = len(self.done - set(paths))
        if foreign == len(self.done):
            self._refuse(
                f"none of its {len(self.done)} rows is from these inputs (is it the right file? --overwrite replaces it)"
            )
        if foreign:
            log.warning(
                "resuming %s: %d of its %d rows are from files not among these inputs; they are kept",
                self.path,
                foreign,
                len(self.done),
            )

    def _republish_as_partial(self) -> None:
        assert self.path is not None  # only file targets resume
        if self.format == "parquet":
            journal = JsonLinesWriter(io.StringIO(), self.schema)  # only its format() is used
            try:
                with self.partial.open("w", encoding="utf-8") as stream:
                    for batch in pq.ParquetFile(self.path).iter_batches(batch_size=PARQUET_ROW_GROUP):
                        stream.write(journal.format(batch.to_pylist()))
            except (pa.ArrowException, OSError) as error:
                self.partial.unlink(missing_ok=True)
                raise UsageError(f"cannot resume from {self.path}: {error}") from None
        else:
            self.partial.write_bytes(self.path.read_bytes())
            _cut_torn_last_line(self.partial)

    def _journal_rows(self) -> Iterator[dict[str, Any]]:
        try:
            with self.partial.open(encoding="utf-8", newline="") as stream:
                if self.format == "csv":
                    reader = csv.DictReader(stream)
                    if reader.fieldnames and reader.fieldnames != self.schema.names:
                        self._refuse(f"its columns are not persona's {self._kind()} columns")
                    yield from reader
                else:
                    for line in stream:
                        yield json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot resume from {self.partial}: it is damaged ({error})") from None

    # --- writing ---------------------------------------------------------------------------

    def __enter__(self) -> RowWriter:
        if self.path is None:
            self.stream = sys.stdout
            self.writer = JOURNALS[self.format](self.stream, self.schema)
            self.stream.write(self.writer.header())
            return self.writer
        # resuming: .partial already holds the earlier rows (and the CSV header) to append to
        appending = self.resume and self.partial.exists() and self.partial.stat().st_size > 0
        self.stream = self.partial.open("a" if appending else "w", encoding="utf-8", newline="")
        self.writer = JOURNALS[self.format](self.stream, self.schema)
        if not appending:
            self.stream.write(self.writer.header())
            self.stream.flush()
        return self.writer

    def __exit__(self, *exc) -> None:
        # Rows already written are worth keeping even when the run stops early (Ctrl-C, a crash),
        # so the file is completed and published either way.
        if self.path is None:
            self.stream.flush()
            return
        self.stream.close()
        if self.format == "parquet":
            self._convert_journal_to_parquet()
        else:
            os.replace(self.partial, self.path)

    def _convert_journal_to_parquet(self) -> None:
        assert self.path is not None  # stdout cannot take Parquet
        converting = self.path.with_name(f".{self.path.name}.converting")
        try:
            with pq.ParquetWriter(str(converting), self.schema) as parquet:
                for group in _row_groups(self._journal_batches(), self.schema, PARQUET_ROW_GROUP):
                    parquet.write_table(group)
        except BaseException:
            converting.unlink(missing_ok=True)  # the journal stays: --resume can still finish the job
            raise
        os.replace(converting, self.path)
        self.partial.unlink()

    def _journal_batches(self) -> Iterator[pa.RecordBatch]:
        """The JSON-lines journal parsed by Arrow itself, block by block. Going through Python dicts
        and `Table.from_pylist` instead makes pyarrow import pandas (a third of a second) and parse
        every value twice."""
        if self.partial.stat().st_size == 0:
            return  # Arrow refuses an empty stream; a run without rows still gets its empty table
        parse = pajson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="error")
        yield from pajson.open_json(self.partial, pajson.ReadOptions(block_size=JOURNAL_BLOCK), parse)


def _row_groups(batches: Iterator[pa.RecordBatch], schema: pa.Schema, size: int) -> Iterator[pa.Table]:
    """Batches of any size regrouped into tables of `size` rows, the last one shorter."""
    pending = pa.Table.from_batches([], schema)
    for batch in batches:
        pending = pa.concat_tables([pending, pa.Table.from_batches([batch])])
        while pending.num_rows >= size:
            yield pending.slice(0, size)
            pending = pending.slice(size)
    if pending.num_rows:
        yield pending


def _cut_torn_last_line(path: Path) -> None:
    """Drop an incomplete last line (a SIGKILL in the middle of a write) so appending stays valid."""
    with path.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        position = size
        while position > 0:
            step = min(65536, position)
            handle.seek(position - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline != -1:
                end = position - step + newline + 1
                if end != size:
                    handle.truncate(end)
                return
            position -= step
        handle.truncate(0)
