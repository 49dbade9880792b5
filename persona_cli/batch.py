"""The batch job behind `persona predict` and `persona embed`: which files to process, and streaming
their results into the output with resume, --fail-fast and a progress bar.

Both commands run the same flow; they differ only in the function that turns files into results
(`Predictor.predict_files` or `Embedder.embed_files`) and in the output schema.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from persona_cli.audio import audio_info, display_path, find_audio_files
from persona_cli.errors import AudioLoadError, UsageError
from persona_cli.file_lists import FileList, read_file_list
from persona_cli.output import OutputTarget
from persona_cli.results import Embedding, Prediction, Segment, SpeakerSummary
from persona_cli.sharding import Shard

log = logging.getLogger("persona")
stderr = Console(stderr=True)

Result = Prediction | Embedding | Segment | SpeakerSummary


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
    process: Callable[..., Iterable[Result]],
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
    the whole output, earlier ones included, carry an error. `process(files, progress=...)` makes the
    results (Predictor.predict_files, Embedder.embed_files); `made_by`: the encoder, model... this run
    writes into its rows, which a resumed output must already hold.

    A reader that stops reading stdout (`persona predict DIR | head`) ends the run quietly, and it
    counts as a success (0 failed): the pipeline got what it asked for.
    """
    target.check_resume([display_path(f) for f in files], made_by or {})  # rows store display_path
    todo = _still_to_do(files, target)
    with _progress(quiet) as progress:
        # a bar needs the total: the audio seconds the headers declare (a fraction of a ms per file)
        total = _declared_seconds(todo) if not progress.disable else None
        task = progress.add_task(label, total=total, files=f"0/{len(todo)} files")
        tally = _Tally()
        counting = threading.Lock()  # workers report from their own threads

        def advance(seconds: float) -> None:
            progress.advance(task, seconds)
            with counting:
                tally.heard_seconds += seconds

        results: Iterable[Result] = process(todo, progress=advance)
        if fail_fast:
            results = until_first_error(results)
        try:
            _write(results, target, batch_size, tally, lambda tally: progress.update(task, **tally.fields(len(todo))))
        except BrokenPipeError:
            _discard_stdout()
            return 0
        progress.update(task, completed=total)
    tally.log(label)
    if fail_fast and tally.failed:
        log.warning("--fail-fast: stopped at the first failed file")
    return tally.failed + target.done_failed


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


def _declared_seconds(files: list[Path]) -> float:
    total = 0.0
    for path in files:
        try:
            total += audio_info(path).duration_s
        except AudioLoadError:  # its row will say why; it adds nothing to the audio to process
            pass
    return total


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of rows nobody reads raises no
    second BrokenPipeError ('Exception ignored ... BrokenPipeError' at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s of audio, {task.fields[files]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        # a bar only makes sense on a terminal; logs and pipelines get the summary lines instead
        disable=quiet or not stderr.is_terminal,
        transient=False,
    )


@dataclass
class _Tally:
    """What the rows written so far add up to: for the progress bar and the closing summary."""

    started: float = field(default_factory=time.perf_counter)
    done: int = 0  # files, however many rows each has (--per speaker|segment)
    failed: int = 0
    last_path: str | None = None
    audio_seconds: float = 0.0  # from the rows' duration_s
    heard_seconds: float = 0.0  # from the progress reports, for rows without one (--per speaker|segment)
    emotions: Counter[str] = field(default_factory=Counter)
    genders: Counter[str] = field(default_factory=Counter)
    ages: list[float] = field(default_factory=list)

    def add(self, result: Result) -> None:
        new_file = result.path != self.last_path or result.path is None
        self.last_path = result.path
        self.done += new_file
        self.failed += bool(result.error)  # a file that fails has one row, whatever --per says
        if isinstance(result, Segment | SpeakerSummary):
            return  # their audio is counted as it is processed (heard)
        self.audio_seconds += result.duration_s or 0.0
        if isinstance(result, Prediction) and not result.error:
            self.emotions[result.emotion or "?"] += 1
            self.genders[result.gender or "?"] += 1
            if result.age is not None:
                self.ages.append(result.age)

    @property
    def elapsed(self) -> float:
        return max(time.perf_counter() - self.started, 1e-9)

    def fields(self, total_files: int) -> dict[str, Any]:
        return {"files": f"{self.done}/{total_files} files"}

    def log(self, label: str) -> None:
        """The closing lines on stderr (logging: --quiet silences them)."""
        log.info(
            "%d files, %.1f min of audio in %.1f s: %.1f files/s, %.0f audio-s/s",
            self.done,
            (self.audio_seconds or self.heard_seconds) / 60,
            self.elapsed,
            self.done / self.elapsed,
            (self.audio_seconds or self.heard_seconds) / self.elapsed,
        )
        if label != "predict" or not self.done:
            return
        summary = f"{label}: {self.done} files, {self.failed} failed"
        if self.emotions:
            summary += "; emotion " + ", ".join(f"{name} {n}" for name, n in self.emotions.most_common())
            summary += "; gender " + ", ".join(f"{name} {n}" for name, n in self.genders.most_common())
        if self.ages:
            summary += f"; mean age {sum(self.ages) / len(self.ages):.1f}"
        log.info("%s", summary)


def _write(
    results: Iterable[Result], target: OutputTarget, batch_size: int, tally: _Tally, report: Callable[[_Tally], None]
) -> None:
    """Stream results to the output in batches of rows, reporting each one to `report`. A batch
    ends only between files, so an interrupted run never leaves a file with some of its rows
    (--per segment), which --resume would take for done."""
    with target as writer:
        batch: list[Result] = []
        for result in _reported(results, tally, report):
            if len(batch) >= batch_size and result.path != batch[-1].path:
                writer.write([row.row() for row in batch])
                batch = []
            batch.append(result)
        if batch:
            writer.write([row.row() for row in batch])


def _reported(results: Iterable[Result], tally: _Tally, report: Callable[[_Tally], None]) -> Iterator[Result]:
    for result in results:
        tally.add(result)
        report(tally)
        yield result


__all__ = ["input_files", "run", "until_first_error"]
