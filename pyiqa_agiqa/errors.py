"""Error types shared by the plugin's modules. The command line prints an error of these
types as one line (``error: ...``) instead of a traceback: their messages name the
problem (file, row, option) and the fix."""


class OptionError(ValueError):
    """An option (option file, network, dataset, command line) is unknown or has a wrong value."""


class TrainingError(RuntimeError):
    """A training run cannot go on (non-finite loss, no valid checkpoint, broken state)."""
