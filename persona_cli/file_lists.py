"""`--files-from` lists: one path per line, or a CSV whose header names a `path` column.

A CSV may also carry a `speaker` column. `persona predict --normalize speaker` then groups files by
that column instead of by their parent folder, which is what a call-centre export (one flat folder,
speakers in a spreadsheet) needs. A speaker given for a folder applies to every file under it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from persona_cli.errors import UsageError

PATH_COLUMN = "path"
SPEAKER_COLUMN = "speaker"


@dataclass
class FileList:
    """What a `--files-from` list names: paths in listed order, and speakers where the list gives them."""

    paths: list[str] = field(default_factory=list)
    speakers: dict[str, str] = field(default_factory=dict)  # absolute path -> speaker label


def read_file_list(lines: Iterable[str], name: str) -> FileList:
    """Parse a list's lines (from a file or stdin; `name` is for messages)."""
    lines = [line.rstrip("\r\n") for line in lines]
    lines = [line for line in lines if line.strip()]
    if not lines or not _is_csv_header(lines[0]):
        return FileList(paths=lines)
    rows = csv.DictReader(lines, delimiter=_delimiter(lines[0]))
    listed = FileList()
    for line_number, row in enumerate(rows, start=2):
        path = (row.get(PATH_COLUMN) or "").strip()
        if not path:
            raise UsageError(f"--files-from {name}, line {line_number}: empty path")
        listed.paths.append(path)
        speaker = (row.get(SPEAKER_COLUMN) or "").strip()
        if speaker:
            listed.speakers[os.path.abspath(path)] = speaker
    return listed


def speaker_of(path: str | os.PathLike, speakers: Mapping[str, str]) -> str | None:
    """The speaker listed for this file or for the nearest folder above it; None if none is."""
    if not speakers:
        return None
    here = Path(os.path.abspath(path))
    for candidate in (here, *here.parents):
        if str(candidate) in speakers:
            return speakers[str(candidate)]
    return None


def _delimiter(header: str) -> str:
    return "\t" if "\t" in header else ","


def _is_csv_header(line: str) -> bool:
    # A plain list never starts with a line that is exactly a column named "path" among others,
    # unless a file is literally called "path": that one name is the price of no extra flag.
    return PATH_COLUMN in [cell.strip() for cell in next(csv.reader([line], delimiter=_delimiter(line)))]


__all__ = ["FileList", "read_file_list", "speaker_of"]
