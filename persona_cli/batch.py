"""The batch job behind `persona predict` and `persona embed`: which files to process, and streaming
their results into the output with resume, --fail-fast and a progress bar.

Both commands run the same flow; they differ only in the function that turns files into results
(`Predictor.predict_files` or `Embedder.embed_files`) and in the output schema.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from persona_cli.audio import display_path, find_audio_files
from persona_cli.embedding import batched
from persona_cli.errors import UsageError
from persona_cli.file_lists import FileList, read_file_list
from persona_cli.output import OutputTarget
from persona_cli.results import Embedding, Prediction
from persona_cli.sharding import Shard

log = logging.getLogger("persona")
stderr = Console(stderr=True)

Result = Prediction | Embedding


def input_files(
    paths: Sequence[Path] | None, files_from: str | None, shard: str | None = None
) -> tuple[list[Path], dict[str, str]]:
    """The audio files to process (sorted, without duplicates, this shard's part) and any speakers
    a `--files-from` CSV gives for them."""
    named: list[str] = [str(p) for p in paths or []]
    listed = FileList()  # a missing file here is an error row, not a usage error
    if files_from is not None:
        if files_from == "-" and hasattr(sys.stdin, "reconfigure"):
            sys.stdin.reconfigure(errors="surrogateescape")  # file names need not be valid UTF-8
        try:
            stream = sys.stdin if files_from == "-" else open(files_from, encoding="utf-8", errors="surrogateescape")
        except OSError as error:
            raise UsageError(f"cannot read --files-from {files_from}: {error.strerror}") from None
        with stream:
            listed = read_file_list(stream, files_from)
    given = named + listed.paths
    if not given:
        raise UsageError("no input: give audio files or folders, or --files-from FILE")
    files = find_audio_files(named, files_from=listed.paths)
    if not files:
        raise UsageError(f"no audio files found in: {' '.join(given[:3])}{' ...' if len(given) > 3 else ''}")
    if shard is not None:
        part = Shard.parse(shard)
        selected = part.select(files)
        log.info("shard %s: %d of %d files", part, len(selected), len(files))
        files = selected
    return files, listed.speakers


def run(
    process: Callable[[list[Path]], Iterable[Result]],
    files: list[Path],
    target: OutputTarget,
    *,
    batch_size: int,
    fail_fast: bool = False,
    quiet: bool = False,
    label: str = "predict",
    made_by: Mapping[str, str] | None = None,
) -> int:
    """Write one row per file still to do (all of them unless resuming) and return how many rows of
    the whole output, earlier ones included, carry an error. `made_by`: the encoder, model... this
    run writes into its rows, which a resumed output must already hold."""
    target.check_resume([display_path(f) for f in files], made_by or {})  # rows store display_path
    todo = _still_to_do(files, target)
    results: Iterable[Result] = process(todo)
    if fail_fast:
        results = until_first_error(results)
    failed = _write(batched(results, batch_size), target, len(todo), quiet, label)
    if fail_fast and failed:
        log.warning("--fail-fast: stopped at the first failed file")
    return failed + target.done_failed


def until_first_error(results: Iterable[Result]) -> Iterator[Result]:
    """Pass results through up to and including the first one with an `error` (for --fail-fast)."""
    for result in results:
        yield result
        if result.error:
            return


def _still_to_do(files: list[Path], target: OutputTarget) -> list[Path]:
    """With --resume, the files whose rows are not in the output yet."""
    if not target.done:
        return files
    remaining = [f for f in files if display_path(f) not in target.done]  # rows store display_path
    log.info("resuming: %d of %d files already done, %d to go", len(files) - len(remaining), len(files), len(remaining))
    return remaining


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=stderr,
        # a bar only makes sense on a terminal; logs and pipelines get the summary line instead
        disable=quiet or not stderr.is_terminal,
        transient=False,
    )


def _write(batches: Iterator[list[Result]], target: OutputTarget, total: int, quiet: bool, label: str) -> int:
    """Stream result batches to the output with a progress bar; returns how many carry an error."""
    failed, done, audio_seconds = 0, 0, 0.0
    started = time.perf_counter()
    with _progress(quiet) as progress, target as writer:
        task = progress.add_task(label, total=total, rate="")
        for results in batches:
            writer.write([result.row() for result in results])
            done += len(results)
            failed += sum(1 for result in results if result.error)
            audio_seconds += sum(result.duration_s or 0.0 for result in results)
            elapsed = max(time.perf_counter() - started, 1e-9)
            rate = f"{done / elapsed:.1f} files/s {audio_seconds / elapsed:.0f} audio-s/s"
            progress.update(task, completed=done, rate=rate)
    elapsed = max(time.perf_counter() - started, 1e-9)
    log.info(
        "%d files, %.1f min of audio in %.1f s: %.1f files/s, %.0f audio-s/s",
        done,
        audio_seconds / 60,
        elapsed,
        done / elapsed,
        audio_seconds / elapsed,
    )
    return failed


__all__ = ["input_files", "run", "until_first_error"]
