"""`persona` and `python -m persona_cli`: the command line, with Ctrl-C answered even while it loads.

The console script calls `main` here rather than `persona_cli.cli:main` directly so that a
KeyboardInterrupt during the import of the command line itself (typer, the option declarations)
becomes the same one-line message and exit code 130 as one during a command, not a traceback.
"""

from __future__ import annotations

import sys

#: the exit code of a run stopped by Ctrl-C or SIGTERM (cli.EXIT_INTERRUPTED, 128 + SIGINT)
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> None:
    try:
        from persona_cli.cli import main as run
    except KeyboardInterrupt:
        print("persona: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    run(argv)


if __name__ == "__main__":
    main()
