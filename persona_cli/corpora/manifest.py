"""Reader for a manifest CSV: the user's own clips with path,speaker,emotion,gender,age columns."""

from __future__ import annotations

import math
from pathlib import Path

from persona_cli.corpora.codebooks import AGE_BUCKETS, EMOTION_SYNONYMS
from persona_cli.corpora.common import LabelledClip, parse_gender, read_csv_rows, warn_skipped
from persona_cli.errors import UsageError


def _manifest_age(value: str, where: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    if value.lower() in AGE_BUCKETS:  # lets a manifest re-label Common Voice-style buckets
        return AGE_BUCKETS[value.lower()]
    try:
        age = float(value)
    except ValueError:
        age = math.nan
    if not (math.isfinite(age) and 0 <= age < 150):
        raise UsageError(f"{where}: age {value!r} is not a number of years")
    return age


def read_manifest(csv_path: Path) -> list[LabelledClip]:
    """A CSV with header path,speaker,emotion,gender,age; empty cells are unlabelled."""
    rows = read_csv_rows(csv_path.read_text(encoding="utf-8-sig"))  # -sig: spreadsheets write a BOM
    if rows and "path" not in rows[0]:
        raise UsageError(f"{csv_path}: no 'path' column (expected path,speaker,emotion,gender,age)")
    clips, missing = [], []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        name = (row.get("path") or "").strip()
        if not name:
            raise UsageError(f"{csv_path} line {line}: empty path")
        path = csv_path.parent / name  # an absolute path survives the join unchanged
        if not path.is_file():
            missing.append(path)
            continue
        raw = (row.get("emotion") or "").strip() or None
        speaker = (row.get("speaker") or "").strip() or str(path)  # no speaker: each clip its own
        clips.append(
            LabelledClip(
                path,
                "manifest",
                f"manifest:{speaker}",
                EMOTION_SYNONYMS.get(raw.lower()) if raw else None,
                parse_gender(row.get("gender")),
                _manifest_age(row.get("age") or "", f"{csv_path} line {line}"),
                raw,
            )
        )
    warn_skipped("manifest", csv_path, missing, "listed but not found")
    return clips
