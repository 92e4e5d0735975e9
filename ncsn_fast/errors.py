"""The exceptions ncsn_fast raises for bad input; the CLI prints them as one line and exits 2."""


class NcsnError(Exception):
    """Base class: a problem with what the user gave us (files, settings), not a bug."""


class ConfigError(NcsnError, ValueError):
    """A config file or setting that cannot be used."""


class CheckpointError(NcsnError):
    """A checkpoint that cannot be read, is refused, or does not match its config."""
