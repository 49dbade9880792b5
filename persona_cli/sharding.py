"""`--shard K/N`: split the input between N independent jobs so that together they cover it once.

A file belongs to shard K when a hash of its path, as written in the output's `path` column, is
K - 1 modulo N. The hash is SHA-1, not Python's hash(), which is salted per process: every job, on
any machine, must compute the same split. Membership depends on nothing but the path, so it needs no
coordination, survives a changed file list (a new file lands in exactly one shard), and gives
shards within a few percent of N-th the size once there are a few hundred files. Run every job with
the same input arguments (the same paths, relative or absolute), since the path is what is hashed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from persona_cli.audio import display_path
from persona_cli.errors import UsageError

_SHARD_SYNTAX = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written on the command line
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'K/N' with 1 <= K <= N; anything else is a usage error."""
        match = _SHARD_SYNTAX.fullmatch(text)
        if not match:
            raise UsageError(f"--shard must look like K/N (e.g. 1/4), not {text!r}")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 1 <= index <= count:
            raise UsageError(
                f"--shard {text}: K must be between 1 and N (shards are numbered 1/{max(count, 1)} "
                f"to {max(count, 1)}/{max(count, 1)})"
            )
        return cls(index, count)

    def holds(self, path: str | Path) -> bool:
        digest = hashlib.sha1(display_path(path).encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def select(self, paths: Iterable[Path]) -> list[Path]:
        """The paths of this shard, in their input order."""
        return [p for p in paths if self.holds(p)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


__all__ = ["Shard"]
