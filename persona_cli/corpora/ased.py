"""Reader for ASED, the Amharic Speech Emotion Dataset: 01Neutral/ ... 05Angry/ of n1-01-01-01-01 files.

Speakers recorded themselves where and when they chose. A few files name the speaker's sex
differently from all that speaker's other files, so each speaker takes the sex most of their files
give. ASED publishes no ages.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from persona_cli.corpora.codebooks import ASED_EMOTIONS, ASED_SEXES
from persona_cli.corpora.common import LabelledClip, audio_files, warn_skipped

log = logging.getLogger("persona")

# emotion letter + folder number, sentence, repetition, sex, speaker; read case-insensitively
# because at least one file starts with a capital letter (S4-...).
ASED_NAME = re.compile(
    r"^(?P<emotion>[a-z]\d)-(?P<sentence>\d\d)-(?P<repetition>\d\d)-(?P<sex>\d\d)-(?P<speaker>\d\d)$", re.IGNORECASE
)
ASED_FOLDER = re.compile(r"^0[1-5][a-z]+$", re.IGNORECASE)  # 01Neutral ... 05Angry


def is_ased_folder(path: Path) -> bool:
    return path.is_dir() and bool(ASED_FOLDER.match(path.name))


def _majority_sexes(root: Path, named: list[tuple[str, str]]) -> dict[str, str | None]:
    """Speaker -> the sex most of their files give (None on a tie), from (speaker, sex) per file."""
    votes: dict[str, Counter[str]] = {}
    for speaker, sex in named:
        votes.setdefault(speaker, Counter())[sex] += 1
    sexes: dict[str, str | None] = {}
    for speaker, counts in votes.items():
        ranked = counts.most_common()
        tied = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
        sexes[speaker] = None if tied else ranked[0][0]
    mixed = sorted(speaker for speaker, counts in votes.items() if len(counts) > 1)
    if mixed:
        log.info("ased %s: files of speakers %s disagree on sex; each takes the majority", root, ", ".join(mixed))
    return sexes


def read_ased(root: Path) -> list[LabelledClip]:
    """ASED: the five emotion folders (or one of them) of xn-yy-aa-gg-bb.opus/.wav files."""
    folders = [root] + sorted(p for p in root.iterdir() if is_ased_folder(p))
    named, skipped = [], []
    for path in audio_files(*folders):
        m = ASED_NAME.match(path.stem)
        if not m or m["emotion"].lower() not in ASED_EMOTIONS or m["sex"] not in ASED_SEXES:
            skipped.append(path)
            continue
        named.append((path, m["emotion"].lower(), m["speaker"], ASED_SEXES[m["sex"]]))
    warn_skipped("ased", root, skipped, "not named emotion-sentence-repetition-sex-speaker")
    sexes = _majority_sexes(root, [(speaker, sex) for _, _, speaker, sex in named])
    clips = []
    for path, code, speaker, _ in named:
        raw, emotion = ASED_EMOTIONS[code]
        clips.append(LabelledClip(path, "ased", f"ased:{speaker}", emotion, sexes[speaker], None, raw))
    return clips
