"""The `persona` command line: parses options, calls one library function per command, picks exit codes.

Exit codes: 0 every file succeeded; 1 some files failed (their rows are still written); 2 usage error
(nothing processed); 130 interrupted. Torch loads only inside the commands that use it (test_cli_help.py).
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

import typer
from typer.exceptions import TyperException

from persona_cli import cli_options as opt, interrupts
from persona_cli.encoders import DEFAULT_ENCODER
from persona_cli.errors import PersonaError, UsageError
from persona_cli.options import Engine, Normalization, Per, PredictOptions, SpeakerCount, Split

EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# rich_markup_mode=None: click's plain help (cli_options.py)
app = typer.Typer(
    add_completion=False, rich_markup_mode=None, context_settings=opt.CONTEXT_SETTINGS, pretty_exceptions_enable=False
)
log = logging.getLogger("persona")


@app.callback(invoke_without_command=True)
def _main(ctx: typer.Context, version: opt.VersionOpt = False) -> None:
    """Predict a speaker's emotion, gender and age from recorded speech, for whole folders of audio."""
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())


def _setup_logging(quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="persona: %(message)s", force=True)
    # other libraries' INFO is not for users (torch logs cache statistics when Ctrl-C stops its import)
    logging.root.handlers[0].addFilter(lambda record: record.name == "persona" or record.levelno >= logging.WARNING)


def _finish(failed: int, total: int, output: str | None) -> None:
    if failed:
        where = f" in {output}" if output not in (None, "-") else ""
        log.warning("%d of %d files failed (see the error column%s)", failed, total, where)
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("predict")
def predict_command(
    paths: opt.PathsArg = None,
    output: opt.OutputOpt = None,
    files_from: opt.FilesFrom = None,
    output_format: opt.FormatOpt = None,
    encoder: opt.EncoderOpt = None,
    encoder_source: opt.SourceOpt = None,
    model: opt.ModelOpt = None,
    device: opt.DeviceOpt = "auto",
    batch_size: opt.BatchOpt = 32,
    overwrite: opt.OverwriteOpt = False,
    resume: opt.ResumeOpt = False,
    fail_fast: opt.FailFastOpt = False,
    workers: opt.WorkersOpt = None,
    processes: opt.ProcessesOpt = False,
    shard: opt.ShardOpt = None,
    half: opt.HalfOpt = False,
    normalize: opt.PredictNormalizeOpt = None,
    per: opt.PerOpt = Per.file,
    speakers: opt.SpeakersOpt = None,
    min_speakers: opt.MinSpeakersOpt = 1,
    max_speakers: opt.MaxSpeakersOpt = None,
    plot: opt.PlotOpt = None,
    engine: opt.EngineOpt = Engine.local,
    ray_address: opt.RayAddressOpt = None,
    quiet: opt.QuietOpt = False,
) -> None:
    """Predict emotion, gender and age: one output row per audio file (or per speaker, or per segment,
    of each). PATH: audio files, or folders walked recursively."""
    with interrupts.held_while_loading():  # numpy, pyarrow, the decoders
        from persona_cli import batch, results
        from persona_cli.output import OutputTarget

    _setup_logging(quiet)
    count = SpeakerCount(speakers, min_speakers, max_speakers)
    if per == Per.file and count.given:
        raise UsageError("--speakers, --min-speakers and --max-speakers need --per speaker or --per segment")
    if processes and per != Per.file:
        raise UsageError("--processes is for --per file; --per speaker|segment runs its workers as threads")
    if plot is not None:
        from persona_cli.timeline import check_plotting

        if per != Per.segment:
            raise UsageError("--plot draws segments: it needs --per segment")
        check_plotting()
    settings: dict[str, Any] = dict(encoder=encoder, encoder_source=encoder_source, model=model, device=device)
    options = PredictOptions(
        batch_size=batch_size, workers=workers, processes=processes, normalization=normalize, half=half, **settings
    )
    files, options.speakers = batch.input_files(paths, files_from, shard)
    if engine == Engine.ray:
        with interrupts.held_while_loading():
            from persona_cli.ray_engine import run_on_ray

        if per != Per.file:
            raise UsageError("--engine ray predicts --per file only; run --per speaker|segment as --shard K/N jobs")
        if resume or fail_fast:
            raise UsageError("--engine ray has no --resume or --fail-fast (restart parts as --shard K/N jobs)")
        if processes:
            raise UsageError("--processes is for the local engine: Ray runs its own worker processes")
        summary = run_on_ray(files, output, options, address=ray_address, overwrite=overwrite, quiet=quiet)
        _finish(summary.failed, summary.files, str(summary.output))
        return
    schema = {Per.file: results.PREDICTION_SCHEMA, Per.speaker: results.SPEAKER_SCHEMA}.get(per, results.SEGMENT_SCHEMA)
    target = OutputTarget(output, output_format, schema, overwrite=overwrite, resume=resume)
    with interrupts.held_while_loading():
        from persona_cli.predictor import Predictor  # torch: only once the inputs and -o are known good

    predictor = Predictor.from_options(options)
    if predictor.normalization != "none" and resume:
        raise UsageError("--resume does not combine with a normalised model: each prediction depends on the whole run")
    predictor.check_groups(files)
    settings = dict(batch_size=batch_size, fail_fast=fail_fast, quiet=quiet, made_by=predictor.made_by)
    failed = batch.run(_predict_per(predictor, per, count, plot), files, target, label="predict", **settings)
    _finish(failed, len(files), output)


def _predict_per(predictor, per: Per, count: SpeakerCount, plot: Path | None):
    """The predictor's function that makes the rows `--per` asks for (refusing a model it cannot use),
    drawing timelines into `plot` as they pass."""
    if per == Per.file:
        return predictor.predict_files
    from persona_cli.timeline import plotted

    rows = predictor.predict_segments if per == Per.segment else predictor.predict_speakers
    predictor._conversations()  # checks the model before any output is written
    how = {"num_speakers": count.exactly, "min_speakers": count.at_least, "max_speakers": count.at_most}
    if plot is None:
        return lambda files, progress: rows(files, progress=progress, **how)
    return lambda files, progress: plotted(rows(files, progress=progress, **how), plot)


@app.command("embed")
def embed_command(
    paths: opt.PathsArg = None,
    output: opt.OutputOpt = None,
    files_from: opt.FilesFrom = None,
    output_format: opt.TableFormatOpt = None,
    encoder: opt.NamedEncoderOpt = "ge2e",
    encoder_source: opt.SourceOpt = None,
    device: opt.DeviceOpt = "auto",
    batch_size: opt.BatchOpt = 32,
    overwrite: opt.OverwriteOpt = False,
    resume: opt.ResumeOpt = False,
    workers: opt.WorkersOpt = None,
    processes: opt.ProcessesOpt = False,
    shard: opt.ShardOpt = None,
    half: opt.HalfOpt = False,
    quiet: opt.QuietOpt = False,
) -> None:
    """Write the speaker embeddings themselves, one row per audio file. PATH: audio files, or folders
    walked recursively."""
    with interrupts.held_while_loading():  # numpy, pyarrow, the decoders
        from persona_cli import batch, results
        from persona_cli.output import OutputTarget

    _setup_logging(quiet)
    settings: dict[str, Any] = dict(encoder=encoder, encoder_source=encoder_source, device=device, half=half)
    options = PredictOptions(batch_size=batch_size, workers=workers, processes=processes, **settings)
    files, _ = batch.input_files(paths, files_from, shard)
    target = OutputTarget(output, output_format, results.EMBEDDING_SCHEMA, overwrite=overwrite, resume=resume)
    with interrupts.held_while_loading():
        from persona_cli.predictor import Embedder  # torch: only once the inputs and -o are known good

    embedder = Embedder.from_options(options)
    settings = dict(batch_size=batch_size, quiet=quiet, made_by=embedder.made_by)
    failed = batch.run(embedder.embed_files, files, target, label="embed", **settings)
    _finish(failed, len(files), output)


def _command_line() -> str:
    return " ".join(["persona", *sys.argv[1:]])


def _print_metrics(report: dict) -> None:
    from persona_cli.metrics import markdown_table

    if report:
        print(markdown_table(report))


@app.command("train")
def train_command(
    data: opt.DataArg,
    folds: opt.FoldsOpt = 5,
    split: opt.SplitOpt = Split.speaker,
    encoder: opt.NamedEncoderOpt = DEFAULT_ENCODER,
    encoder_source: opt.SourceOpt = None,
    head: opt.HeadOpt = None,
    epochs: opt.EpochsOpt = 20,
    paper_recipe: opt.PaperRecipeOpt = False,
    seed: opt.SeedOpt = 0,
    output: opt.TrainOutputOpt = None,
    overwrite: opt.OverwriteDirOpt = False,
    name: opt.ModelNameOpt = None,
    compare: opt.CompareOpt = False,
    normalize: opt.TrainNormalizeOpt = Normalization.none,
    test_corpus: opt.TestCorpusOpt = None,
    weak_neutral: opt.WeakNeutralOpt = None,
    device: opt.DeviceOpt = "auto",
    batch_size: opt.BatchOpt = 32,
    quiet: opt.QuietOpt = False,
    out: opt.LegacyOutOpt = None,
) -> None:
    """Train and cross-validate the model on labelled corpora. DATA: corpus folders or manifest CSVs
    (NAME:PATH forces a reader). With -o DIR: a report, and a model trained on all of DATA."""
    _setup_logging(quiet)
    experiments = _experiments()
    settings: dict[str, Any] = dict(folds=folds, split=split.value, encoder_source=encoder_source, out=output or out)
    settings.update(overwrite=overwrite)
    settings.update(head=head.value if head else None, epochs=epochs, paper_recipe=paper_recipe, seed=seed)
    settings.update(normalize=normalize.value, device=device, batch_size=batch_size, command=_command_line())
    if compare:
        if test_corpus or weak_neutral:
            raise UsageError("--compare does not combine with --test-corpus or --weak-neutral; run them separately")
        from persona_cli.compare import compare_encoders

        print(compare_encoders(data, **settings))
        return
    weak_neutral, settings["name"] = weak_neutral or [], name
    report = experiments.train(data, encoder=encoder, test_corpus=test_corpus, weak_neutral=weak_neutral, **settings)
    _print_metrics(report)


@app.command("eval")
def eval_command(
    data: opt.DataArg,
    model: opt.EvalModelOpt = f"persona-{DEFAULT_ENCODER}",
    encoder_source: opt.SourceOpt = None,
    output: opt.EvalOutputOpt = None,
    overwrite: opt.OverwriteDirOpt = False,
    device: opt.DeviceOpt = "auto",
    batch_size: opt.BatchOpt = 32,
    quiet: opt.QuietOpt = False,
    out: opt.LegacyOutOpt = None,
) -> None:
    """Score a trained model on labelled corpora. DATA: corpus folders or manifest CSVs (NAME:PATH
    forces a reader). With -o DIR: metrics, plots and per-file predictions; no model is written."""
    _setup_logging(quiet)
    settings: dict[str, Any] = dict(encoder_source=encoder_source, device=device, batch_size=batch_size)
    settings.update(out=output or out, overwrite=overwrite, command=_command_line())
    report = _experiments().evaluate(data, model=model, **settings)
    _print_metrics(report)


@app.command("models")
def models_command(models: opt.ModelsArg = None) -> None:
    """Describe the bundled models, or each MODEL file or name given."""
    from persona_cli.models_info import describe_models

    print(describe_models(models))


def _experiments():
    """experiments.py, which needs the `train` extra (pandas, matplotlib). Its imports are the bulk
    of what train and eval load, so the garbage collector comes back on once they are in."""
    try:
        with interrupts.held_while_loading():
            from persona_cli import experiments
    except ImportError as error:
        raise UsageError(f"persona train/eval need {error.name or error}: pip install 'persona-cli[train]'") from None
    from persona_cli import runtime  # torch: experiments has imported it already

    runtime.collect_garbage_again()
    return experiments


def main(argv: list[str] | None = None) -> None:
    """Entry point: every expected failure becomes one line on stderr and an exit code, never a traceback."""
    # schedulers stop jobs with SIGTERM: treat it like Ctrl-C, so finished rows are published
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        # standalone_mode=False: click hands errors to us instead of printing its multi-line usage box
        exit_code = app(args=argv, prog_name="persona", standalone_mode=False)
    except TyperException as error:  # typer's own parsing errors: unknown option, missing value, bad type
        print(f"persona: error: {error.format_message()}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", EXIT_USAGE))
    except PersonaError as error:  # usage mistakes and unloadable models: nothing was processed
        print(f"persona: error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):  # interrupted outside a command (typer maps it to 130 inside)
        exit_code = EXIT_INTERRUPTED
    if exit_code == EXIT_INTERRUPTED:
        print("persona: interrupted; rows finished so far were written", file=sys.stderr)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
