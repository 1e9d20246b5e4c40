"""The one contract of scoring rows and outputs, shared by the local engine, the Ray engine and
anything that reads their outputs (see docs/scoring-at-scale.md#the-row-contract).

- **Identity.** A row is identified by ``(image, requested prompt)``: the image's path (or
  tar-shard key) and the prompt the input gave for it (``--prompt``, a table cell, a shard's
  caption), or ``''`` when the prompt is read from the image itself. One image scored against
  several prompts is several rows; input rows with the same identity are scored once.
- **Done.** A stored row counts as done only if its ``error`` is empty and it holds a finite
  value for every metric asked for; any other stored row is scored again on a resume.
- **Metric set.** An output whose metric columns differ from the metrics asked for is refused
  (one line naming ``--overwrite`` and a new output), never resumed silently.
- **Scores.** A non-finite score (NaN, inf) is its row's ``error``, never a score.
- **Text.** Prompts travel byte-exact: a table cell is the prompt as written (surrounding
  spaces, tabs, CR, LF kept); only an empty or all-whitespace cell means "read the prompt
  from the image".
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ..errors import OptionError

BASE_COLUMNS = ('image', 'prompt', 'prompt_source')
ERROR_COLUMN = 'error'
TEXT_COLUMNS = BASE_COLUMNS + (ERROR_COLUMN,)  # text from files: untrusted
GIVEN_SOURCES = frozenset({'argument', 'csv', 'webdataset'})  # prompts the input listing gave

RowKey = Tuple[str, str]
T = TypeVar('T')


class ScoringInputError(OptionError):
    """The list of images or prompts to score, or an existing output, is missing or malformed."""


def output_columns(metrics: Sequence[str]) -> List[str]:
    """The columns of an output: ``image, prompt, prompt_source, <metric>..., error``."""
    return list(BASE_COLUMNS) + list(metrics) + [ERROR_COLUMN]


def metric_columns(columns: Iterable[str]) -> List[str]:
    """The metric columns among an output's ``columns``."""
    return [c for c in columns if c not in TEXT_COLUMNS]


def prompt_from_cell(value) -> Optional[str]:
    """A table cell's prompt, byte-exact; ``None`` (read it from the image) when the cell is
    missing, NaN, empty or only whitespace."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def requested_prompt(prompt: Optional[str], prompt_source: str) -> str:
    """The prompt the input gave for a row (``''`` when it is read from the image)."""
    return (prompt or '') if prompt_source in GIVEN_SOURCES else ''


def row_key(image: str, prompt: Optional[str], prompt_source: str) -> RowKey:
    """The identity of a row (input or stored): ``(image, requested prompt)``."""
    return str(image), requested_prompt(prompt, prompt_source)


def key_digest(key: RowKey) -> bytes:
    """A 16-byte digest of a row key (the Ray engine ships sets of them to its tasks)."""
    image, prompt = key
    return hashlib.blake2b(image.encode('utf-8', 'surrogatepass') + b'\0' + prompt.encode('utf-8', 'surrogatepass'),
                           digest_size=16).digest()


def unique_by_key(items: Sequence[T], key) -> Tuple[List[T], int]:
    """``items`` with the later duplicates of each ``key(item)`` dropped, and how many were dropped."""
    seen, kept = set(), []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            kept.append(item)
    return kept, len(items) - len(kept)


def finite_score(value) -> Optional[float]:
    """A stored score as a float, or ``None`` when it is missing, not a number or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_done(record: Mapping, metrics: Sequence[str]) -> bool:
    """Whether a stored row is done: no error and a finite score for every metric in ``metrics``."""
    error = record.get(ERROR_COLUMN)
    if isinstance(error, float) and math.isnan(error):
        error = ''
    return not error and all(finite_score(record.get(m)) is not None for m in metrics)


def nonfinite_error(metric: str, value: float) -> str:
    """The ``error`` of a row whose score from ``metric`` is not finite."""
    return (f'{metric} gave a non-finite score ({value}): the weights or the input hold NaN / inf; '
            'check the weights file (weights with non-finite tensors are refused at load)')


def check_same_metrics(where: str, stored: Sequence[str], asked: Sequence[str]) -> None:
    """An existing output continues only with the metrics it was written with."""
    if list(stored) != list(asked):
        raise ScoringInputError(f'{where} holds the metrics {list(stored)}, this run asks for {list(asked)}: '
                                'resume with the same metrics, pass --overwrite to replace it, or write to a new '
                                'output')


def batch_scores(metric, images, prompts: Sequence[str]) -> List[float]:
    """The first output of ``metric`` (a pyiqa metric) for each of the ``len(prompts)`` images
    of a (B, 3, H, W) batch, as floats, non-finite ones included (the metric raises
    :class:`~pyiqa_agiqa.errors.NonFiniteScoreError` with the batch's scores: they are kept,
    and the caller makes the non-finite ones their rows' errors with :func:`scored_values`)."""
    from ..errors import NonFiniteScoreError

    try:
        scores = metric(images, prompt=list(prompts))
    except NonFiniteScoreError as error:
        if error.scores is None:
            raise
        scores = error.scores
    return scores.reshape(len(prompts), -1)[:, 0].float().cpu().tolist()


def scored_values(scores: Mapping[str, float]) -> Tuple[dict, str]:
    """One row's ``{metric: score}`` -> (the values to store, the row's error): a non-finite
    score is stored empty and named in the error."""
    bad = {m: v for m, v in scores.items() if not math.isfinite(v)}
    if not bad:
        return dict(scores), ''
    values = {m: ('' if m in bad else v) for m, v in scores.items()}
    return values, '; '.join(nonfinite_error(m, v) for m, v in bad.items())


def prompt_from_caption_file(text) -> Optional[str]:
    """A caption file's prompt (a shard's ``txt`` member; the rule of sidecar captions,
    :func:`pyiqa_agiqa.data.captions.caption_prompt`): its text byte-exact but for the one line
    end that closes a text file; ``None`` when empty or only whitespace."""
    from ..data.captions import caption_prompt

    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    return None if text is None else caption_prompt(text)
