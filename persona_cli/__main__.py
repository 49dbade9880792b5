"""`persona` and `python -m persona_cli`: the command line, with Ctrl-C answered even while it loads.

The console script calls `main` here rather than `persona_cli.cli:main` directly so that a
KeyboardInterrupt during the import of the command line itself (typer, the option declarations)
becomes the same one-line message and exit code 130 as one during a command, not a traceback.
"""

from __future__ import annotations

import gc
import sys

#: the exit code of a run stopped by Ctrl-C or SIGTERM (cli.EXIT_INTERRUPTED, 128 + SIGINT)
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> None:
    # torch, pyarrow and a model make some 180,000 objects that live until the process ends. The
    # cyclic garbage collector would walk them several times while they load and once more at exit,
    # about 0.7 s of every run. So it stays off until they are loaded
    # (runtime.collect_garbage_again), and they are frozen out of the collection at exit.
    gc.disable()
    try:
        try:
            from persona_cli.cli import main as run
        except KeyboardInterrupt:
            print("persona: interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        run(argv)
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
