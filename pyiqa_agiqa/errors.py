"""Error types shared by the plugin's modules.

Every error of the plugin's own kinds derives from :class:`AGIQAError` (and from the builtin
type it refines, so ``except ValueError`` keeps working). Their messages name the problem
(file, row, option) and the fix; the command line prints one of them as one line
(``error: ...``, exit status 2) instead of a traceback.
"""

import re


class AGIQAError(Exception):
    """Base of the plugin's own errors (options, prompts, weights, metadata, images, training)."""


class OptionError(AGIQAError, ValueError):
    """An option (option file, network, dataset, command line) is unknown or has a wrong value."""


class TrainingError(AGIQAError, RuntimeError):
    """A training run cannot go on (non-finite loss, no valid checkpoint, broken state)."""


class PartlyFailedError(AGIQAError, RuntimeError):
    """A command finished, but some of its items (rows, runs, splits) failed: each is named, the
    rest is written. The command line prints it as one line and exits with status 1."""


class RunsFailedError(TrainingError, PartlyFailedError):
    """Some training runs of a grid (benchmark) or of a multi-split run failed; the others finished."""


class WeightsRequiredError(AGIQAError, RuntimeError):
    """A metric whose output comes from trained parts (a head, learned prompts) was asked for
    without fine-tuned weights: its scores would mean nothing, so it is refused."""


class NonFiniteScoreError(AGIQAError, ArithmeticError):
    """A metric gave a NaN or infinite score (non-finite weights or input). ``scores`` holds the
    batch's scores, ``rows`` the indices of the non-finite ones, so that a caller scoring many
    images can keep the finite ones and make the others their rows' errors."""

    def __init__(self, message: str, scores=None, rows=()):
        super().__init__(message)
        self.scores, self.rows = scores, list(rows)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line. An error re-raised by a DataLoader worker carries
    the worker's traceback after its message: only the message is kept."""
    text = str(error)
    marker = text.find('\nOriginal Traceback')
    if marker >= 0:  # "Caught X in DataLoader worker process N.\nOriginal Traceback ...\nX: message"
        last = text.rstrip().splitlines()[-1]
        text = last.split(': ', 1)[1] if ': ' in last else last
    return ' '.join(text.split())


_OBJECT_REPR = re.compile(r' ?<[\w.]+ object at 0x[0-9a-fA-F]+>')


def name_streams(text: str, name: str = '') -> str:
    """``text`` with every default object repr (``<_io.BytesIO object at 0x7f...>``, which a
    library puts in its message when it was given a stream) replaced by ``name`` (removed when
    ``name`` is empty), so that an error names the file and not a memory address."""
    return _OBJECT_REPR.sub(lambda m: f' {name}' if name and m.group().startswith(' ') else name, text)
