"""Reader for URDU (Latif et al. 2018): Angry/ Happy/ Neutral/ Sad/ of SM1_F10_A010 files from TV talk shows.

The first field is S + sex (M/F) + speaker number, which is all the corpus says about its speakers:
that label is the speaker id, although the corpus does not say whether one label in two emotion
folders is one person. No ages.
"""

from __future__ import annotations

import re
from pathlib import Path

from persona_cli.corpora.codebooks import URDU_EMOTIONS
from persona_cli.corpora.common import LabelledClip, audio_files, warn_skipped

# speaker label (S + sex + number), file number within speaker and emotion, emotion letter + running number
URDU_NAME = re.compile(r"^(?P<speaker>S(?P<sex>[MF])\d+)_F\d+_(?P<emotion>[A-Z])\d+$", re.IGNORECASE)
URDU_FOLDERS = frozenset(raw for raw, _ in URDU_EMOTIONS.values())  # lower-case folder names
URDU_SEXES = {"M": "male", "F": "female"}


def is_urdu_folder(path: Path) -> bool:
    return path.is_dir() and path.name.lower() in URDU_FOLDERS


def read_urdu(root: Path) -> list[LabelledClip]:
    """URDU: the four emotion folders (or one of them) of SM1_F10_A010.flac/.wav files."""
    folders = [root] + sorted(p for p in root.iterdir() if is_urdu_folder(p))
    clips, skipped = [], []
    for path in audio_files(*folders):
        m = URDU_NAME.match(path.stem)
        if not m or m["emotion"].upper() not in URDU_EMOTIONS:
            skipped.append(path)
            continue
        raw, emotion = URDU_EMOTIONS[m["emotion"].upper()]
        speaker = m["speaker"].upper()
        clips.append(LabelledClip(path, "urdu", f"urdu:{speaker}", emotion, URDU_SEXES[m["sex"].upper()], None, raw))
    warn_skipped("urdu", root, skipped, "not named S<sex><speaker>_F<file>_<emotion><number>")
    return clips
