"""Named errors. The batch loop catches the per-file ones; only cli.py turns errors into exit codes."""


class PersonaError(Exception):
    """Base class for every error persona raises on purpose."""


class UsageError(PersonaError):
    """The command line asked for something impossible (no input, unknown encoder...): exit code 2."""


class AudioLoadError(PersonaError):
    """One file could not be turned into 16 kHz mono samples; it becomes an error row."""


class ModelLoadingError(PersonaError):
    """Encoder weights or a persona checkpoint could not be loaded."""
