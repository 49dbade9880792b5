"""Which reader a corpus folder needs, told from the layout its own distribution has.

One marker per layout, chosen so that no real corpus shows two of them; detect_reader refuses
rather than guesses when a folder does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from persona_cli.corpora.acted import ACTOR_FOLDER, CREMA_NAME, EMODB_NAME, RAVDESS_NAME, is_tess_name
from persona_cli.corpora.ased import ASED_NAME, is_ased_folder
from persona_cli.corpora.baved import BAVED_NAME, is_baved_folder
from persona_cli.corpora.common import audio_files
from persona_cli.corpora.commonvoice import commonvoice_folders
from persona_cli.corpora.librispeech import SPEAKERS_TABLE
from persona_cli.corpora.urdu import URDU_NAME, is_urdu_folder
from persona_cli.errors import UsageError


def _children(path: Path) -> list[Path]:
    return list(path.iterdir()) if path.is_dir() else []


def _has_named_audio(folder: Path, pattern: re.Pattern) -> bool:
    return any(pattern.match(p.stem) for p in audio_files(folder))


def _holds_named_audio(path: Path, pattern: re.Pattern, is_part: Callable[[Path], bool]) -> bool:
    """Audio named like `pattern` in `path` itself or in a sub-folder `is_part` accepts (one emotion, one word)."""
    return any(_has_named_audio(folder, pattern) for folder in [path, *filter(is_part, _children(path))])


def _is_librispeech(path: Path) -> bool:
    """The corpus folder holds SPEAKERS.TXT; a subset folder inside it has it one level up."""
    return path.is_dir() and ((path / SPEAKERS_TABLE).is_file() or (path.parent / SPEAKERS_TABLE).is_file())


LAYOUTS: dict[str, Callable[[Path], bool]] = {
    "manifest": lambda p: p.is_file() and p.suffix.lower() == ".csv",
    "commonvoice": lambda p: p.is_dir() and bool(commonvoice_folders(p)),
    "crema-d": lambda p: (p / "AudioWAV").is_dir() or _has_named_audio(p, CREMA_NAME),
    "emodb": lambda p: _has_named_audio(p / "wav", EMODB_NAME) or _has_named_audio(p, EMODB_NAME),
    "ravdess": lambda p: (
        any(c.is_dir() and ACTOR_FOLDER.match(c.name) for c in _children(p)) or _has_named_audio(p, RAVDESS_NAME)
    ),
    "tess": lambda p: any(is_tess_name(c.name) for c in _children(p)),
    "ased": lambda p: _holds_named_audio(p, ASED_NAME, is_ased_folder),
    "urdu": lambda p: _holds_named_audio(p, URDU_NAME, is_urdu_folder),
    "baved": lambda p: (p / "speakers_info.json").is_file() or _holds_named_audio(p, BAVED_NAME, is_baved_folder),
    "librispeech": _is_librispeech,
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
        "wav/ of 03a01Fa files (emodb), validated.tsv (commonvoice), AudioWAV/ (crema-d), "
        "OAF_*/YAF_* (tess), 01Neutral/ of n1-01-01-01-01 files (ased), Angry/ of SM1_F10_A010 "
        "files (urdu), speakers_info.json or 0/ of 10-f-20-0-1-0 files (baved) or SPEAKERS.TXT "
        f"(librispeech); or force a reader as NAME:PATH with NAME one of {', '.join(LAYOUTS)}"
    )
