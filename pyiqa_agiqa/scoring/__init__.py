"""Scoring files with one or several metrics without losing work (``pyiqa-agiqa score``).

Rows are (image, prompt, prompt source) from an image file or folder (``--prompt`` for all,
or each image's own embedded prompt), or from a CSV with ``image`` and, optionally,
``prompt`` columns (paths relative to the CSV; an empty prompt is read from the image).

- Each image is decoded once, by DataLoader worker processes ahead of the model, and scored
  by every metric. Images travel as 8-bit (a quarter of float32's bytes: worker to main
  process, batch stacking, and, from pinned memory on a GPU, the copy to the device) and
  become float in [0, 1] on the metric's device, the values ``to_tensor`` gives. The
  prompts of the next batch are tokenised in a thread while the model computes (open_clip's
  tokenizer is pure Python: on a GPU it would otherwise take as long as the text tower).
  Images are bucketed by size, so batches are full even when consecutive images differ in
  size (rows are written as batches complete).
- A row that cannot be scored (missing file, truncated or corrupt image, no prompt
  anywhere) is written with its ``error`` and the rest is scored. Nothing aborts the run
  except an error of the metric itself, and what was computed before it is already on disk.
- Results are written as they are computed (CSV or JSONL by the output's suffix, flushed
  per batch). ``resume=True`` keeps the rows already done in the output and scores only the
  others, by the row contract of :mod:`.contract` (rows keyed by image and requested prompt;
  done only with a finite score for every metric; the same metric set; byte-exact prompts;
  a torn last line scored again), which the Ray engine follows too. One run writes an output
  at a time (:mod:`.lock`).
- Images are read with :func:`pyiqa_agiqa.data.load_rgb`: EXIF orientation applied, 16-bit
  scaled, alpha over white.

Output columns: ``image``, ``prompt``, ``prompt_source`` (``argument``, ``csv`` or an
embedded-metadata tag such as ``png:parameters``), one column per metric, ``error``.
"""

from ..metrics.factory import create_metrics, metric_requests
from .local import batches, decoded, score_rows
from .output import ResultWriter, read_scores, spreadsheet_safe
from .contract import ScoringInputError, is_done, row_key
from .rows import Row, read_row, rows_from_csv, rows_from_target, scan_images

__all__ = ['Row', 'ResultWriter', 'ScoringInputError', 'batches', 'create_metrics', 'decoded', 'is_done',
           'metric_requests', 'read_row', 'read_scores', 'row_key', 'rows_from_csv', 'rows_from_target', 'scan_images',
           'score_rows', 'spreadsheet_safe']
