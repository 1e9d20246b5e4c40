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
   image: ``image, prompt, prompt_source, <metric>..., error``.

Nothing is lost: a broken image is a row with its error; a restarted job with the same DST
reads the complete part files and skips the images scored there (rows with an error are
tried again); a part file cut by a crash is never complete, so its rows are scored again. The
summary counts rows read, skipped, scored and failed, and the images/s of the run.

Works on one machine (``ray.init()`` with no cluster) and on a cluster (``RAY_ADDRESS``).
"""

from __future__ import annotations

import glob
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from ..errors import OptionError

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
    if src.endswith('.txt') and os.path.isfile(src):
        return [line.strip() for line in Path(src).read_text().splitlines() if line.strip()]
    if src.endswith('.tar') or ('*' in src and src.rstrip('*').endswith(('.tar', '/'))):
        return sorted(glob.glob(src)) if '*' in src else [src]
    return None


def _webdataset_rows(batch: pd.DataFrame) -> pd.DataFrame:
    """read_webdataset records -> image (shard key), bytes, prompt."""
    import json

    out = []
    for record in batch.to_dict('records'):
        key = f"{record.get('__url__', '')}#{record.get('__key__', '')}"
        data = next((record[k] for k in IMAGE_KEYS if record.get(k) is not None), None)
        prompt = record.get('txt')
        if isinstance(prompt, bytes):
            prompt = prompt.decode('utf-8', 'replace')
        if not prompt and record.get('json') is not None:
            try:
                meta = json.loads(record['json']) if isinstance(record['json'], (bytes, str)) else record['json']
                prompt = meta.get('prompt') if isinstance(meta, dict) else None
            except ValueError:
                prompt = None
        out.append(dict(image=key, bytes=data, prompt=(prompt or '').strip(),
                        prompt_source='webdataset' if prompt else ''))
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
        reader = {'csv': ray.data.read_csv, 'parquet': ray.data.read_parquet, 'json': ray.data.read_json}
        ds = reader[TABLE_SUFFIXES[suffix]](src)
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


def _table_rows(batch: pd.DataFrame, base: Optional[str]) -> pd.DataFrame:
    images = [p if base is None or os.path.isabs(p) or '://' in p else os.path.join(base, p)
              for p in batch['image'].astype(str)]
    prompts = batch['prompt'].fillna('').astype(str).str.strip() if 'prompt' in batch else [''] * len(batch)
    return pd.DataFrame(dict(image=images, prompt=list(prompts),
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
                for name, metric in self.metrics.items():
                    scores = metric(images, prompt=prompts).reshape(len(rows), -1)[:, 0].float().cpu().numpy()
                    out.loc[rows, name] = scores
        return out[['image', 'prompt', 'prompt_source'] + self.names + ['error']]


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


def read_parts(parts: Sequence[str]) -> pd.DataFrame:
    """The rows of the part files, with the original text of CSV cells (see ``scoring.read_scores``)."""
    from .output import read_scores

    tables = [pd.read_parquet(p) if p.endswith('.parquet') else read_scores(p) for p in parts]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=['image', 'error'])
    table['error'] = table['error'].fillna('').astype(str)
    return table


def read_results(folder: str) -> pd.DataFrame:
    """The results of a DST folder, one row per image: its scored row if it has one, else its
    last error (an image that failed and was tried again on a resume appears once)."""
    table = read_parts(part_files(folder))
    table = table.assign(_ok=table['error'] == '').sort_values('_ok', kind='stable')
    return table.drop_duplicates('image', keep='last').drop(columns='_ok').reset_index(drop=True)


@dataclass
class RaySummary:
    read: int = 0
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


def _actor_pool(ray, actors: int) -> dict:
    """A fixed pool of ``actors``: ``compute=`` from Ray 2.51 on, ``concurrency=`` before it."""
    major, minor = (int(part) for part in ray.__version__.split('.')[:2])
    if (major, minor) >= (2, 51):
        return dict(compute=ray.data.ActorPoolStrategy(size=actors))
    return dict(concurrency=actors)


def score_with_ray(metrics: Sequence[str], src: str, dst: str, prompt: Optional[str] = None,
                   options: Optional[dict] = None, weights: Optional[dict] = None, seed: Optional[int] = 0,
                   batch_size: int = 32, actors: int = 1, gpus_per_actor: float = 0.0,
                   cpus_per_actor: Optional[float] = None, threads_per_actor: Optional[int] = None,
                   compile_mode: Optional[str] = None, decode_batch_size: int = 16, fmt: str = 'parquet',
                   overwrite: bool = False, allow_untrained: bool = False, max_pixels: Optional[int] = None
                   ) -> RaySummary:
    """Score SRC with ``metrics`` into the DST folder on Ray Data (see the module doc), with the
    single-process scorer's options (``options``: network options; ``weights``: {metric or None:
    SPEC}; ``seed``; ``compile_mode``; ``allow_untrained``; ``max_pixels``: the pixel limit of the
    decoding tasks, default PIL's). A DST that holds part files is resumed unless ``overwrite``.

    ``cpus_per_actor`` (Ray's logical CPUs) defaults to 1 with GPUs and 0.5 without, so that on
    a CPU-only machine the actors never hold every CPU and decoding tasks can always run.
    ``threads_per_actor`` (torch's intra-op threads in each actor) defaults, for actors without
    GPUs, to the cluster's CPUs divided by ``actors``, so that one actor on a CPU machine
    computes with every core as the single-process scorer does (Ray would give it one thread)."""
    ray = require_ray()
    options, weights = dict(options or {}), dict(weights or {})
    if fmt not in ('parquet', 'csv'):
        raise OptionError(f"--format must be parquet or csv, got '{fmt}'")
    if batch_size < 1 or actors < 1 or (threads_per_actor is not None and threads_per_actor < 1):
        raise OptionError('the batch size, the number of actors and the threads per actor must be >= 1')
    _check_request(metrics, options, weights, allow_untrained)
    if overwrite:
        for part in part_files(dst):
            os.remove(part)
    before = part_files(dst)
    previous = read_results(dst)
    scored_before = set(previous.loc[previous['error'] == '', 'image'])
    if not ray.is_initialized():
        ray.init(address=os.environ.get('RAY_ADDRESS'), include_dashboard=False, log_to_driver=False)
    if threads_per_actor is None and not gpus_per_actor:
        threads_per_actor = max(1, int(ray.cluster_resources().get('CPU', 1)) // actors)
    start = time.perf_counter()
    ds = read_source(src, prompt)
    summary = RaySummary(read=ds.count())
    if scored_before:
        ds = ds.filter(lambda row: row['image'] not in scored_before)
        summary.skipped = summary.read - ds.count()
    scored = (ds.map_batches(decode_batch, batch_size=decode_batch_size, batch_format='pandas', num_cpus=1,
                             fn_kwargs=dict(max_pixels=max_pixels))
              .map_batches(MetricActor, batch_size=batch_size, batch_format='pandas', **_actor_pool(ray, actors),
                           num_gpus=gpus_per_actor or None,
                           num_cpus=cpus_per_actor if cpus_per_actor is not None else (1 if gpus_per_actor else 0.5),
                           fn_constructor_kwargs=dict(metrics=list(metrics), options=options, weights=weights,
                                                      seed=seed, threads=threads_per_actor,
                                                      compile_mode=compile_mode, allow_untrained=allow_untrained)))
    scored.write_datasink(_datasink_class()(dst, fmt))
    summary.seconds = time.perf_counter() - start
    new = read_parts([p for p in part_files(dst) if p not in before])
    failed = new[new['error'] != '']
    summary.failed, summary.scored = len(failed), len(new) - len(failed)
    summary.failures = list(zip(failed['image'], failed['error']))[:10]
    return summary
