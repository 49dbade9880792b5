"""Does `persona predict` keep its memory flat as the input grows, and its speed on one long file? JSON.

    python benchmarks/memory.py                       # 1,000 and 20,000 files, and a one-hour file
    python benchmarks/memory.py --sizes 1000 5000 --hours 0.5 --encoder ge2e
    python benchmarks/memory.py --sizes --per segment --long-source ../shared/data/long/7367-86737.opus

Beside the long recording run a one-minute file cut from the same audio, so the two peaks compare
directly (`long_vs_minute_rss`), and the very audio of the long recording as separate short files
(one FLAC per clip), so its speed compares with the same audio cut the way a folder of clips comes
(`long_vs_short_speed`, audio-s/s over audio-s/s). With `--per segment|speaker` every one of them is
diarized too. `--long-source` builds the long recording from one file repeated (a single voice, as
in a lecture) instead of the corpus's clips one after another (a new voice every few seconds); the
short files are then that file's 30 s pieces.

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
    parser.add_argument(
        "--per", default="file", choices=["file", "speaker", "segment"], help="rows per file, speaker or segment"
    )
    parser.add_argument("--long-source", type=Path, help="build the long recording from this file, repeated")
    args = parser.parse_args(argv)
    clips = sorted(find_audio_files([args.corpus]), key=str)
    settings = argparse.Namespace(encoder=args.encoder, workers=args.workers, per=args.per)
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
            sources = [args.long_source] if args.long_source else clips
            pieces = tmp_dir / "short_files"
            for name, wanted in {"minute_file": 60.0, "long_file": args.hours * 3600}.items():
                long_file = tmp_dir / f"{name}.flac"
                seconds = _concatenate(sources, long_file, wanted, pieces_to=pieces if name == "long_file" else None)
                listing = tmp_dir / f"{name}.txt"
                listing.write_text(f"{long_file}\n")
                run = _run_persona(listing, tmp_dir / f"{name}.parquet", settings, None, None)
                result[name] = {"seconds": round(seconds), "file_mb": round(long_file.stat().st_size / 2**20), **run}
                print(f"{name} ({seconds / 60:.0f} min): {_summary(run)}", file=sys.stderr)
            listing = tmp_dir / "short_files.txt"
            short_files = sorted(pieces.iterdir())
            listing.write_text("".join(f"{p}\n" for p in short_files))
            run = _run_persona(listing, tmp_dir / "short_files.parquet", settings, None, None)
            result["short_files"] = {"files": len(short_files), **run}
            print(f"the same audio as {len(short_files)} short files: {_summary(run)}", file=sys.stderr)
            long, minute, short = result["long_file"], result["minute_file"], result["short_files"]
            result["long_vs_minute_rss"] = round(long["peak_rss_mb"] / minute["peak_rss_mb"], 3)
            result["long_vs_short_speed"] = round(long["audio_s_per_s"] / short["audio_s_per_s"], 3)
            result["long_vs_short_rss"] = round(long["peak_rss_mb"] / short["peak_rss_mb"], 3)
    print(json.dumps(result, indent=2))
    return 0


def _summary(run: dict) -> str:
    return f"{run['audio_s_per_s']} audio-s/s, peak RSS {run['peak_rss_mb']} MB"


def _concatenate(clips: list[Path], out: Path, seconds: float, pieces_to: Path | None = None) -> float:
    """Write real clips one after another into a 16 kHz FLAC file of about `seconds`; with
    `pieces_to`, also each piece on its own (a clip, or 30 s of a long source) as a FLAC file there."""
    if pieces_to is not None:
        pieces_to.mkdir()
    wanted = round(seconds * 16_000)
    written = 0
    with sf.SoundFile(out, "w", samplerate=16_000, channels=1, format="FLAC", subtype="PCM_16") as sink:
        while written < wanted:
            for clip in clips:
                for piece in iter_chunks(clip):
                    piece = piece[: wanted - written]
                    sink.write(piece)
                    if pieces_to is not None:
                        sf.write(pieces_to / f"{written:012d}.flac", piece, 16_000, subtype="PCM_16")
                    written += len(piece)
                    if written >= wanted:
                        return written / 16_000
    return written / 16_000


if __name__ == "__main__":
    sys.exit(main())
