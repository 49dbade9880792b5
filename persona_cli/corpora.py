"""Readers for labelled speech corpora: each turns one corpus layout into a list of LabelledClip.

Every corpus labels only some of the three tasks (RAVDESS has no ages, Common Voice no emotions), so
a clip carries None for whatever its corpus does not say, and training masks that task's loss.
Readers only look at file names and label files; they never decode audio.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from persona_cli.corpus_labels import (
    AGE_BUCKETS,
    CREMA_EMOTIONS,
    EMODB_EMOTIONS,
    EMODB_SPEAKERS,
    EMOTION_SYNONYMS,
    GENDER_SYNONYMS,
    RAVDESS_EMOTIONS,
    TESS_EMOTIONS,
    TESS_SPEAKER_AGES,
)
from persona_cli.errors import UsageError

log = logging.getLogger("persona")


# Audio a corpus folder may hold; RAVDESS and EmoDB come as WAV originally, FLAC once transcoded.
AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    corpus: str  # reader name: "ravdess", "emodb", "commonvoice", "crema-d", "tess", "manifest"
    speaker: str  # corpus-qualified ("ravdess:12") so speaker-wise folds never mix corpora
    emotion: str | None  # one of EMOTIONS, or None when unlabelled or outside the six (masked)
    gender: str | None  # one of GENDERS, or None
    age: float | None  # years, or None
    emotion_raw: str | None  # the corpus's own label before mapping ("calm", "boredom"), for reports


# File-name patterns: a file that does not match is not a clip of that corpus (and is counted).
RAVDESS_NAME = re.compile(r"^\d\d-\d\d-(?P<emotion>\d\d)-\d\d-\d\d-\d\d-(?P<actor>\d\d)$")
EMODB_NAME = re.compile(r"^(?P<speaker>\d\d)[a-z]\d\d(?P<emotion>[A-Z])[a-z]$")
CREMA_NAME = re.compile(r"^(?P<actor>\d{4})_[A-Z]{3}_(?P<emotion>[A-Z]{3})_[A-Z]{2}$")
TESS_NAME = re.compile(r"^(?P<speaker>OAF|YAF)_.+_(?P<emotion>[A-Za-z]+)$", re.IGNORECASE)
ACTOR_FOLDER = re.compile(r"^Actor_\d+$")


# --- small helpers ---------------------------------------------------------------------------------


def _audio_files(*folders: Path) -> list[Path]:
    """Audio files directly inside each folder, sorted so every run reads the same order."""
    return sorted(
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
    )


def _warn_skipped(corpus: str, root: Path, skipped: Sequence[Path], why: str) -> None:
    if skipped:
        log.warning("%s %s: skipped %d files %s (e.g. %s)", corpus, root, len(skipped), why, skipped[0].name)


def _gender(value: str | None) -> str | None:
    return GENDER_SYNONYMS.get((value or "").strip().lower())


def _years(value: str | None) -> float | None:
    """An age cell of a corpus's own speaker table; empty means unknown."""
    value = (value or "").strip()
    return float(value) if value else None


def _read_csv(text: str, **kwargs) -> list[dict[str, str]]:
    """Rows keyed by lower-cased, stripped column names, so header spelling varies harmlessly."""
    reader = csv.DictReader(io.StringIO(text), **kwargs)
    reader.fieldnames = [(name or "").strip().lower() for name in reader.fieldnames or []]
    return list(reader)


# --- readers ---------------------------------------------------------------------------------------


def read_ravdess(root: Path) -> list[LabelledClip]:
    """RAVDESS: Actor_NN/ folders (or one of them) of 03-01-06-01-02-01-12.wav/.flac.

    Song clips (channel 02) are kept if present: the folder the user names decides what is read.
    """
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir() and ACTOR_FOLDER.match(p.name))
    clips, skipped = [], []
    for path in _audio_files(*folders):
        m = RAVDESS_NAME.match(path.stem)
        if not m or m["emotion"] not in RAVDESS_EMOTIONS:
            skipped.append(path)
            continue
        raw, emotion = RAVDESS_EMOTIONS[m["emotion"]]
        actor = m["actor"]  # the actor number in the name is authoritative, not the folder
        gender = "male" if int(actor) % 2 else "female"  # RAVDESS convention: odd actors are male
        clips.append(LabelledClip(path, "ravdess", f"ravdess:{actor}", emotion, gender, None, raw))
    _warn_skipped("ravdess", root, skipped, "not named modality-channel-emotion-...-actor")
    return clips


def _emodb_speakers(root: Path) -> dict[str, tuple[str | None, float | None]]:
    table = root / "speakers.csv"
    if not table.is_file():
        return dict(EMODB_SPEAKERS)
    return {
        row["speaker"].strip().zfill(2): (_gender(row.get("sex")), _years(row.get("age")))
        for row in _read_csv(table.read_text(encoding="utf-8-sig"))
    }


def read_emodb(root: Path) -> list[LabelledClip]:
    """EmoDB: wav/03a01Fa.wav (speaker, text, emotion letter, version) plus speakers.csv."""
    return _read_named_clips(
        "emodb",
        root,
        root / "wav",
        EMODB_NAME,
        EMODB_EMOTIONS,
        "speaker",
        _emodb_speakers(root),
        "not named like 03a01Fa",
    )


def _read_named_clips(
    corpus: str,
    root: Path,
    folder: Path,
    pattern: re.Pattern,
    emotions: Mapping[str, tuple[str, str | None]],
    speaker_group: str,
    demographics: dict[str, tuple[str | None, float | None]],
    expected: str,
) -> list[LabelledClip]:
    """Clips whose file names carry speaker and emotion (EmoDB, CREMA-D); sex and age from a table."""
    clips, skipped = [], []
    for path in _audio_files(folder, root):
        m = pattern.match(path.stem)
        if not m or m["emotion"] not in emotions:
            skipped.append(path)
            continue
        raw, emotion = emotions[m["emotion"]]
        speaker = m[speaker_group]
        gender, age = demographics.get(speaker, (None, None))
        clips.append(LabelledClip(path, corpus, f"{corpus}:{speaker}", emotion, gender, age, raw))
    _warn_skipped(corpus, root, skipped, expected)
    return clips


def _commonvoice_folders(root: Path) -> list[Path]:
    """The folder itself if it holds validated.tsv, else its per-language sub-folders that do."""
    if (root / "validated.tsv").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "validated.tsv").is_file())


def _read_commonvoice_folder(folder: Path) -> list[LabelledClip]:
    # Columns are read by name because releases add and reorder them (accents, variant,
    # sentence_id...); QUOTE_NONE because sentences contain unbalanced quote characters.
    text = (folder / "validated.tsv").read_text(encoding="utf-8")
    rows = _read_csv(text, delimiter="\t", quoting=csv.QUOTE_NONE)
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
        gender = _gender(row.get("gender"))
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
    clips = [clip for folder in _commonvoice_folders(root) for clip in _read_commonvoice_folder(folder)]
    return sorted(clips, key=lambda clip: clip.path)


def _crema_demographics(root: Path) -> dict[str, tuple[str | None, float | None]]:
    """Actor -> (sex, age), from the corpus's own VideoDemographics.csv or the bundled copy."""
    for candidate in (root / "VideoDemographics.csv", root.parent / "VideoDemographics.csv"):
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8-sig")
            break
    else:  # the audio download often comes without it; the copy is ODbL, see data/CREMA-D-LICENSE.txt
        text = (resources.files("persona_cli") / "data" / "VideoDemographics.csv").read_text(encoding="utf-8")
    rows = _read_csv(text)  # columns ActorID, Age, Sex, Race, Ethnicity
    return {row["actorid"].strip(): (_gender(row.get("sex")), _years(row.get("age"))) for row in rows}


def read_crema_d(root: Path) -> list[LabelledClip]:
    """CREMA-D: AudioWAV/1001_DFA_ANG_XX.wav (actor, sentence, emotion, intensity)."""
    return _read_named_clips(
        "crema-d",
        root,
        root / "AudioWAV",
        CREMA_NAME,
        CREMA_EMOTIONS,
        "actor",
        _crema_demographics(root),
        "not named actor_sentence_emotion_intensity",
    )


def _is_tess_name(name: str) -> bool:
    return name.upper().startswith(("OAF_", "YAF_"))


def read_tess(root: Path) -> list[LabelledClip]:
    """TESS: OAF_angry/OAF_back_angry.wav and YAF_* likewise, or such files directly in the folder."""
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir() and _is_tess_name(p.name))
    clips, skipped = [], []
    for path in _audio_files(*folders):
        m = TESS_NAME.match(path.stem)
        raw = m["emotion"].lower() if m else None
        if m is None or raw not in TESS_EMOTIONS:
            skipped.append(path)
            continue
        speaker = m["speaker"].upper()
        clips.append(
            LabelledClip(path, "tess", f"tess:{speaker}", TESS_EMOTIONS[raw], "female", TESS_SPEAKER_AGES[speaker], raw)
        )
    _warn_skipped("tess", root, skipped, "not named OAF_word_emotion / YAF_word_emotion")
    return clips


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
    rows = _read_csv(csv_path.read_text(encoding="utf-8-sig"))  # -sig: spreadsheets write a BOM
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
                _gender(row.get("gender")),
                _manifest_age(row.get("age") or "", f"{csv_path} line {line}"),
                raw,
            )
        )
    _warn_skipped("manifest", csv_path, missing, "listed but not found")
    return clips


READERS: dict[str, Callable[[Path], list[LabelledClip]]] = {
    "ravdess": read_ravdess,
    "emodb": read_emodb,
    "commonvoice": read_commonvoice,
    "crema-d": read_crema_d,
    "tess": read_tess,
    "manifest": read_manifest,
}


# --- layout detection ------------------------------------------------------------------------------
# One marker per layout, chosen so that no real corpus shows two of them; detect_reader refuses
# rather than guesses when a folder does.


def _children(path: Path) -> list[Path]:
    return list(path.iterdir()) if path.is_dir() else []


def _has_named_audio(folder: Path, pattern: re.Pattern) -> bool:
    return any(pattern.match(p.stem) for p in _audio_files(folder))


LAYOUTS: dict[str, Callable[[Path], bool]] = {
    "manifest": lambda p: p.is_file() and p.suffix.lower() == ".csv",
    "commonvoice": lambda p: p.is_dir() and bool(_commonvoice_folders(p)),
    "crema-d": lambda p: (p / "AudioWAV").is_dir() or _has_named_audio(p, CREMA_NAME),
    "emodb": lambda p: _has_named_audio(p / "wav", EMODB_NAME) or _has_named_audio(p, EMODB_NAME),
    "ravdess": lambda p: (
        any(c.is_dir() and ACTOR_FOLDER.match(c.name) for c in _children(p)) or _has_named_audio(p, RAVDESS_NAME)
    ),
    "tess": lambda p: any(_is_tess_name(c.name) for c in _children(p)),
}


def detect_reader(path: Path) -> str:
    """The name of the one reader whose layout `path` has; UsageError when none or several match."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}")
    matches = [name for name, looks_like in LAYOUTS.items() if looks_like(path)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"{path} looks like several corpora ({', '.join(matches)}); name one as NAME:PATH")
    raise UsageError(
        f"cannot tell which corpus {path} holds: expected a manifest .csv, Actor_NN/ (ravdess), "
        "wav/ of 03a01Fa files (emodb), validated.tsv (commonvoice), AudioWAV/ (crema-d) or "
        f"OAF_*/YAF_* (tess); or force a reader as NAME:PATH with NAME one of {', '.join(READERS)}"
    )


def _parse_spec(spec: str) -> tuple[str | None, Path]:
    """'NAME:PATH' only when NAME is a reader and the whole spec is not itself a path (C:\\..., a:b)."""
    name, sep, rest = spec.partition(":")
    if sep and name in READERS and not Path(spec).expanduser().exists():
        return name, Path(rest).expanduser()
    return None, Path(spec).expanduser()


def read_corpus(spec: str) -> list[LabelledClip]:
    """Clips of one corpus given as 'PATH' (layout detected) or 'NAME:PATH' (reader forced)."""
    name, path = _parse_spec(spec)
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}")
    name = name or detect_reader(path)
    if (name == "manifest") != path.is_file():  # a forced reader may meet the wrong kind of path
        wanted = "a CSV file" if name == "manifest" else "a folder"
        raise UsageError(f"the {name} reader needs {wanted}, not {path}")
    clips = READERS[name](path)
    if not clips:
        raise UsageError(f"no labelled clips found in {path} (read as {name})")
    log.info("read %d clips from %s (%s)", len(clips), path, name)
    return clips


def read_corpora(specs: Sequence[str]) -> list[LabelledClip]:
    """All clips of several corpora, in the order given, each corpus in its reader's sorted order."""
    return [clip for spec in specs for clip in read_corpus(spec)]
