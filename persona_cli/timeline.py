"""A recording's timeline as a picture (`persona predict --per segment --plot DIR`): who speaks when,
one row per speaker, and the emotion of each segment along the same time axis, coloured by speaker.

matplotlib comes with the `train` extra; it is imported when the first picture is drawn, with the
Agg backend, so the command line never needs a display.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from persona_cli.errors import UsageError
from persona_cli.labels import EMOTIONS
from persona_cli.results import Segment


def check_plotting() -> None:
    """Refuse --plot (UsageError) before any work where matplotlib is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'persona-cli[train]'")


def plotted(rows: Iterable[Segment], folder: Path) -> Iterator[Segment]:
    """Pass the rows through, drawing each recording's timeline into `folder` once its rows are done
    (a recording's segments come together, so only one recording's are held)."""
    folder.mkdir(parents=True, exist_ok=True)
    held: list[Segment] = []
    for row in rows:
        if held and row.path != held[0].path:
            _draw_if_any(held, folder)
            held = []
        held.append(row)
        yield row
    _draw_if_any(held, folder)


def _draw_if_any(segments: list[Segment], folder: Path) -> None:
    drawn = [s for s in segments if s.start_s is not None]
    if drawn:
        plot_timeline(drawn, folder / f"{Path(drawn[0].path or 'waveform').stem}.png")


def plot_timeline(segments: Sequence[Segment], path: Path) -> Path:
    """Draw one recording's segments to `path` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speakers = sorted({s.speaker for s in segments if s.speaker}, key=lambda name: int(name[1:]))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(speakers)}
    end = max(s.end_s or 0.0 for s in segments)
    figure, (who, how) = plt.subplots(
        2, 1, sharex=True, figsize=(min(4 + end / 10, 16), 1.2 + 0.4 * (len(speakers) + len(EMOTIONS)))
    )
    for segment in segments:
        if segment.start_s is None or segment.end_s is None or segment.speaker is None:
            continue  # a failed recording's row
        span = (segment.start_s, segment.end_s - segment.start_s)
        colour = colours[segment.speaker]
        who.broken_barh([span], (speakers.index(segment.speaker) - 0.4, 0.8), color=colour)
        if segment.emotion:
            # the more confident, the more solid
            alpha = 0.3 + 0.7 * (segment.emotion_confidence or 0.0)
            how.broken_barh([span], (EMOTIONS.index(segment.emotion) - 0.4, 0.8), color=colour, alpha=alpha)
    who.set_yticks(range(len(speakers)), [_speaker_label(segments, name) for name in speakers])
    who.invert_yaxis()
    how.set_yticks(range(len(EMOTIONS)), list(EMOTIONS))
    how.invert_yaxis()
    how.set_xlabel("time (s)")
    how.set_xlim(0, end)
    who.set_title(Path(segments[0].path or "waveform").name)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _speaker_label(segments: Sequence[Segment], name: str) -> str:
    """`S1 (male, 34)`: the speaker and what was read from their voice."""
    own = next(s for s in segments if s.speaker == name)
    voice = ", ".join(str(v) for v in (own.gender, None if own.age is None else round(own.age)) if v is not None)
    return f"{name} ({voice})" if voice else name


__all__ = ["check_plotting", "plot_timeline", "plotted"]
