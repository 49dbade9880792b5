"""Reader for LibriSpeech: <subset>/<reader>/<chapter>/<reader>-<chapter>-<utterance> audio + SPEAKERS.TXT.

Read audiobook speech labelled with the reader's sex only: mostly neutral, but readers act out
dialogue, so it carries no emotion label. No ages.
"""

from __future__ import annotations

import re
from pathlib import Path

from persona_cli.audio import find_audio_files
from persona_cli.corpora.common import LabelledClip, label_file, parse_gender, warn_skipped
from persona_cli.errors import UsageError

LIBRISPEECH_NAME = re.compile(r"^(?P<reader>\d+)-(?P<chapter>\d+)-(?P<utterance>\d+)$")
SPEAKERS_TABLE = "SPEAKERS.TXT"


def reader_sexes(table: Path) -> dict[str, str | None]:
    """Reader id -> sex from LibriSpeech's SPEAKERS.TXT: `;` comments, then ID | SEX | SUBSET | MINUTES | NAME."""
    sexes = {}
    for line in table.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        # At most four splits: the NAME field itself may hold "|" (reader 60 is "|CBW|Simon").
        fields = [field.strip() for field in line.split("|", 4)]
        if len(fields) >= 2:
            sexes[fields[0]] = parse_gender(fields[1])
    return sexes


def read_librispeech(root: Path) -> list[LabelledClip]:
    """LibriSpeech: the corpus folder (SPEAKERS.TXT beside the subsets) or one subset folder inside it."""
    table = label_file(root, SPEAKERS_TABLE)
    if table is None:
        raise UsageError(f"{root}: no {SPEAKERS_TABLE} here or in the folder above, and reader sex comes from it")
    sexes = reader_sexes(table)
    clips, skipped, unlisted = [], [], []
    for path in sorted(find_audio_files([root])):
        m = LIBRISPEECH_NAME.match(path.stem)
        if not m:
            skipped.append(path)
        elif sexes.get(m["reader"]) is None:
            unlisted.append(path)  # without the reader's sex the clip has no label to learn from
        else:
            reader = m["reader"]
            clips.append(LabelledClip(path, "librispeech", f"librispeech:{reader}", None, sexes[reader], None, None))
    warn_skipped("librispeech", root, skipped, "not named reader-chapter-utterance")
    warn_skipped("librispeech", root, unlisted, f"of readers without a sex in {table}")
    return clips
