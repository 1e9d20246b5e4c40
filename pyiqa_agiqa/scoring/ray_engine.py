"""Scoring a corpus on Ray Data: ``pyiqa-agiqa score METRIC ... --engine ray --input SRC --output DST``.

Ray Data does the scheduling (streaming read, CPU tasks, an actor pool on the GPUs,
back-pressure, retries); this module only says what runs where:

1. **Read** (:func:`read_source`): rows ``image`` (path or tar-shard key, the row's identity),
   ``prompt``, ``prompt_source``, and for tar shards the image ``bytes``. SRC is a folder of
   images (with ``prompt`` for all, or each image's embedded prompt), a CSV / Parquet / JSONL
   table of ``image[,prompt]`` rows (local, or any filesystem pyarrow knows: ``s3://``,
   ``gs://`` ...; relative local paths are relative to the table), or WebDataset tar shards
   (a ``.tar`` path, a glob, or a ``.txt`` list of shard paths; image under ``jpg`` / ``png`` /
   ``webp``, prompt under ``txt`` or ``json``'s ``prompt``).
2. **Decode** (Ray tasks on CPU workers, :func:`decode_batch`): bytes -> 8-bit RGB exactly as the
   single-process scorer reads them (EXIF orientation, 16-bit, alpha), the embedded prompt
   where the row has none; a missing or broken image becomes its row's ``error``.
3. **Score** (an actor pool, :class:`MetricActor`): one copy of each metric per actor
   (``num_gpus`` per actor, ``actors`` of them), the images of a batch grouped by size, views
   cut and every metric run on the actor's device, in the precision asked for.
4. **Write** (:class:`AtomicPartsDatasink`): DST is a folder of ``part-*.parquet`` (or
   ``.csv``) files, each written to a temporary name and renamed when complete. One row per
   row: ``image, prompt, prompt_source, <metric>..., error``.

Nothing is lost: a broken image is a row with its error; a restarted job with the same DST
reads the complete part files and skips the rows done there, by the row contract of
:mod:`.contract` that the local engine follows too (rows keyed by image and requested prompt,
duplicates scored once, done only with a finite score for every metric, the same metric set,
byte-exact prompts); a part file cut by a crash is never complete, so its rows are scored
again. One job writes a DST at a time (:mod:`.lock`). The summary counts rows read,
duplicated, skipped, scored and failed, and the images/s of the run.

Works on one machine (``ray.init()`` with no cluster) and on a cluster (``RAY_ADDRESS``).
"""

from __future__ import annotations

import glob
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from ..errors import AGIQAError, OptionError, one_line
from .lock import hold_output
from .contract import (ScoringInputError, batch_scores, check_same_metrics, is_done, key_digest, metric_columns,
                       output_columns, prompt_from_caption_file, prompt_from_cell, row_key, scored_values)

IMAGE_KEYS = ('jpg', 'jpeg', 'png', 'webp')
TABLE_SUFFIXES = {'.csv': 'csv', '.parquet': 'parquet', '.jsonl': 'json', '.json': 'json'}
INSTALL_HINT = "the Ray engine needs Ray Data: pip install 'pyiqa-agiqa[ray]' (or pip install 'ray[data]')"


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise OptionError(INSTALL_HINT) from None
    return ray


# ----- 1. reading -----
def _shard_paths(src: str) -> Optional[List[str]]:
    if src.endswith('.txt') and os.path.isfile(src):  # a shard listed twice is read once
        return list(dict.fromkeys(line.strip() for line in Path(src).read_text().splitlines() if line.strip()))
    if src.endswith('.tar') or ('*' in src and src.rstrip('*').endswith(('.tar', '/'))):
        return sorted(glob.glob(src)) if '*' in src else [src]
    return None


def _webdataset_rows(batch: pd.DataFrame) -> pd.DataFrame:
    """read_webdataset records -> image (shard key), bytes, prompt (the ``txt`` caption, else
    ``json``'s ``prompt``, byte-exact: :mod:`.contract`)."""
    import json

    out = []
    for record in batch.to_dict('records'):
        key = f"{record.get('__url__', '')}#{record.get('__key__', '')}"
        data = next((record[k] for k in IMAGE_KEYS if record.get(k) is not None), None)
        prompt = prompt_from_caption_file(record.get('txt'))
        if prompt is None and record.get('json') is not None:
            try:
                meta = json.loads(record['json']) if isinstance(record['json'], (bytes, str)) else record['json']
                prompt = prompt_from_cell(meta.get('prompt')) if isinstance(meta, dict) else None
            except ValueError:
                prompt = None
        out.append(dict(image=key, bytes=data, prompt=prompt or '', prompt_source='webdataset' if prompt else ''))
    return pd.DataFrame(out, columns=['image', 'bytes', 'prompt', 'prompt_source'])


def read_source(src: str, prompt: Optional[str] = None):
    """A Ray Dataset of the rows to score (see the module doc)."""
    ray = require_ray()
    shards = _shard_paths(src)
    if shards is not None:
        if not shards:
            raise OptionError(f"no tar shards match '{src}'")
        return ray.data.read_webdataset(shards, decoder=None).map_batches(_webdataset_rows, batch_format='pandas')
    suffix = Path(src.split('?')[0]).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        ds = _read_table(ray, src, TABLE_SUFFIXES[suffix])
        if 'image' not in ds.columns():
            raise OptionError(f"{src}: no 'image' column (columns: {ds.columns()}); give image[,prompt] rows")
        base = str(Path(src).resolve().parent) if '://' not in src else None
        return ds.map_batches(_table_rows, fn_kwargs=dict(base=base), batch_format='pandas')
    if os.path.isdir(src):
        from .rows import rows_from_target

        rows = rows_from_target(src, prompt)
        return ray.data.from_items([dict(image=r.image, prompt=r.prompt or '', prompt_source=r.prompt_source)
                                    for r in rows])
    raise OptionError(f"--input '{src}' is not a folder, a .csv / .parquet / .jsonl table or .tar shards")


def _read_table(ray, src: str, kind: str):
    """A table of rows, its ``image`` and ``prompt`` cells read as text, byte-exact (CSV: quoted
    cells may hold line ends, nothing is stripped or converted)."""
    if kind == 'csv':
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return ray.data.read_csv(src, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                                 convert_options=pacsv.ConvertOptions(
                                     column_types={'image': pa.string(), 'prompt': pa.string()},
                                     strings_can_be_null=False, quoted_strings_can_be_null=False))
    return {'parquet': ray.data.read_parquet, 'json': ray.data.read_json}[kind](src)


def _table_rows(batch: pd.DataFrame, base: Optional[str]) -> pd.DataFrame:
    images = [p if base is None or os.path.isabs(p) or '://' in p else os.path.join(base, p)
              for p in batch['image'].astype(str)]
    cells = batch['prompt'].tolist() if 'prompt' in batch else [None] * len(batch)
    prompts = [prompt_from_cell(cell) for cell in cells]
    return pd.DataFrame(dict(image=images, prompt=[p or '' for p in prompts],
                             prompt_source=['csv' if p else '' for p in prompts]))


# ----- 2. decoding (CPU tasks) -----
def decode_batch(batch: pd.DataFrame, max_pixels: Optional[int] = None) -> pd.DataFrame:
    """Rows -> rows with ``pixels`` (H, W, 3) uint8 (or None) and ``error``, each file read once
    as the local scorer reads it (:func:`pyiqa_agiqa.scoring.read_row`: embedded prompt for a
    row without one, EXIF orientation, 16-bit, alpha; an image of more than ``max_pixels``
    pixels, default PIL's limit, or one that fails to decode in any way is its row's error)."""
    from ..data.image_io import set_max_pixels
    from .rows import read_row

    if max_pixels is not None:
        set_max_pixels(max_pixels)
    out = []
    for record in batch.to_dict('records'):
        prompt, source, picture, error = read_row(record['image'], record.get('prompt') or None,
                                                  record.get('prompt_source') or '', record.get('bytes'))
        out.append(dict(image=record['image'], prompt=prompt or '', prompt_source=source,
                        pixels=None if picture is None else np.asarray(picture), error=error))
    return pd.DataFrame(out, columns=['image', 'prompt', 'prompt_source', 'pixels', 'error'])


# ----- 3. scoring (actor pool) -----
class MetricActor:
    """Holds one copy of every metric; scores a batch of decoded rows."""

    def __init__(self, metrics: Sequence[str], options: dict, weights: dict, seed: Optional[int], device=None,
                 threads: Optional[int] = None, compile_mode: Optional[str] = None, allow_untrained: bool = False):
        import torch

        from ..metrics.factory import create_metrics

        if threads:  # Ray sets OMP_NUM_THREADS to the actor's whole logical CPUs (1 for 0.5)
            torch.set_num_threads(threads)
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.names = list(dict.fromkeys(metrics))
        self.metrics = create_metrics(self.names, device, options, weights, seed, compile_mode, allow_untrained)
        self.device = torch.device(device)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import torch

        out = batch[['image', 'prompt', 'prompt_source', 'error']].copy()
        for name in self.names:
            out[name] = np.nan
        groups: Dict[tuple, List[int]] = {}
        for i, pixels in enumerate(batch['pixels']):
            if pixels is not None and not out.at[i, 'error']:
                groups.setdefault(np.asarray(pixels).shape, []).append(i)
        for rows in groups.values():
            stack = np.stack([np.asarray(batch['pixels'].iloc[i]) for i in rows])
            images = torch.from_numpy(stack).to(self.device).permute(0, 3, 1, 2).float().div_(255)
            prompts = [out.at[i, 'prompt'] for i in rows]
            with torch.no_grad():
                scores = {name: batch_scores(metric, images, prompts) for name, metric in self.metrics.items()}
            for k, i in enumerate(rows):  # a non-finite score is the row's error (.contract)
                values, error = scored_values({name: scores[name][k] for name in self.names})
                for name in self.names:
                    out.at[i, name] = values[name] if values[name] != '' else np.nan
                out.at[i, 'error'] = error
        return out[output_columns(self.names)]


# ----- 4. writing -----
def _datasink_class():
    from ray.data import Datasink

    class AtomicPartsDatasink(Datasink):
        """Each block -> DST/part-<uuid>.<fmt>, written under a temporary name and renamed."""

        def __init__(self, folder: str, fmt: str):
            self.folder, self.fmt = folder, fmt

        def write(self, blocks, ctx):
            os.makedirs(self.folder, exist_ok=True)
            for block in blocks:
                table = block.to_pandas() if hasattr(block, 'to_pandas') else pd.DataFrame(block)
                if table.empty:
                    continue
                name = os.path.join(self.folder, f'part-{uuid.uuid4().hex}.{self.fmt}')
                tmp = name + '.tmp'
                if self.fmt == 'parquet':  # Parquet keeps the raw text; CSV cells are made spreadsheet-safe
                    table.to_parquet(tmp, index=False)
                else:
                    _spreadsheet_safe_table(table).to_csv(tmp, index=False)
                os.replace(tmp, name)

    return AtomicPartsDatasink


def _spreadsheet_safe_table(table: pd.DataFrame) -> pd.DataFrame:
    from .output import TEXT_COLUMNS, spreadsheet_safe

    return table.assign(**{c: table[c].map(spreadsheet_safe) for c in TEXT_COLUMNS if c in table})


def part_files(folder: str) -> List[str]:
    """The complete part files of a DST folder (temporary ``.tmp`` files are not parts)."""
    return sorted(glob.glob(os.path.join(folder, 'part-*.parquet')) + glob.glob(os.path.join(folder, 'part-*.csv')))


def _read_part(path: str) -> pd.DataFrame:
    from .output import read_scores

    try:
        return pd.read_parquet(path) if path.endswith('.parquet') else read_scores(path)
    except Exception as error:  # noqa: BLE001 - any reader error: the file is named, never a traceback
        raise ScoringInputError(f'{path} is not a readable part file ({type(error).__name__}: {one_line(error)}): '
                                'move it out of the output folder, or pass --overwrite to score everything again'
                                ) from None


def read_parts(parts: Sequence[str]) -> pd.DataFrame:
    """The rows of the part files, with the original text of CSV cells (see ``scoring.read_scores``);
    part files written with different metrics are an error naming two of them."""
    tables = [_read_part(p) for p in parts]
    for part, table in zip(parts[1:], tables[1:]):
        if set(metric_columns(table.columns)) != set(metric_columns(tables[0].columns)):
            raise ScoringInputError(f'{part} and {parts[0]} hold different metrics ({metric_columns(table.columns)} '
                                    f'and {metric_columns(tables[0].columns)}): keep one set in the output folder')
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=output_columns([]))
    for column in ('prompt', 'prompt_source', 'error'):
        table[column] = table[column].fillna('').astype(str)
    return table


def _keys(table: pd.DataFrame) -> List[tuple]:
    return [row_key(i, p, s) for i, p, s in zip(table['image'], table['prompt'], table['prompt_source'])]


def _done_mask(table: pd.DataFrame, metrics: Sequence[str]) -> List[bool]:
    return [is_done(record, metrics) for record in table.to_dict('records')]


def read_results(folder: str) -> pd.DataFrame:
    """The results of a DST folder, one row per (image, requested prompt) (:mod:`.contract`): its
    scored row if it has one, else its last error (a row that failed and was tried again on a
    resume appears once)."""
    table = read_parts(part_files(folder))
    metrics = metric_columns(table.columns)
    table = table.assign(_ok=_done_mask(table, metrics), _key=_keys(table)).sort_values('_ok', kind='stable')
    return table.drop_duplicates('_key', keep='last').drop(columns=['_ok', '_key']).reset_index(drop=True)


def done_keys(folder: str, metrics: Sequence[str]) -> set:
    """Digests of the row keys that are done in a DST folder (:func:`.contract.is_done` for every
    metric of ``metrics``); a folder holding other metrics is refused."""
    table = read_parts(part_files(folder))
    if len(table):
        check_same_metrics(folder, sorted(metric_columns(table.columns)), sorted(metrics))
    done = table[_done_mask(table, metrics)] if len(table) else table
    return {key_digest(k) for k in _keys(done)} if len(done) else set()


@dataclass
class RaySummary:
    read: int = 0
    duplicates: int = 0
    skipped: int = 0
    scored: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: List[tuple] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return (self.scored + self.failed) / self.seconds if self.seconds else 0.0


def _check_request(metrics: Sequence[str], options: dict, weights: dict, allow_untrained: bool) -> None:
    """Metric names, network options, the weights each output needs and local weights are
    checked on the driver, before any worker starts (no model is built here)."""
    from ..metrics.factory import metric_requests
    from ..weights.specs import resolve

    metric_requests(list(metrics), options, weights, allow_untrained)
    for spec in weights.values():
        if not str(spec).startswith(('hf://', 'http://', 'https://')):
            resolve(spec)


def console_logging(level: int) -> None:
    """Ray's console log handlers show records from ``level`` up to WARNING only: a worker's
    error is reported by the command as one line (its traceback stays in Ray's session log files,
    ``/tmp/ray/session_latest/logs``)."""
    import logging

    def keep(record) -> bool:
        return level <= record.levelno < logging.ERROR and not record.exc_info

    for name in ('ray', 'ray.data'):
        for handler in logging.getLogger(name).handlers:
            if getattr(handler, 'stream', None) is not None:
                handler.addFilter(keep)


def _actor_pool(ray, actors: int) -> dict:
    """A fixed pool of ``actors``: ``compute=`` from Ray 2.51 on, ``concurrency=`` before it."""
    major, minor = (int(part) for part in ray.__version__.split('.')[:2])
    if (major, minor) >= (2, 51):
        return dict(compute=ray.data.ActorPoolStrategy(size=actors))
    return dict(concurrency=actors)


def _plan(ds, done: set):
    """One pass over the rows' identities on the driver (no image bytes): (rows read, duplicate
    rows, rows already done, digests to drop from the stream, one row per duplicated key to
    score once). Duplicates are dropped from the stream and their one row added back, so each
    (image, requested prompt) is scored once whatever blocks the copies fall in."""
    seen, duplicated, read, skipped = set(), {}, 0, 0
    columns = ['image', 'prompt', 'prompt_source']
    for batch in ds.select_columns(columns).iter_batches(batch_format='pandas'):
        for image, prompt, source in zip(batch['image'], batch['prompt'], batch['prompt_source']):
            read += 1
            digest = key_digest(row_key(image, prompt, source))
            if digest in seen:
                if digest not in done:
                    duplicated.setdefault(digest, dict(image=image, prompt=prompt, prompt_source=source))
                continue
            seen.add(digest)
            skipped += digest in done
    return read, read - len(seen), skipped, done | set(duplicated), list(duplicated.values())


PLUGIN_ERROR_LINE = re.compile(r'pyiqa_agiqa(?:\.\w+)*\.(\w+Error): ([^\n]+)')


def _without(batch: pd.DataFrame, drop: set) -> pd.DataFrame:
    """The rows of ``batch`` whose key digest is not in ``drop``."""
    digests = [key_digest(row_key(i, p, s)) for i, p, s in zip(batch['image'], batch['prompt'], batch['prompt_source'])]
    return batch[[d not in drop for d in digests]].reset_index(drop=True)


def _plugin_error(error: BaseException) -> Optional[AGIQAError]:
    """The plugin's own error (a refused weights file, a bad option) inside an error that Ray
    raised for a task or an actor, if there is one: found in the chain of causes, or, where Ray
    passes only the worker's traceback as text (an actor that died in its constructor), as the
    last ``pyiqa_agiqa....Error: message`` line of that text."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AGIQAError):
            return current
        current = getattr(current, 'cause', None) or current.__cause__ or current.__context__
    found = PLUGIN_ERROR_LINE.findall(str(error))
    return ScoringInputError(found[-1][1].strip()) if found else None


def _run_job(scored, dst: str, fmt: str) -> None:
    """Run the stream into DST; an error from a worker becomes one line naming what failed."""
    try:
        scored.write_datasink(_datasink_class()(dst, fmt))
    except Exception as error:  # noqa: BLE001 - Ray wraps the workers' errors in its own types
        plugin = _plugin_error(error)
        if plugin is not None:
            raise ScoringInputError(one_line(plugin)) from None
        raise ScoringInputError(f'the Ray job failed: {type(error).__name__}: {one_line(error)[:300]} (the part files '
                                f'already in {dst} are kept: rerun the same command to continue; the workers\' '
                                'tracebacks are in /tmp/ray/session_latest/logs)') from None


def score_with_ray(metrics: Sequence[str], src: str, dst: str, prompt: Optional[str] = None,
                   options: Optional[dict] = None, weights: Optional[dict] = None, seed: Optional[int] = 0,
                   batch_size: int = 32, actors: int = 1, gpus_per_actor: float = 0.0,
                   cpus_per_actor: Optional[float] = None, threads_per_actor: Optional[int] = None,
                   compile_mode: Optional[str] = None, decode_batch_size: int = 16, fmt: str = 'parquet',
                   overwrite: bool = False, allow_untrained: bool = False, max_pixels: Optional[int] = None,
                   console_level: Optional[int] = None) -> RaySummary:
    """Score SRC with ``metrics`` into the DST folder on Ray Data (see the module doc), with the
    single-process scorer's options (``options``: network options; ``weights``: {metric or None:
    SPEC}; ``seed``; ``compile_mode``; ``allow_untrained``; ``max_pixels``: the pixel limit of the
    decoding tasks, default PIL's; ``console_level``: see :func:`console_logging`, None leaves
    Ray's console as Ray sets it). A DST that holds part files is resumed unless ``overwrite``,
    by the rules of :mod:`.contract` (rows keyed by image and requested prompt, done only with
    a finite score for every metric, the same metrics). One job at a time per DST.

    ``cpus_per_actor`` (Ray's logical CPUs) defaults to 1 with GPUs and 0.5 without, so that on
    a CPU-only machine the actors never hold every CPU and decoding tasks can always run.
    ``threads_per_actor`` (torch's intra-op threads in each actor) defaults, for actors without
    GPUs, to the cluster's CPUs divided by ``actors``, so that one actor on a CPU machine
    computes with every core as the single-process scorer does (Ray would give it one thread)."""
    ray = require_ray()
    options, weights = dict(options or {}), dict(weights or {})
    names = list(dict.fromkeys(metrics))
    _check_job_sizes(fmt, batch_size, actors, threads_per_actor)
    _check_request(names, options, weights, allow_untrained)
    lock = hold_output(dst, folder=True)
    try:
        _connect(ray, console_level)
        actor = dict(metrics=names, options=options, weights=weights, seed=seed,
                     threads=_actor_threads(ray, threads_per_actor, gpus_per_actor, actors),
                     compile_mode=compile_mode, allow_untrained=allow_untrained)
        stages = dict(decoding=_decoding_stage(decode_batch_size, max_pixels), actor=actor,
                      pool=_pool_stage(ray, batch_size, actors, gpus_per_actor, cpus_per_actor))
        return _score(ray, read_source(src, prompt), dst, names, fmt, overwrite, stages)
    finally:
        lock.release()


def _check_job_sizes(fmt: str, batch_size: int, actors: int, threads_per_actor: Optional[int]) -> None:
    if fmt not in ('parquet', 'csv'):
        raise OptionError(f"--format must be parquet or csv, got '{fmt}'")
    if batch_size < 1 or actors < 1 or (threads_per_actor is not None and threads_per_actor < 1):
        raise OptionError('the batch size, the number of actors and the threads per actor must be >= 1')


def _connect(ray, console_level: Optional[int]) -> None:
    """Join the cluster of ``RAY_ADDRESS`` (else start a local one) unless Ray is already up."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get('RAY_ADDRESS'), include_dashboard=False, log_to_driver=False)
    if console_level is not None:
        console_logging(console_level)


def _actor_threads(ray, threads_per_actor: Optional[int], gpus_per_actor: float, actors: int) -> Optional[int]:
    """torch's threads in each actor: as given, else for CPU actors the cluster's CPUs shared
    between them (Ray would give each one thread); None leaves GPU actors as they are."""
    if threads_per_actor is None and not gpus_per_actor:
        return max(1, int(ray.cluster_resources().get('CPU', 1)) // actors)
    return threads_per_actor


def _decoding_stage(decode_batch_size: int, max_pixels: Optional[int]) -> dict:
    """``map_batches`` arguments of the decoding tasks (one CPU each)."""
    return dict(batch_size=decode_batch_size, batch_format='pandas', num_cpus=1, fn_kwargs=dict(max_pixels=max_pixels))


def _pool_stage(ray, batch_size: int, actors: int, gpus_per_actor: float, cpus_per_actor: Optional[float]) -> dict:
    """``map_batches`` arguments of the metric actors: their pool, GPUs and logical CPUs (default
    1 with GPUs, 0.5 without, so that actors never hold every CPU of a CPU-only machine)."""
    return dict(batch_size=batch_size, batch_format='pandas', **_actor_pool(ray, actors),
                num_gpus=gpus_per_actor or None,
                num_cpus=cpus_per_actor if cpus_per_actor is not None else (1 if gpus_per_actor else 0.5))


def _score(ray, ds, dst: str, names: List[str], fmt: str, overwrite: bool, stages: dict) -> RaySummary:
    """The job on the rows ``ds`` with ``stages`` (``map_batches`` keyword arguments of the
    decoding tasks, the actor pool, and the actors' constructor)."""
    if overwrite:
        for part in part_files(dst):
            os.remove(part)
    done = done_keys(dst, names)
    before = part_files(dst)
    start = time.perf_counter()
    summary = RaySummary()
    summary.read, summary.duplicates, summary.skipped, drop, once = _plan(ds, done)
    if drop:
        ds = ds.map_batches(_without, fn_kwargs=dict(drop=drop), batch_format='pandas')
    if once:
        ds = ds.union(ray.data.from_items(once))
    scored = (ds.map_batches(decode_batch, **stages['decoding'])
              .map_batches(MetricActor, fn_constructor_kwargs=stages['actor'], **stages['pool']))
    _run_job(scored, dst, fmt)
    summary.seconds = time.perf_counter() - start
    new = read_parts([p for p in part_files(dst) if p not in before])
    failed = new[new['error'] != '']
    summary.failed, summary.scored = len(failed), len(new) - len(failed)
    summary.failures = list(zip(failed['image'], failed['error']))[:10]
    return summary
