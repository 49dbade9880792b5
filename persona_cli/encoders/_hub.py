"""Hugging Face Hub helpers shared by the encoders that load weights from it (SpeechBrain, `hf:`).

Loading from the Hub first looks only at what is already on disk; the network is tried only when
`HF_HUB_OFFLINE` is unset and one quick probe reaches the Hub, so an offline machine fails at once
instead of sitting through huggingface_hub's retries (docs/measurements.md, "SpeechBrain encoders").
"""

from __future__ import annotations

import logging
import os
import re

from persona_cli.errors import ModelLoadingError

log = logging.getLogger("persona")

#: seconds the Hub reachability probe may take before we call the machine offline
HUB_PROBE_TIMEOUT = 3.0

#: what a Hub repository id looks like ("owner/name"); anything else is taken for a local path
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(source: str) -> bool:
    return HUB_ID.fullmatch(source) is not None and not source.startswith(".")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub itself reads it only once, at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    import huggingface_hub.constants

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def hub_reachable() -> bool:
    """One quick request, without huggingface_hub's retries (slow to give up offline: docs/measurements.md)."""
    import huggingface_hub.constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(huggingface_hub.constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT)
    except Exception as error:  # noqa: BLE001 - DNS, connection, proxy, TLS: all mean "offline"
        log.debug("Hugging Face Hub unreachable: %s", describe(error))
        return False
    return True


def describe(error: BaseException) -> str:
    """One short line: the error's type and first line (two where the first only announces a list)."""
    if isinstance(error, ModelLoadingError):
        return str(error)
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else (lines or [""])[0]
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
