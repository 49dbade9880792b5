"""Feature normalisation within groups of files: `none`, `corpus` or `speaker`.

Each feature is z-normalised over the files of its group (a corpus, or one speaker's clips) before
the network sees it. No labels are used, so it is unsupervised adaptation: `corpus` removes what a
recording setup adds to every file, `speaker`
removes who is speaking and leaves how they speak, which is what emotion needs.

The price: a file's prediction then depends on the other files in its group. A group therefore
needs at least MIN_GROUP_FILES files, or its statistics are noise, and it is refused otherwise.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from persona_cli.audio import display_path
from persona_cli.errors import UsageError
from persona_cli.file_lists import speaker_of

log = logging.getLogger("persona")

NORMALIZATIONS = ("none", "corpus", "speaker")
#: fewest files a group's mean and std are estimated from
MIN_GROUP_FILES = 8
#: a feature that barely varies within a group is centred but not scaled up
MIN_STD = 1e-6


def check_normalization(name: str) -> str:
    if name not in NORMALIZATIONS:
        raise UsageError(f"normalisation must be one of {', '.join(NORMALIZATIONS)}, not {name!r}")
    return name


def prediction_groups(paths: Sequence[Path], how: str, speakers: Mapping[str, str] | None = None) -> list[str]:
    """Each file's group when predicting: the whole run for `corpus`; for `speaker`, the speaker that
    `speakers` (a --files-from CSV) lists for the file or a folder above it, else its parent folder."""
    if how == "corpus":
        return ["run"] * len(paths)
    groups = []
    for path in paths:
        speaker = speaker_of(path, speakers or {})
        groups.append(f"speaker {speaker}" if speaker is not None else display_path(Path(path).parent))
    return groups


def check_prediction_groups(paths: Sequence[Path], how: str, speakers: Mapping[str, str] | None = None) -> None:
    """Refuse, before any work, a prediction run whose groups are too small to normalise."""
    if how != "none":
        what = "run" if how == "corpus" else "speaker" if speakers else "speaker folder"
        groups = prediction_groups(paths, how, speakers)
        check_group_sizes(groups, what=what)
        if how == "speaker":
            _say_folders_are_speakers([g for p, g in zip(paths, groups) if speaker_of(p, speakers or {}) is None])


def _say_folders_are_speakers(folders: Sequence[str]) -> None:
    """One line saying that files without a listed speaker are grouped by folder: a flat folder of
    many people's clips would otherwise be normalised as one voice without a word."""
    counts = Counter(folders)
    if not counts:
        return
    folder, files = counts.most_common(1)[0]
    others = f" (and {len(counts) - 1} more folders, each one speaker)" if len(counts) > 1 else ""
    log.warning(
        "--normalize speaker groups files by folder: %d files in %s are treated as one speaker%s; "
        "if they are not, give each file's speaker in a --files-from CSV",
        files,
        folder,
        others,
    )


def training_groups(corpora: Sequence[str], speakers: Sequence[str], how: str) -> tuple[list[str], list[str] | None]:
    """Each labelled clip's group when training or evaluating, and the larger group it falls back on
    when its own is too small: speakers with too few clips to normalise (Common Voice's one or two)
    use their corpus's statistics."""
    if how == "speaker":
        return [f"{corpus}/{speaker}" for corpus, speaker in zip(corpora, speakers)], list(corpora)
    return list(corpora), None


def normalize_within_groups(
    features: np.ndarray, groups: Sequence[str] | np.ndarray, what: str = "group", fallback: Sequence[str] | None = None
) -> np.ndarray:
    """Each row z-normalised with the mean and std of the rows sharing its group label.

    A group with fewer than MIN_GROUP_FILES rows is refused, unless `fallback` names a larger group
    for each row (its corpus): training data such as Common Voice has one or two clips per speaker,
    and those rows are then normalised with their corpus's statistics instead.
    """
    labels = np.asarray(groups, dtype=object)
    names, counts = np.unique(labels, return_counts=True)
    small = {name for name, count in zip(names, counts) if count < MIN_GROUP_FILES}
    if small and fallback is not None:
        in_small = np.array([label in small for label in labels])
        labels = np.where(in_small, np.asarray(fallback, dtype=object), labels)
        log.info(
            "%s normalisation: %d %ss with fewer than %d files (%d files) use their corpus's statistics",
            what,
            len(small),
            what,
            MIN_GROUP_FILES,
            int(in_small.sum()),
        )
        return normalize_within_groups(features, labels, what)
    check_group_sizes(labels, what)
    out = np.empty_like(features, dtype=np.float32)
    for name in names:
        rows = labels == name
        block = features[rows].astype(np.float64)
        out[rows] = (block - block.mean(0)) / np.maximum(block.std(0), MIN_STD)
    return out


def network_inputs(
    features: np.ndarray, how: str, groups: Sequence[str], fallback: Sequence[str] | None = None
) -> np.ndarray:
    """What the network sees under each normalisation.

    `corpus`: the normalised features only, since the recording setup is what must go. `speaker`: the
    raw and the normalised features side by side, since normalising within a speaker removes who is
    speaking, which gender and age are predicted from (docs/measurements.md has the figures).
    """
    if how == "none":
        return features
    normalized = normalize_within_groups(features, groups, how, fallback)
    return np.hstack([features, normalized]).astype(np.float32) if how == "speaker" else normalized


def input_width(encoder_dim: int, how: str) -> int:
    """The network's input length for an encoder's vectors under a normalisation (see network_inputs)."""
    return 2 * encoder_dim if how == "speaker" else encoder_dim


def check_group_sizes(groups: Sequence[str] | np.ndarray, what: str = "group") -> None:
    """A usage error naming the groups with fewer than MIN_GROUP_FILES files, if there are any."""
    names, counts = np.unique(np.asarray(groups, dtype=object), return_counts=True)
    examples = [f"{_short(name)} ({count})" for name, count in zip(names, counts) if count < MIN_GROUP_FILES]
    if examples:
        raise UsageError(
            f"{what} normalisation needs at least {MIN_GROUP_FILES} files per {what}; "
            f"{len(examples)} have fewer: {', '.join(examples[:3])}{' ...' if len(examples) > 3 else ''}"
        )


def _short(name: str, limit: int = 40) -> str:
    """A long group name cut from the left: a folder's own name is at the end of its path."""
    return name if len(name) <= limit else f"...{name[3 - limit :]}"


__all__ = [
    "MIN_GROUP_FILES",
    "NORMALIZATIONS",
    "check_group_sizes",
    "check_normalization",
    "check_prediction_groups",
    "input_width",
    "network_inputs",
    "normalize_within_groups",
    "prediction_groups",
    "training_groups",
]
