"""Where `persona predict`'s time goes, stage by stage, on one core and on all cores, printed as a table.

    python benchmarks/profile.py                         # the default model on 300 Common Voice MP3 clips
    python benchmarks/profile.py --encoder ge2e --limit 1000
    python benchmarks/profile.py DIR... --json           # any audio; machine-readable

The real command runs in this process (`persona predict --files-from LIST -o OUT.parquet`) with the
functions that do each stage wrapped in timers: decoding (libsndfile), resampling (soxr), volume
normalisation, voice activity detection (webrtcvad), the speech check, the GE2E mel front end, the
GE2E LSTM, GE2E batching and layer statistics (the rest of its forward pass), prosody, MFCC, the
head, and the writer. A timer counts only its own time: a stage called inside another is taken out
of the outer one. "other" is what no timer covers (interpreter, the engine's bookkeeping, model
loading, threads waiting for each other).

One core: the process is pinned to one CPU (sched_setaffinity) with `--workers 0`, so every stage
runs in turn on one torch thread; the shares are of that wall time. All cores: the default layout
(one worker thread per core); the stage times are summed over the worker threads, so the shares
are of wall time x cores, and "other" includes the time cores sat idle.

The timers cost a few microseconds per call, far below any stage here. Embeddings are never read
from the cache (predict does not use it), so each run embeds every file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "commonvoice"
sys.path.insert(0, str(REPO))

STAGES = (
    "decode",
    "resample",
    "volume",
    "voice activity",
    "speech check",
    "ge2e mel",
    "ge2e lstm",
    "ge2e batching + layer stats",
    "prosody",
    "mfcc",
    "head",
    "writer",
)


class StageTimers:
    """Exclusive wall time per stage, summed over threads: a thread-local stack takes a nested
    stage's time out of the stage that called it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._local = threading.local()

    def wrap(self, stage: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            frame = [0.0]  # time spent in stages nested inside this one
            stack.append(frame)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                stack.pop()
                if stack:
                    stack[-1][0] += elapsed
                with self._lock:
                    self.seconds[stage] += elapsed - frame[0]

        return timed


@contextlib.contextmanager
def timed_stages(timers: StageTimers) -> Iterator[None]:
    """Wrap each stage's function where persona calls it; restore them afterwards."""
    import soundfile
    import soxr

    from persona_cli import model, output
    from persona_cli.encoders import ge2e, mfcc, prosody

    patches: list[tuple[Any, str, str]] = [
        (soundfile.SoundFile, "read", "decode"),
        (soxr.ResampleStream, "resample_chunk", "resample"),
        (soxr, "resample", "resample"),
        (ge2e, "normalize_volume", "volume"),
        (ge2e, "voiced_windows", "voice activity"),
        (ge2e, "speech_seconds", "speech check"),
        (ge2e, "power_mel", "ge2e mel"),
        (ge2e.SpeakerLSTM, "forward", "ge2e lstm"),
        (ge2e.GE2EEncoder, "run", "ge2e batching + layer stats"),
        (prosody.ProsodyEncoder, "embed", "prosody"),
        (mfcc.MFCCEncoder, "embed", "mfcc"),
        (model.PersonaModel, "predict", "head"),
        (output.RowWriter, "write", "writer"),
        (output.OutputTarget, "_convert_journal_to_parquet", "writer"),
    ]
    originals = []
    for owner, name, stage in patches:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, timers.wrap(stage, original))
    try:
        yield
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


def profile_run(files: list[Path], encoder: str | None, one_core: bool) -> dict[str, Any]:
    """Run `persona predict` on `files` in this process; the stage times and the wall time."""
    from persona_cli.audio import audio_info
    from persona_cli.cli import main

    all_cpus = os.sched_getaffinity(0)
    if one_core:
        os.sched_setaffinity(0, {min(all_cpus)})
    cores = len(os.sched_getaffinity(0))
    timers = StageTimers()
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp, "files.txt")
        listing.write_text("".join(f"{f}\n" for f in files))
        argv = ["predict", "--files-from", str(listing), "-o", str(Path(tmp, "out.parquet")), "-q"]
        argv += ["--workers", "0"] if one_core else []
        argv += ["--encoder", encoder] if encoder else []
        try:
            with timed_stages(timers):
                start = time.perf_counter()
                with contextlib.suppress(SystemExit):
                    main(argv)
                wall = time.perf_counter() - start
        finally:
            os.sched_setaffinity(0, all_cpus)
    audio_s = sum(audio_info(f).duration_s for f in files)
    busy = wall * cores
    shares = {stage: timers.seconds.get(stage, 0.0) / busy for stage in STAGES}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return {"cores": cores, "wall_s": wall, "audio_s": audio_s, "audio_s_per_s": audio_s / wall, "shares": shares}


def table(runs: dict[str, dict[str, Any]]) -> str:
    names = list(runs)
    lines = ["| stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for stage in (*STAGES, "other"):
        cells = [f"{runs[n]['shares'][stage] * 100:.1f} %" for n in names]
        if any(cell != "0.0 %" for cell in cells):
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **wall time** | " + " | ".join(f"{runs[n]['wall_s']:.1f} s" for n in names) + " |")
    lines.append("| **audio-s/s** | " + " | ".join(f"{runs[n]['audio_s_per_s']:.0f}" for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[DEFAULT_CORPUS])
    parser.add_argument("--encoder", help="default: the default model's encoder")
    parser.add_argument("--limit", type=int, default=300, help="files to run (default 300)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = parser.parse_args()

    from persona_cli.audio import find_audio_files

    files = sorted(find_audio_files(args.paths))[: args.limit]
    if not files:
        sys.exit(f"profile.py: no audio files in {', '.join(map(str, args.paths))}")
    profile_run(files[:10], args.encoder, one_core=False)  # warm-up: imports, model load, page cache
    runs = {
        "one core": profile_run(files, args.encoder, one_core=True),
        f"all cores ({len(os.sched_getaffinity(0))})": profile_run(files, args.encoder, one_core=False),
    }
    if args.json:
        print(json.dumps({"files": len(files), "encoder": args.encoder, "runs": runs}, indent=2))
    else:
        print(
            f"{len(files)} files, {runs['one core']['audio_s'] / 60:.1f} min of audio, encoder {args.encoder or 'default'}"
        )
        print(table(runs))


if __name__ == "__main__":
    main()
