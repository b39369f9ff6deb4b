"""User-facing errors: the CLI prints them as one line without a traceback."""


class T2MError(Exception):
    """Base of every error a user can act on (bad file, bad option, unknown id...)."""


class DataError(T2MError, ValueError):
    """A motion or caption file that cannot be read; the message names the file and why."""


class ModelError(T2MError):
    """A checkpoint or index that cannot be used (missing, corrupt, wrong model)."""
