"""Does `persona predict`'s memory stay flat as the input grows? Prints peak RSS as JSON.

    python benchmarks/memory.py                       # 1,000 and 20,000 files, and a one-hour file
    python benchmarks/memory.py --sizes 1000 5000 --hours 0.5 --encoder ge2e

The corpora are symlink farms over the Common Voice MP3 clips in ../shared/data (cycled, so 20,000
files cost no disk); the long recording is real clips concatenated into one FLAC file until it lasts
the asked number of hours. Each run is its own `persona predict ... -o OUT.parquet` process, and its
peak RSS comes from wait4, as in throughput.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from throughput import DEFAULT_CORPUS, DEFAULT_ENCODER, _run_persona  # noqa: E402

from persona_cli.audio import find_audio_files, iter_chunks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 20000], help="file counts to compare")
    parser.add_argument("--hours", type=float, default=1.0, help="length of the long recording (0: skip)")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="the bundled model's encoder (default: %(default)s)")
    args = parser.parse_args(argv)
    clips = sorted(find_audio_files([args.corpus]), key=str)
    settings = argparse.Namespace(encoder=args.encoder, workers=args.workers)
    result: dict = {"corpus": str(args.corpus), "encoder": args.encoder, "runs": []}
    with tempfile.TemporaryDirectory(prefix="persona-memory-") as tmp:
        tmp_dir = Path(tmp)
        for size in args.sizes:
            farm = tmp_dir / f"farm-{size}"
            farm.mkdir()
            for i in range(size):  # one folder per thousand, like real corpora
                link = farm / f"{i // 1000:03d}" / f"{i:06d}{clips[i % len(clips)].suffix}"
                link.parent.mkdir(exist_ok=True)
                link.symlink_to(clips[i % len(clips)].resolve())
            listing = tmp_dir / f"farm-{size}.txt"
            listing.write_text("".join(f"{p}\n" for p in sorted(farm.rglob("*.*"))))
            run = _run_persona(listing, tmp_dir / f"farm-{size}.parquet", settings, None, None)
            result["runs"].append({"files": size, **run})
            print(f"{size} files: peak RSS {run['peak_rss_mb']} MB", file=sys.stderr)
        if len(result["runs"]) >= 2:
            small, large = result["runs"][0], result["runs"][-1]
            result["rss_growth"] = round(large["peak_rss_mb"] / small["peak_rss_mb"] - 1, 3)
        if args.hours > 0:
            long_file = tmp_dir / "long.flac"
            seconds = _concatenate(clips, long_file, args.hours * 3600)
            listing = tmp_dir / "long.txt"
            listing.write_text(f"{long_file}\n")
            run = _run_persona(listing, tmp_dir / "long.parquet", settings, None, None)
            result["long_file"] = {"seconds": round(seconds), "file_mb": round(long_file.stat().st_size / 2**20), **run}
    print(json.dumps(result, indent=2))
    return 0


def _concatenate(clips: list[Path], out: Path, seconds: float) -> float:
    """Write real clips one after another into a 16 kHz FLAC file of about `seconds`."""
    written = 0
    with sf.SoundFile(out, "w", samplerate=16_000, channels=1, format="FLAC", subtype="PCM_16") as sink:
        while written < seconds * 16_000:
            for clip in clips:
                wave = np.concatenate(list(iter_chunks(clip)))
                sink.write(wave)
                written += len(wave)
                if written >= seconds * 16_000:
                    break
    return written / 16_000


if __name__ == "__main__":
    sys.exit(main())
