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
  per batch). ``resume=True`` keeps the rows already in the output and scores only the
  others (rows that had an error are retried).
- Images are read with :func:`pyiqa_agiqa.data.load_rgb`: EXIF orientation applied, 16-bit
  scaled, alpha over white.

Output columns: ``image``, ``prompt``, ``prompt_source`` (``argument``, ``csv`` or an
embedded-metadata tag such as ``png:parameters``), one column per metric, ``error``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pandas as pd
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm

from pyiqa.utils.img_util import scandir_images

from .data.image_io import ImageReadError, load_rgb, set_max_pixels
from .errors import OptionError
from .prompts import PromptError


class ScoringInputError(OptionError):
    """The list of images or prompts to score is missing or malformed."""


@dataclass
class Row:
    """One image to score. ``error`` is set when it cannot be scored."""
    image: str
    prompt: Optional[str]
    prompt_source: str
    error: str = ''


def rows_from_target(target: str, prompt: Optional[str] = None) -> List[Row]:
    """Rows for an image file or every image of a folder (sorted); without ``prompt`` each
    image's embedded prompt is used (see :func:`read_row`)."""
    if prompt is not None and not str(prompt).strip():
        raise PromptError('--prompt is empty; give the generation prompt, or leave --prompt out to read each '
                          "image's own embedded prompt")
    source = 'argument' if prompt is not None else ''
    if os.path.isdir(target):
        paths = scandir_images(target)
        if not paths:
            raise ScoringInputError(f'no image files in folder {target}')
        return [Row(str(p), prompt, source) for p in paths]
    if not os.path.exists(target):
        raise ScoringInputError(f"no such file or folder: '{target}' (give an image, a folder of images or --csv)")
    return [Row(str(target), prompt, source)]


def rows_from_csv(csv_path: str) -> List[Row]:
    """Rows from a CSV with an ``image`` column and an optional ``prompt`` column."""
    if not os.path.isfile(csv_path):
        raise ScoringInputError(f"no such CSV file: '{csv_path}'")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if 'image' not in table.columns:
        raise ScoringInputError(f"{csv_path}: missing column(s) ['image']; found {list(table.columns)} "
                                '(columns: image, and optionally prompt)')
    base = Path(csv_path).resolve().parent
    prompts = table['prompt'] if 'prompt' in table.columns else [''] * len(table)
    rows = []
    for path, prompt in zip(table['image'], prompts):
        prompt = prompt if prompt.strip() else None
        rows.append(Row(str(path if os.path.isabs(path) else base / path), prompt, 'csv' if prompt else ''))
    return rows


def open_image_file(image: str, data: Optional[bytes] = None) -> io.BytesIO:
    """The bytes of ``image`` (a local path, or any URI pyarrow's filesystems read; ``data``:
    bytes already read, e.g. from a tar shard), read once."""
    if data is not None:
        return io.BytesIO(data)
    if '://' in image:
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(image)
        with fs.open_input_file(path) as handle:
            return io.BytesIO(handle.read())
    with open(image, 'rb') as handle:
        return io.BytesIO(handle.read())


def read_row(image: str, prompt: Optional[str], prompt_source: str, data: Optional[bytes] = None
             ) -> Tuple[Optional[str], str, Optional[Image.Image], str]:
    """One image file, read once, as both engines read it: the prompt embedded in it where the
    row has none (A1111, ComfyUI, InvokeAI, NovelAI, EXIF, XMP; see data/embedded_prompts.py),
    then its pixels as 8-bit RGB (:func:`load_rgb`: EXIF orientation, 16-bit, alpha).

    Returns (prompt, prompt_source, picture or None, error); a missing or broken file, or no
    prompt anywhere, is the error, never an exception."""
    from .data.embedded_prompts import read_embedded_prompt

    try:
        stream = open_image_file(image, data)
    except OSError as error:
        return prompt, prompt_source, None, ('missing file' if isinstance(error, FileNotFoundError)
                                             else f'unreadable file: {error}')
    if not prompt:
        try:
            found = read_embedded_prompt(stream)
        except Exception as error:  # noqa: BLE001 - the reader names what it can; never abort the run
            reason = f'{type(error).__name__}: {error}'
            return None, '', None, f'no prompt: the metadata of {image} cannot be read ({reason})'
        if found.prompt is None:
            return None, '', None, (f'no prompt: {found.detail}; give --prompt or a prompt column'
                                    if found.source == 'none'
                                    else f'no usable prompt in {found.source}: {found.detail}')
        prompt, prompt_source = found.prompt, found.source
        stream.seek(0)
    try:
        return prompt, prompt_source, load_rgb(stream, name=image), ''
    except ImageReadError as error:
        return prompt, prompt_source, None, str(error)
    except Exception as error:  # noqa: BLE001 - one hostile file must not end the run: it is its row's error
        return prompt, prompt_source, None, f'Cannot read image {image}: {type(error).__name__}: {error}'


# ----- output -----
TEXT_COLUMNS = ('image', 'prompt', 'prompt_source', 'error')  # text from files: untrusted
FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')


def spreadsheet_safe(text: str) -> str:
    """A CSV cell that no spreadsheet program runs as a formula (OWASP's CSV injection advice):
    text beginning with ``= + - @``, a tab or a carriage return gets a leading ``'``, which
    spreadsheets show as text and hide. Text already beginning with ``'`` gets one more, so that
    :func:`from_spreadsheet_safe` always gives the original back."""
    return "'" + text if isinstance(text, str) and text[:1] in FORMULA_STARTS + ("'",) else text


def from_spreadsheet_safe(text: str) -> str:
    """The original text of a cell written by :func:`spreadsheet_safe`."""
    return text[1:] if isinstance(text, str) and text[:1] == "'" else text


def safe_csv_record(record: dict) -> dict:
    """``record`` with its text columns made :func:`spreadsheet_safe` (numbers are left alone)."""
    return {k: spreadsheet_safe(v) if k in TEXT_COLUMNS else v for k, v in record.items()}


def read_scores(path: str) -> pd.DataFrame:
    """A CSV or JSONL output of the scorer as a table, with the original text of every cell
    (``pd.read_csv`` would show the ``'`` of :func:`spreadsheet_safe`)."""
    if path.endswith(('.jsonl', '.json')):
        return pd.read_json(path, lines=True, dtype={c: str for c in TEXT_COLUMNS})
    table = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False)
    for column in TEXT_COLUMNS:
        if column in table:
            table[column] = table[column].map(from_spreadsheet_safe)
    return table


class ResultWriter:
    """Appends result rows to a CSV or JSONL file (by suffix), flushed after every write. In CSV
    the text columns are written :func:`spreadsheet_safe` (JSONL keeps the raw text); a resumed
    file is read back with the original text."""

    def __init__(self, path: str, columns: List[str], overwrite: bool = False, resume: bool = False):
        self.path, self.columns = path, list(columns)
        self.jsonl = path.endswith(('.jsonl', '.json'))
        self.done: set = set()
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if exists and not (overwrite or resume):
            raise ScoringInputError(f'{path} exists; pass --resume to continue it or --overwrite to replace it')
        if exists and resume:
            self._keep_scored_rows()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fresh = not (exists and resume)
        self.handle = open(path, 'w' if fresh else 'a', newline='')
        self.writer = None if self.jsonl else csv.DictWriter(self.handle, fieldnames=self.columns)
        if fresh and self.writer:
            self.writer.writeheader()
            self.handle.flush()

    def _read(self) -> List[dict]:
        with open(self.path, newline='') as handle:
            if self.jsonl:
                records = [json.loads(line) for line in handle if line.strip()]  # a torn last line stops here
            else:
                reader = csv.DictReader(handle)
                if reader.fieldnames != self.columns:
                    raise ScoringInputError(f'{self.path} has columns {reader.fieldnames}, this run writes '
                                            f'{self.columns}: resume with the same metrics, or write to another file')
                records = [{k: from_spreadsheet_safe(v) if k in TEXT_COLUMNS else v for k, v in r.items()}
                           for r in reader]
        if records and list(records[0]) != self.columns:
            raise ScoringInputError(f'{self.path} has columns {list(records[0])}, this run writes {self.columns}: '
                                    'resume with the same metrics, or write to another file')
        return records

    def _keep_scored_rows(self) -> None:
        """Resume: keep the rows that were scored (their images are skipped) and drop those
        with an error, whose images are tried again; the file is rewritten atomically."""
        from .weights import atomic_write

        metrics = self.columns[3:-1]
        kept = [r for r in self._read() if not r.get('error') and all(r.get(c) not in (None, '') for c in metrics)]
        self.done = {r['image'] for r in kept}

        def write(tmp):
            with open(tmp, 'w', newline='') as handle:
                if self.jsonl:
                    handle.writelines(json.dumps(r) + '\n' for r in kept)
                else:
                    writer = csv.DictWriter(handle, fieldnames=self.columns)
                    writer.writeheader()
                    writer.writerows(safe_csv_record(r) for r in kept)
        atomic_write(self.path, write)

    def write(self, records: List[dict]) -> None:
        for record in records:
            if self.jsonl:
                self.handle.write(json.dumps(record) + '\n')
            else:
                self.writer.writerow(safe_csv_record(record))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


# ----- decoding and batching -----
class _Decoded(torch.utils.data.Dataset):
    """Row i -> (i, prompt, prompt_source, (3, H, W) uint8 tensor or None, error) by :func:`read_row`;
    whatever goes wrong with one file is that row's error."""

    def __init__(self, rows: Sequence[Row]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = self.rows[i]
        if row.error:
            return i, row.prompt, row.prompt_source, None, row.error
        try:
            prompt, source, picture, error = read_row(row.image, row.prompt, row.prompt_source)
            return i, prompt, source, (TF.pil_to_tensor(picture) if picture is not None else None), error
        except Exception as error:  # noqa: BLE001 - e.g. out of memory making the tensor of a huge image
            reason = f'Cannot read image {row.image}: {type(error).__name__}: {error}'
            return i, row.prompt, row.prompt_source, None, reason


class _PixelLimit:
    """A DataLoader ``worker_init_fn`` giving each worker process the pixel limit of this one
    (a spawned worker would otherwise start with PIL's default)."""

    def __init__(self):
        self.limit = Image.MAX_IMAGE_PIXELS

    def __call__(self, worker_id: int) -> None:
        set_max_pixels(self.limit)


def decoded(rows: Sequence[Row], workers: int = 2) -> Iterator[Tuple[Row, Optional[torch.Tensor]]]:
    """(row, (3, H, W) uint8 tensor or None) in input order, decoded by a DataLoader with
    ``workers`` processes (0: in this process) ahead of the model; a failed row carries its error."""
    loader = torch.utils.data.DataLoader(_Decoded(rows), batch_size=None, num_workers=workers,
                                         prefetch_factor=4 if workers else None,
                                         worker_init_fn=_PixelLimit() if workers else None)
    for i, prompt, source, image, error in loader:
        row = rows[i]
        row.prompt, row.prompt_source, row.error = prompt, source, error
        yield row, image


def batches(stream, batch_size: int, pin_memory: bool = False) -> Iterator[Tuple[List[Row], Optional[torch.Tensor]]]:
    """Batches of ``batch_size`` images of one size, whatever the order sizes come in (one
    bucket per size, flushed when full and at the end), stacked in pinned memory with
    ``pin_memory`` (for a copy to the GPU that does not wait); failed rows come alone with ``None``."""
    def stack(tensors):
        if not pin_memory:
            return torch.stack(tensors)
        out = torch.empty((len(tensors),) + tuple(tensors[0].shape), dtype=tensors[0].dtype, pin_memory=True)
        return torch.stack(tensors, out=out)

    buckets: Dict[tuple, Tuple[List[Row], List[torch.Tensor]]] = {}
    try:
        for row, image in stream:
            if image is None:
                yield [row], None
                continue
            group, tensors = buckets.setdefault(tuple(image.shape), ([], []))
            group.append(row)
            tensors.append(image)
            if len(group) == batch_size:
                del buckets[tuple(image.shape)]
                yield group, stack(tensors)
    except Exception:  # the decoding itself broke (a crashed worker): what was decoded is still scored
        for group, tensors in buckets.values():
            yield group, stack(tensors)
        raise
    for group, tensors in buckets.values():
        yield group, stack(tensors)


def tokenize_prompts(metrics: Dict[str, torch.nn.Module], prompts: Sequence[str]) -> None:
    """Tokenise the texts each metric's text tower will encode for ``prompts`` into its
    backbone's token cache (networks without ``prompt_texts`` read no prompt). Prompts that
    are not all str are left to the metric, which says what is wrong with them."""
    if not all(isinstance(p, str) for p in prompts):
        return
    for metric in metrics.values():
        net = getattr(metric, 'net', metric)
        texts = net.prompt_texts(prompts) if hasattr(net, 'prompt_texts') else []
        if texts:
            net.backbone.token_cache(texts)


def tokenized_ahead(stream, metrics: Dict[str, torch.nn.Module]):
    """``stream``'s (rows, images) batches, each once its prompts are tokenised; the next
    batch's are tokenised in a thread while the caller computes the current one."""
    def submit(item):
        rows, images = item
        return pool.submit(tokenize_prompts, metrics, [r.prompt for r in rows]) if images is not None else None

    def ready(entry):
        item, future = entry
        if future is not None:
            future.result()
        return item

    with ThreadPoolExecutor(1, thread_name_prefix='agiqa-tokenize') as pool:
        previous = None
        for item in stream:
            current = (item, submit(item))
            if previous is not None:
                yield ready(previous)
            previous = current
        if previous is not None:
            yield ready(previous)


def _record(row: Row, scores: Dict[str, float], metrics: Sequence[str]) -> dict:
    record = dict(image=row.image, prompt=row.prompt or '', prompt_source=row.prompt_source)
    record.update({m: scores.get(m, '') for m in metrics})
    record['error'] = row.error
    return record


def score_rows(metrics: Dict[str, torch.nn.Module], rows: Sequence[Row], writer: Optional[ResultWriter] = None,
               batch_size: int = 8, progress: bool = True, workers: int = 2, echo=None) -> pd.DataFrame:
    """Score ``rows`` with every metric ({name: pyiqa metric}); returns the table of this run
    (rows already in a resumed output are skipped). ``echo(record)`` sees each record."""
    if batch_size < 1:
        raise OptionError(f'batch size must be >= 1, got {batch_size}')
    names = list(metrics)
    done = writer.done if writer else set()
    todo = [row for row in rows if row.image not in done]
    records = []
    device = torch.device(next(iter(metrics.values())).device if metrics else 'cpu')
    with tqdm(total=len(todo), unit='image', disable=not progress or len(todo) < 2, desc='scoring') as bar:
        stream = batches(decoded(todo, workers), batch_size, pin_memory=device.type == 'cuda')
        for group, images in tokenized_ahead(stream, metrics):
            if images is not None:  # 8-bit to the device, float there: to_tensor's values
                images = images.to(device, non_blocking=True).float().div_(255)
            if images is None:
                out = [_record(group[0], {}, names)]
            else:
                prompts = [row.prompt for row in group]
                scores = {name: metric(images, prompt=prompts).reshape(len(group), -1)[:, 0].float().cpu().tolist()
                          for name, metric in metrics.items()}
                out = [_record(row, {n: scores[n][i] for n in names}, names) for i, row in enumerate(group)]
            if writer:
                writer.write(out)
            for record in out:
                if echo:
                    echo(record)
            records += out
            bar.update(len(group))
    return pd.DataFrame(records, columns=['image', 'prompt', 'prompt_source'] + names + ['error'])


# ----- metrics -----
def plugin_metric_names() -> List[str]:
    from .metric_configs import AGIQA_METRIC_CONFIGS

    return list(AGIQA_METRIC_CONFIGS)


def metric_network(name: str):
    """The architecture class of the plugin metric ``name`` (OptionError for unknown names)."""
    import difflib

    import pyiqa

    from .metric_configs import AGIQA_METRIC_CONFIGS
    from .training.option_check import network_class

    if name not in AGIQA_METRIC_CONFIGS:
        if name in pyiqa.list_models():
            raise OptionError(f"'{name}' is one of pyiqa's own metrics, which take no prompt: score with pyiqa's "
                              f"command (pyiqa {name} -t IMAGES); this command scores {plugin_metric_names()}")
        close = difflib.get_close_matches(name, plugin_metric_names(), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise OptionError(f"unknown metric '{name}'{hint}; the plugin's metrics: {plugin_metric_names()}")
    return network_class({'network': AGIQA_METRIC_CONFIGS[name]['metric_opts']})


def options_per_metric(names: Sequence[str], options: dict) -> Dict[str, dict]:
    """Each network option goes to the metrics whose network takes it; an option that no
    metric takes is an error naming the known ones."""
    from .training.option_check import constructor_keys, unknown_keys_error

    known = {name: constructor_keys(metric_network(name)) for name in names}
    unused = [k for k in options if not any(keys is None or k in keys for keys in known.values())]
    if unused:
        every = set().union(*[keys or set() for keys in known.values()])
        raise unknown_keys_error(unused, every, f'--set (networks of {list(names)})')
    return {name: {k: v for k, v in options.items() if keys is None or k in keys} for name, keys in known.items()}


def metric_requests(names: Sequence[str], options: Optional[dict] = None,
                    weights: Optional[Dict[Optional[str], str]] = None, allow_untrained: bool = False
                    ) -> Dict[str, dict]:
    """{name: create_metric keyword arguments} for the plugin's metric ``names``, checked before
    any model is built: known names, network ``options`` (each goes to the metrics whose network
    takes it), ``weights`` ({metric name or None: SPEC}) and the weights each output needs
    (:func:`pyiqa_agiqa.metric_readiness.check_weights`)."""
    from .metric_readiness import check_weights, metric_options

    options, weights = dict(options or {}), dict(weights or {})
    unknown = [k for k in weights if k is not None and k not in names]
    if unknown:
        raise OptionError(f'--weights names metric(s) {unknown} that are not scored here ({list(names)})')
    names = list(dict.fromkeys(names))
    requests = {}
    for name, opts in options_per_metric(names, options).items():
        spec = weights.get(name, weights.get(None))
        requests[name] = dict(opts, **({'weights': spec} if spec else {}))
        check_weights(name, metric_options(name, requests[name]), allow_untrained)
    return requests


def create_metrics(names: Sequence[str], device=None, options: Optional[dict] = None,
                   weights: Optional[Dict[Optional[str], str]] = None, seed: Optional[int] = 0,
                   compile_mode: Optional[str] = None, allow_untrained: bool = False) -> Dict[str, object]:
    """{name: pyiqa metric} for the plugin's metric ``names`` (checked first, all of them, by
    :func:`metric_requests`: network ``options``, ``weights`` {metric or None: SPEC}, refusal of
    untrained outputs unless ``allow_untrained``). ``seed`` seeds torch before each metric is
    built, so random weights are the same on every run. ``compile_mode`` (e.g. ``'default'``):
    compile the CLIP towers' blocks (:func:`pyiqa_agiqa.compilation.compile_towers`); None runs
    them eagerly."""
    import pyiqa

    import pyiqa_agiqa  # noqa: F401  (metric entries)

    metrics = {}
    for name, request in metric_requests(names, options, weights, allow_untrained).items():
        if seed is not None:
            torch.manual_seed(seed)
        metrics[name] = pyiqa.create_metric(name, device=device, allow_untrained=allow_untrained, **request)
        if compile_mode:
            from .compilation import compile_towers

            compile_towers(metrics[name], compile_mode)
    return metrics
