"""The command line's options and arguments, declared once and shared by the commands (cli.py).

Help is click's plain layout (`rich_markup_mode=None` in cli.py), as most command lines of the field
write it: flags bare, every other option followed by a metavar that says what it takes (FILE, DIR,
N, K/N) or lists its choices ([none|corpus|speaker]). Each option names its metavar here because
Typer 0.29 would otherwise print the Python type (`<str>`, `<int range>`). Arguments are described
in each command's help and shown only in its usage line, where Typer prints them without a type.
This module imports nothing heavy: `persona --help` and `--version` answer before torch loads.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from persona_cli import __version__
from persona_cli.encoders import DEFAULT_ENCODER, ENCODER_NAMES, HALF_PRECISION
from persona_cli.options import Engine, Head, Normalization, Per, Split

#: `-h` as well as `--help`, in every command; help as wide as the terminal, up to 100 columns
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: persona_cli.output.FORMATS, spelled out so that help does not import the writers (pyarrow)
OUTPUT_FORMATS = ("csv", "jsonl", "parquet", "rttm")
TABLE_FORMATS = OUTPUT_FORMATS[:3]  # what embed writes: rttm holds only --per segment predictions


def choices(enum: type[Enum]) -> str:
    """The metavar of a choice: its values, `[none|corpus|speaker]`."""
    return f"[{'|'.join(member.value for member in enum)}]"


PathsArg = Annotated[list[Path] | None, typer.Argument(metavar="PATH", hidden=True, show_default=False)]
DataArg = Annotated[list[str], typer.Argument(metavar="DATA", hidden=True, show_default=False)]
ModelsArg = Annotated[list[str] | None, typer.Argument(metavar="MODEL", hidden=True, show_default=False)]
FilesFrom = Annotated[
    str | None, typer.Option("--files-from", metavar="FILE", help="Read one path per line from FILE ('-': stdin).")
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "-o",
        "--output",
        metavar="FILE",
        help="Output file (.csv, .parquet, .jsonl; .rttm with --per segment); '-' or none: CSV on stdout.",
    ),
]
_FORMAT_HELP = "Output format; needed when -o has no known extension, and must agree with it."
FormatOpt = Annotated[str | None, typer.Option("--format", metavar=f"[{'|'.join(OUTPUT_FORMATS)}]", help=_FORMAT_HELP)]
TableFormatOpt = Annotated[
    str | None, typer.Option("--format", metavar=f"[{'|'.join(TABLE_FORMATS)}]", help=_FORMAT_HELP)
]
#: --encoder's help: the registered names, and the open family of Hugging Face models
ENCODER_HELP = (
    f"Speaker-embedding backend: {', '.join(ENCODER_NAMES)}; or hf:ID_OR_DIR, a Hugging Face speech model "
    "(wav2vec 2.0, HuBERT, WavLM) from a Hub id or local folder: mean+std of its middle hidden state, or of "
    "hidden state N with hf:ID_OR_DIR@N (needs persona-cli's hf extra, transformers). Fuse any of them with '+'."
)
EncoderOpt = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        metavar="NAME",
        help=f"{ENCODER_HELP} [default: the model's encoder; without --model, {DEFAULT_ENCODER}]",
        show_default=False,
    ),
]
NamedEncoderOpt = Annotated[str, typer.Option("--encoder", metavar="NAME", help=ENCODER_HELP)]
SourceOpt = Annotated[
    str | None,
    typer.Option("--encoder-source", metavar="ID|DIR", help="Hub id or local folder with the encoder's weights."),
]
DeviceOpt = Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", metavar="N", min=1, help="Audio chunks per encoder forward call.")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Keep the rows already in -o FILE (or left by an interrupted run) and process only the missing files.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log messages.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        min=0,
        help="Threads that decode and embed files in parallel, one torch thread each "
        "[default: one per core; 0: none, torch uses every core].",
        show_default=False,
    ),
]
ProcessesOpt = Annotated[
    bool,
    typer.Option(
        "--processes",
        help="Make the workers processes forked from this one instead of threads, one torch thread each: "
        "faster on a CPU, where threads wait for Python's lock, for some more memory (CPU, --per file only).",
    ),
]
HalfOpt = Annotated[
    bool,
    typer.Option(
        "--half",
        help=f"Run the encoder network in float16 (for GPUs; {', '.join(HALF_PRECISION)} and fusions that start with them).",
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Process only the K-th of N disjoint parts of the input (split by path hash), for N parallel jobs.",
    ),
]
PerOpt = Annotated[
    Per,
    typer.Option(
        "--per",
        metavar=choices(Per),
        help="One row per file; per speaker of each file (who speaks, how long, their gender, age and "
        "emotions); or per segment (a few seconds of one speaker: when, who, and its emotion).",
    ),
]
SpeakersOpt = Annotated[
    int | None,
    typer.Option("--speakers", metavar="N", min=1, help="With --per speaker|segment: each file has N speakers."),
]
MinSpeakersOpt = Annotated[
    int,
    typer.Option("--min-speakers", metavar="N", min=1, help="With --per speaker|segment: at least N speakers a file."),
]
MaxSpeakersOpt = Annotated[
    int | None,
    typer.Option(
        "--max-speakers",
        metavar="N",
        min=1,
        help="With --per speaker|segment: at most N speakers a file.",
        show_default=False,
    ),
]
PlotOpt = Annotated[
    Path | None,
    typer.Option("--plot", metavar="DIR", help="With --per segment: a timeline picture of each file, DIR/NAME.png."),
]
TrainOutputOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        metavar="DIR",
        help="Report folder: metrics.json, report.md, plots, per-file predictions, and the trained model.",
    ),
]
EvalOutputOpt = Annotated[
    Path | None,
    typer.Option(
        "-o", "--output", metavar="DIR", help="Report folder: metrics.json, report.md, plots, per-file predictions."
    ),
]
#: the report folder's old name, still accepted so that existing scripts keep working
LegacyOutOpt = Annotated[Path | None, typer.Option("--out", metavar="DIR", hidden=True)]
MODEL_HELP = "Model checkpoint (.safetensors), or a bundled model's name (`persona models` lists them)"
OverwriteDirOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Write into a non-empty -o folder, replacing the report (and model) there."),
]
ModelNameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        metavar="NAME",
        help="The trained model's name, shown in the model column of its predictions [default: the -o folder's name].",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="FILE|NAME",
        help=f"{MODEL_HELP} [default: persona-{DEFAULT_ENCODER}, or the bundled model for --encoder and --normalize].",
        show_default=False,
    ),
]
EvalModelOpt = Annotated[
    str | None,
    typer.Option("--model", metavar="FILE|NAME", help=f"{MODEL_HELP}.", show_default=True),
]
FailFastOpt = Annotated[
    bool,
    typer.Option(
        "--fail-fast", help="Stop at the first file that fails (its row and the rows before it are written); exit 1."
    ),
]
PredictNormalizeOpt = Annotated[
    Normalization | None,
    typer.Option(
        "--normalize",
        metavar=choices(Normalization),
        help="corpus (over all files of the run) or speaker (over each folder's files); not none: a file's "
        "prediction depends on the others in its group [default: what the model was trained with].",
        show_default=False,
    ),
]
EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        metavar=choices(Engine),
        help="local: this machine; ray: a Ray cluster via Ray Data (-o names a folder for the Parquet dataset).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to join [default: $RAY_ADDRESS, else a local Ray started for the run].",
    ),
]
FoldsOpt = Annotated[
    int, typer.Option("--folds", metavar="N", min=0, help="Cross-validation folds (0 or 1: no CV, just train).")
]
SplitOpt = Annotated[
    Split,
    typer.Option(
        "--split",
        metavar=choices(Split),
        help="speaker: folds grouped by speaker (honest); corpus: leave one corpus out in turn (recordings "
        "unlike the training ones; --folds is ignored); random: the paper's protocol.",
    ),
]
HeadOpt = Annotated[
    Head | None,
    typer.Option(
        "--head",
        metavar=choices(Head),
        help="fcn: dense layers only; cnn: the paper's conv + dense net [default: fcn; cnn with --paper-recipe].",
        show_default=False,
    ),
]
EpochsOpt = Annotated[
    int,
    typer.Option(
        "--epochs",
        metavar="N",
        min=1,
        help="Training length (an upper bound with --paper-recipe's early stopping).",
    ),
]
PaperRecipeOpt = Annotated[
    bool,
    typer.Option(
        "--paper-recipe",
        help="The paper's recipe: CNN head, lr 1e-3, early stopping and LR decay on a held-out 15 % of speakers.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", metavar="N", help="Seed for folds, initialisation and batches.")]
CompareOpt = Annotated[
    bool,
    typer.Option(
        "--compare",
        help="Cross-validate mfcc, ge2e, xvector and ecapa with both heads and print a Table-1 style comparison.",
    ),
]
TrainNormalizeOpt = Annotated[
    Normalization,
    typer.Option(
        "--normalize",
        metavar=choices(Normalization),
        help="z-normalise features within each corpus or each speaker's clips (see docs/cli.md).",
    ),
]
TestCorpusOpt = Annotated[
    str | None,
    typer.Option(
        "--test-corpus",
        metavar="NAME",
        help="Cross-corpus test: train on the other corpora, score on this one (a reader name: ravdess, emodb...).",
    ),
]
WeakNeutralOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--weak-neutral",
        metavar="NAME",
        help="A corpus (reader name: librispeech, commonvoice...) whose clips without an emotion label train "
        "as neutral: read speech. Repeat for several.",
        show_default=False,
    ),
]


def _show_version(value: bool) -> None:
    if value:
        print(f"persona {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit.")
]
