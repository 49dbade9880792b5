"""Reader for Mozilla Common Voice: validated.tsv + clips/, per language; age bucket and gender, no emotion."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from persona_cli.corpora.codebooks import AGE_BUCKETS
from persona_cli.corpora.common import LabelledClip, parse_gender, read_csv_rows
from persona_cli.errors import UsageError

log = logging.getLogger("persona")


def commonvoice_folders(root: Path) -> list[Path]:
    """The folder itself if it holds validated.tsv, else its per-language sub-folders that do."""
    if (root / "validated.tsv").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "validated.tsv").is_file())


def _read_commonvoice_folder(folder: Path) -> list[LabelledClip]:
    # Columns are read by name because releases add and reorder them (accents, variant,
    # sentence_id...); QUOTE_NONE because sentences contain unbalanced quote characters.
    text = (folder / "validated.tsv").read_text(encoding="utf-8")
    rows = read_csv_rows(text, delimiter="\t", quoting=csv.QUOTE_NONE)
    if rows and not {"client_id", "path"} <= rows[0].keys():
        raise UsageError(f"{folder / 'validated.tsv'} has no client_id and path columns")
    clips_dir = folder / "clips"
    # One directory listing instead of a stat per row: full releases have millions of rows.
    present = {p.name for p in clips_dir.iterdir()} if clips_dir.is_dir() else set()
    clips, missing, unlabelled = [], 0, 0
    for row in rows:
        name = (row.get("path") or "").strip()
        if name not in present:
            missing += 1
            continue
        gender = parse_gender(row.get("gender"))
        age = AGE_BUCKETS.get((row.get("age") or "").strip().lower())
        if gender is None and age is None:
            unlabelled += 1  # most of a full release: nothing for any task to learn from
            continue
        # client_id is one person across all languages, so it is not qualified by language
        speaker = f"commonvoice:{(row.get('client_id') or '').strip()}"
        clips.append(LabelledClip(clips_dir / name, "commonvoice", speaker, None, gender, age, None))
    if missing:
        log.warning(
            "commonvoice %s: %d of %d rows in validated.tsv name clips that are missing; skipped",
            folder,
            missing,
            len(rows),
        )
    if unlabelled:
        log.info("commonvoice %s: skipped %d rows with neither age nor gender", folder, unlabelled)
    return clips


def read_commonvoice(root: Path) -> list[LabelledClip]:
    """Common Voice: validated.tsv + clips/, in the folder or in each language sub-folder."""
    clips = [clip for folder in commonvoice_folders(root) for clip in _read_commonvoice_folder(folder)]
    return sorted(clips, key=lambda clip: clip.path)
