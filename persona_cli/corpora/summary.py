"""What a training run read: clips, speakers and labels per corpus, as plain-text tables for the log."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

from persona_cli.corpora.common import LabelledClip
from persona_cli.labels import EMOTIONS, GENDERS


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Left-aligned first column, right-aligned numbers, widths from the content."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in cells
    ]


def summarize(clips: Sequence[LabelledClip]) -> str:
    """What a training run read: clips and labels per corpus, emotion labels, genders, ages."""
    if not clips:
        return "no clips"
    corpora = list(dict.fromkeys(clip.corpus for clip in clips))  # first-seen order

    def counts(group: Sequence[LabelledClip]) -> list[object]:
        return [
            len(group),
            len({c.speaker for c in group}),
            sum(c.emotion is not None for c in group),
            sum(c.gender is not None for c in group),
            sum(c.age is not None for c in group),
        ]

    per_corpus = [[name, *counts([c for c in clips if c.corpus == name])] for name in corpora]
    header = ["corpus", "clips", "speakers", "emotion", "gender", "age"]
    lines = _table(header, [*per_corpus, ["all", *counts(clips)]])

    raw = Counter((c.corpus, c.emotion_raw, c.emotion) for c in clips if c.emotion_raw is not None)
    if raw:
        lines += [
            "",
            *_table(
                ["emotion label", "-> task", "clips"],
                [
                    [f"{corpus}:{label}", mapped or "(masked)", n]
                    for (corpus, label, mapped), n in sorted(raw.items(), key=lambda item: item[0][:2])
                ],
            ),
        ]
        emotions = Counter(c.emotion for c in clips if c.emotion is not None)
        lines += ["", *_table(["emotion", "clips"], [[e, emotions[e]] for e in EMOTIONS])]

    genders = Counter(c.gender for c in clips if c.gender is not None)
    lines += ["", *_table(["gender", "clips"], [[g, genders[g]] for g in GENDERS])]

    ages = [c.age for c in clips if c.age is not None]
    if ages:
        lines += [
            "",
            f"age: {len(ages)} labelled, mean {statistics.fmean(ages):.1f}, min {min(ages):g}, max {max(ages):g} years",
        ]
    else:
        lines += ["", "age: none labelled"]
    return "\n".join(lines)
