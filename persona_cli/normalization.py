"""Feature normalisation within groups of files: `none`, `corpus` or `speaker`.

Each feature is z-normalised over the files of its group (a corpus, or one speaker's clips) before
the network sees it. No labels are used, so it is unsupervised adaptation: `corpus` removes what a
recording setup adds to every file (the fix that made RAVDESS -> EmoDB transfer work), `speaker`
removes who is speaking and leaves how they speak, which is what emotion needs.

The price: a file's prediction then depends on the other files in its group. A group therefore
needs at least MIN_GROUP_FILES files, or its statistics are noise, and it is refused otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from persona_cli.errors import UsageError

NORMALIZATIONS = ("none", "corpus", "speaker")
#: fewest files a group's mean and std are estimated from
MIN_GROUP_FILES = 8
#: a feature that barely varies within a group is centred but not scaled up
MIN_STD = 1e-6


def check_normalization(name: str) -> str:
    if name not in NORMALIZATIONS:
        raise UsageError(f"normalisation must be one of {', '.join(NORMALIZATIONS)}, not {name!r}")
    return name


def normalize_within_groups(features: np.ndarray, groups: Sequence[str], what: str = "group") -> np.ndarray:
    """Each row z-normalised with the mean and std of the rows sharing its group label."""
    labels = np.asarray(groups)
    out = np.empty_like(features, dtype=np.float32)
    names, counts = np.unique(labels, return_counts=True)
    too_small = [f"{name} ({count})" for name, count in zip(names, counts) if count < MIN_GROUP_FILES]
    if too_small:
        raise UsageError(f"{what} normalisation needs at least {MIN_GROUP_FILES} files per {what}; too few in: "
                         f"{', '.join(too_small[:5])}{' ...' if len(too_small) > 5 else ''}")
    for name in names:
        rows = labels == name
        block = features[rows].astype(np.float64)
        out[rows] = (block - block.mean(0)) / np.maximum(block.std(0), MIN_STD)
    return out


__all__ = ["MIN_GROUP_FILES", "NORMALIZATIONS", "check_normalization", "normalize_within_groups"]
