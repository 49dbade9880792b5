"""Readers for labelled speech corpora: each turns one corpus layout into a list of LabelledClip.

Every corpus labels only some of the three tasks (RAVDESS has no ages, Common Voice no emotions), so
a clip carries None for whatever its corpus does not say, and training masks that task's loss.
Readers only look at file names and label files; they never decode audio.

One module per family of layouts (acted.py for RAVDESS, EmoDB, CREMA-D and TESS; commonvoice.py,
ased.py, urdu.py, baved.py, librispeech.py, manifest.py), the codes each corpus uses in codebooks.py,
layout detection in layouts.py; this module names the readers and reads specs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from persona_cli.corpora.acted import read_crema_d, read_emodb, read_ravdess, read_tess
from persona_cli.corpora.ased import read_ased
from persona_cli.corpora.baved import read_baved
from persona_cli.corpora.codebooks import AGE_BUCKETS, EMODB_SPEAKERS
from persona_cli.corpora.common import LabelledClip
from persona_cli.corpora.commonvoice import read_commonvoice
from persona_cli.corpora.layouts import LAYOUTS, detect_reader
from persona_cli.corpora.librispeech import read_librispeech
from persona_cli.corpora.manifest import read_manifest
from persona_cli.corpora.summary import summarize
from persona_cli.corpora.urdu import read_urdu
from persona_cli.errors import UsageError

__all__ = [
    "summarize",
    "AGE_BUCKETS",
    "EMODB_SPEAKERS",
    "LAYOUTS",
    "READERS",
    "LabelledClip",
    "detect_reader",
    "read_corpora",
    "read_corpus",
]

log = logging.getLogger("persona")

READERS: dict[str, Callable[[Path], list[LabelledClip]]] = {
    "ravdess": read_ravdess,
    "emodb": read_emodb,
    "commonvoice": read_commonvoice,
    "crema-d": read_crema_d,
    "tess": read_tess,
    "ased": read_ased,
    "urdu": read_urdu,
    "baved": read_baved,
    "librispeech": read_librispeech,
    "manifest": read_manifest,
}


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
