"""Where downloaded weights and cached embeddings live: never the working directory."""

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
