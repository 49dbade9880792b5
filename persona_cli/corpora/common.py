"""What every corpus reader shares: the LabelledClip they all return and the small helpers they use
to list audio, parse label cells and report skipped files."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from persona_cli.audio import AUDIO_EXTENSIONS
from persona_cli.corpora.codebooks import GENDER_SYNONYMS

log = logging.getLogger("persona")


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    corpus: str  # reader name, a key of READERS: "ravdess", "commonvoice", "baved", "manifest"...
    speaker: str  # corpus-qualified ("ravdess:12") so speaker-wise folds never mix corpora
    emotion: str | None  # one of EMOTIONS, or None when unlabelled or outside the six (masked)
    gender: str | None  # one of GENDERS, or None
    age: float | None  # years, or None
    emotion_raw: str | None  # the corpus's own label before mapping ("calm", "boredom"), for reports


def audio_files(*folders: Path) -> list[Path]:
    """Audio files directly inside each folder, sorted so every run reads the same order.

    Any extension `persona predict` walks counts: corpora come as WAV, FLAC, Opus or MP3 depending on
    who transcoded them, and a file that then fails to decode is reported rather than silently left out.
    """
    return sorted(
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def warn_skipped(corpus: str, root: Path, skipped: Sequence[Path], why: str) -> None:
    if skipped:
        log.warning("%s %s: skipped %d files %s (e.g. %s)", corpus, root, len(skipped), why, skipped[0].name)


def parse_gender(value: str | None) -> str | None:
    return GENDER_SYNONYMS.get((value or "").strip().lower())


def parse_years(value: str | None) -> float | None:
    """An age cell of a corpus's own speaker table; empty means unknown."""
    value = (value or "").strip()
    return float(value) if value else None


def read_csv_rows(text: str, **kwargs) -> list[dict[str, str]]:
    """Rows keyed by lower-cased, stripped column names, so header spelling varies harmlessly."""
    reader = csv.DictReader(io.StringIO(text), **kwargs)
    reader.fieldnames = [(name or "").strip().lower() for name in reader.fieldnames or []]
    return list(reader)


def label_file(root: Path, name: str) -> Path | None:
    """A corpus's own label file, in `root` or in the folder above when `root` is one part of the corpus
    (a LibriSpeech subset, a BAVED word folder); None when neither holds it."""
    for candidate in (root / name, root.parent / name):
        if candidate.is_file():
            return candidate
    return None
