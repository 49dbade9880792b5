"""Where downloaded weights and cached embeddings live (never the working directory), and weights' fingerprints."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV_VAR = "PERSONA_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """`$PERSONA_CACHE_DIR/...` if set, else the user cache dir (e.g. ~/.cache/persona/...), created."""
    root = os.environ.get(CACHE_ENV_VAR) or platformdirs.user_cache_dir("persona")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_fingerprint(source: str | None) -> str:
    """A cheap description of the encoder's weights: the source, and file stats when it is local."""
    if source is None:
        return "default"
    path = Path(source).expanduser()
    try:
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())[:1000]
        else:
            return f"id:{source}"
        stats = [
            (str(p.relative_to(path) if p != path else p.name), p.stat().st_size, p.stat().st_mtime_ns) for p in files
        ]
    except OSError:
        return f"unreadable:{source}"
    return f"local:{path.resolve()}:{stats}"
