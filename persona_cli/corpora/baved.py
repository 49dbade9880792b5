"""Reader for BAVED, the Basic Arabic Vocal Emotions Dataset: 0/ ... 6/ of 10-f-20-0-1-0 files, one word each.

The name gives speaker, sex, exact age, word, emotion level and a running record id; speakers_info.json
repeats sex and age per speaker, and the two are cross-checked. Levels are intensities, not emotion
categories (see BAVED_LEVELS): only level 1 trains the emotion head, as neutral.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from persona_cli.corpora.codebooks import BAVED_LEVELS, BAVED_SAME_SPEAKER
from persona_cli.corpora.common import LabelledClip, audio_files, label_file, parse_gender, parse_years, warn_skipped
from persona_cli.errors import UsageError

log = logging.getLogger("persona")

BAVED_NAME = re.compile(
    r"^(?P<speaker>\d+)-(?P<sex>[mf])-(?P<age>\d+)-(?P<word>\d+)-(?P<level>\d)-(?P<record>\d+)$", re.IGNORECASE
)
BAVED_FOLDER = re.compile(r"^\d+$")  # one folder per word


def is_baved_folder(path: Path) -> bool:
    return path.is_dir() and bool(BAVED_FOLDER.match(path.name))


def _text(value: object) -> str:
    """A JSON value as the text the label parsers take; null means unknown."""
    return "" if value is None else str(value)


def _speakers_info(root: Path) -> dict[str, tuple[str | None, float | None]]:
    """Speaker id -> (sex, age) from speakers_info.json, or {} where the copy has none."""
    table = label_file(root, "speakers_info.json")
    if table is None:
        return {}
    try:
        entries = json.loads(table.read_text(encoding="utf-8"))
        return {
            str(int(speaker)): (parse_gender(_text(entry.get("gender"))), parse_years(_text(entry.get("age"))))
            for speaker, entry in entries.items()
        }
    except (ValueError, AttributeError) as err:  # not JSON, or not an object of objects
        raise UsageError(f"{table}: not BAVED's {{speaker: {{age, gender}}}} table ({err})") from err


def read_baved(root: Path) -> list[LabelledClip]:
    """BAVED: the word folders (or one of them) of speaker-sex-age-word-level-record.opus/.wav files."""
    folders = [root] + sorted(p for p in root.iterdir() if is_baved_folder(p))
    info = _speakers_info(root)
    clips, skipped, disagreeing = [], [], set()
    for path in audio_files(*folders):
        m = BAVED_NAME.match(path.stem)
        if not m or m["level"] not in BAVED_LEVELS:
            skipped.append(path)
            continue
        raw, emotion = BAVED_LEVELS[m["level"]]
        speaker = str(int(m["speaker"]))
        gender, age = parse_gender(m["sex"]), float(m["age"])
        listed_gender, listed_age = info.get(speaker, (None, None))
        if listed_gender not in (None, gender) or listed_age not in (None, age):
            disagreeing.add(speaker)
        speaker = BAVED_SAME_SPEAKER.get(speaker, speaker)
        clips.append(LabelledClip(path, "baved", f"baved:{speaker}", emotion, gender, age, raw))
    warn_skipped("baved", root, skipped, "not named speaker-sex-age-word-level-record")
    if disagreeing:
        log.warning(
            "baved %s: file names and speakers_info.json disagree on sex or age of speakers %s; "
            "each clip keeps what its file name says",
            root,
            ", ".join(sorted(disagreeing, key=int)),
        )
    return clips
