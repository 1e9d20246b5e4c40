"""The local engine: rows decoded by DataLoader workers ahead of the model, bucketed by size,
prompts tokenised in a thread, every metric run on each batch, rows written as they complete
(see :mod:`pyiqa_agiqa.scoring` for the whole contract)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Collection, Dict, Iterator, List, Optional, Sequence, Tuple

import pandas as pd
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm


from ..data.image_io import set_max_pixels
from ..errors import OptionError
from .contract import RowKey, batch_scores, output_columns, row_key, scored_values, unique_by_key
from .output import ResultWriter
from .rows import Row, read_row


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
    values, error = scored_values(scores) if scores else ({}, '')
    record = dict(image=row.image, prompt=row.prompt or '', prompt_source=row.prompt_source)
    record.update({m: values.get(m, '') for m in metrics})
    record['error'] = row.error or error
    return record


def rows_to_score(rows: Sequence[Row], done: Collection[RowKey] = ()) -> Tuple[List[Row], int, int]:
    """The rows still to score: each (image, requested prompt) once (:mod:`.contract`), none of
    those in ``done``. Returns (rows, duplicates dropped, rows already done)."""
    unique, duplicates = unique_by_key(list(rows), _key)
    todo = [row for row in unique if _key(row) not in done]
    return todo, duplicates, len(unique) - len(todo)


def _key(row: Row) -> RowKey:
    return row_key(row.image, row.prompt, row.prompt_source)


def score_rows(metrics: Dict[str, torch.nn.Module], rows: Sequence[Row], writer: Optional[ResultWriter] = None,
               batch_size: int = 8, progress: bool = True, workers: int = 2, echo=None) -> pd.DataFrame:
    """Score ``rows`` with every metric ({name: pyiqa metric}); returns the table of this run:
    each (image, requested prompt) scored once, rows already done in a resumed output skipped
    (:func:`rows_to_score`). A non-finite score is its row's ``error``. ``echo(record)`` sees
    each record."""
    if batch_size < 1:
        raise OptionError(f'batch size must be >= 1, got {batch_size}')
    names = list(metrics)
    todo, _, _ = rows_to_score(rows, writer.done if writer else ())
    if writer:
        writer.start()
    records = []
    device = torch.device(next(iter(metrics.values())).device if metrics else 'cpu')
    with tqdm(total=len(todo), unit='image', disable=not progress or len(todo) < 2, desc='scoring') as bar:
        stream = batches(decoded(todo, workers), batch_size, pin_memory=device.type == 'cuda')
        for group, images in tokenized_ahead(stream, metrics):
            if images is None:
                out = [_record(group[0], {}, names)]
            else:  # 8-bit to the device, float there: to_tensor's values
                images = images.to(device, non_blocking=True).float().div_(255)
                prompts = [row.prompt for row in group]
                scores = {name: batch_scores(metric, images, prompts) for name, metric in metrics.items()}
                out = [_record(row, {n: scores[n][i] for n in names}, names) for i, row in enumerate(group)]
            if writer:
                writer.write(out)
            for record in out:
                if echo:
                    echo(record)
            records += out
            bar.update(len(group))
    return pd.DataFrame(records, columns=output_columns(names))
