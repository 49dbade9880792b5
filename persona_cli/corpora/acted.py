"""Readers for the acted-emotion corpora: RAVDESS, EmoDB, CREMA-D and TESS.

Actors read fixed sentences in each emotion; the file name carries speaker and emotion, and sex and
age come from the actor numbering, a speaker table, or the corpus's paper.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from persona_cli.corpora.codebooks import (
    CREMA_EMOTIONS,
    EMODB_EMOTIONS,
    EMODB_SPEAKERS,
    RAVDESS_EMOTIONS,
    TESS_EMOTIONS,
    TESS_SPEAKER_AGES,
)
from persona_cli.corpora.common import (
    LabelledClip,
    audio_files,
    label_file,
    parse_gender,
    parse_years,
    read_csv_rows,
    warn_skipped,
)

# File-name patterns: a file that does not match is not a clip of that corpus (and is counted).
RAVDESS_NAME = re.compile(r"^\d\d-\d\d-(?P<emotion>\d\d)-\d\d-\d\d-\d\d-(?P<actor>\d\d)$")
EMODB_NAME = re.compile(r"^(?P<speaker>\d\d)[a-z]\d\d(?P<emotion>[A-Z])[a-z]$")
CREMA_NAME = re.compile(r"^(?P<actor>\d{4})_[A-Z]{3}_(?P<emotion>[A-Z]{3})_[A-Z]{2}$")
TESS_NAME = re.compile(r"^(?P<speaker>OAF|YAF)_.+_(?P<emotion>[A-Za-z]+)$", re.IGNORECASE)
ACTOR_FOLDER = re.compile(r"^Actor_\d+$")


def read_ravdess(root: Path) -> list[LabelledClip]:
    """RAVDESS: Actor_NN/ folders (or one of them) of 03-01-06-01-02-01-12.wav/.flac.

    Song clips (channel 02) are kept if present: the folder the user names decides what is read.
    """
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir() and ACTOR_FOLDER.match(p.name))
    clips, skipped = [], []
    for path in audio_files(*folders):
        m = RAVDESS_NAME.match(path.stem)
        if not m or m["emotion"] not in RAVDESS_EMOTIONS:
            skipped.append(path)
            continue
        raw, emotion = RAVDESS_EMOTIONS[m["emotion"]]
        actor = m["actor"]  # the actor number in the name is authoritative, not the folder
        gender = "male" if int(actor) % 2 else "female"  # RAVDESS convention: odd actors are male
        clips.append(LabelledClip(path, "ravdess", f"ravdess:{actor}", emotion, gender, None, raw))
    warn_skipped("ravdess", root, skipped, "not named modality-channel-emotion-...-actor")
    return clips


def _emodb_speakers(root: Path) -> dict[str, tuple[str | None, float | None]]:
    table = root / "speakers.csv"
    if not table.is_file():
        return dict(EMODB_SPEAKERS)
    return {
        row["speaker"].strip().zfill(2): (parse_gender(row.get("sex")), parse_years(row.get("age")))
        for row in read_csv_rows(table.read_text(encoding="utf-8-sig"))
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
    for path in audio_files(folder, root):
        m = pattern.match(path.stem)
        if not m or m["emotion"] not in emotions:
            skipped.append(path)
            continue
        raw, emotion = emotions[m["emotion"]]
        speaker = m[speaker_group]
        gender, age = demographics.get(speaker, (None, None))
        clips.append(LabelledClip(path, corpus, f"{corpus}:{speaker}", emotion, gender, age, raw))
    warn_skipped(corpus, root, skipped, expected)
    return clips


def _crema_demographics(root: Path) -> dict[str, tuple[str | None, float | None]]:
    """Actor -> (sex, age), from the corpus's own VideoDemographics.csv or the bundled copy."""
    table = label_file(root, "VideoDemographics.csv")
    if table is not None:
        text = table.read_text(encoding="utf-8-sig")
    else:  # the audio download often comes without it; the copy is ODbL, see data/CREMA-D-LICENSE.txt
        text = (resources.files("persona_cli") / "data" / "VideoDemographics.csv").read_text(encoding="utf-8")
    rows = read_csv_rows(text)  # columns ActorID, Age, Sex, Race, Ethnicity
    return {row["actorid"].strip(): (parse_gender(row.get("sex")), parse_years(row.get("age"))) for row in rows}


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


def is_tess_name(name: str) -> bool:
    return name.upper().startswith(("OAF_", "YAF_"))


def read_tess(root: Path) -> list[LabelledClip]:
    """TESS: OAF_angry/OAF_back_angry.wav and YAF_* likewise, or such files directly in the folder."""
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir() and is_tess_name(p.name))
    clips, skipped = [], []
    for path in audio_files(*folders):
        m = TESS_NAME.match(path.stem)
        raw = m["emotion"].lower() if m else None
        if m is None or raw not in TESS_EMOTIONS:
            skipped.append(path)
            continue
        speaker = m["speaker"].upper()
        clips.append(
            LabelledClip(path, "tess", f"tess:{speaker}", TESS_EMOTIONS[raw], "female", TESS_SPEAKER_AGES[speaker], raw)
        )
    warn_skipped("tess", root, skipped, "not named OAF_word_emotion / YAF_word_emotion")
    return clips
