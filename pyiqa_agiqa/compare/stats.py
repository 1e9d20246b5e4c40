"""The statistics of ``pyiqa-agiqa compare``: pure numpy / scipy / pandas, written so that anyone
can recompute them (the formulas are in docs/compare.md).

Input: a long table of scored images, one row per (metric, model, image) with the columns
``metric, model, key, prompt, score`` (+ ``category``): ``key`` is what pairs images across
models (the prompt id, else the exact prompt text).

- Per-prompt means: the images of one (metric, model, key) (several seeds) are averaged first.
- Bootstrap: a set of ``n`` prompts (sorted by key) is resampled by the one index matrix
  ``numpy.random.default_rng(seed).integers(0, n, size=(resamples, n))``: every model and every
  pair compared on the same prompt set sees the same resampled prompt sets. Intervals are the
  2.5 and 97.5 percentiles (``numpy.percentile``, linear interpolation) of the resampled means.
  Prompts are resampled, seeds are not (the seed-to-seed spread is reported apart).
- Pairs: ``a < b`` by name; ``diff = a - b`` per shared prompt; ``win_rate`` counts a prompt
  where a is better as 1 and a tie as 1/2 ("better": higher, or lower for a metric whose
  ``lower_better``); ``p_value``: ``scipy.stats.wilcoxon(diff)`` two-sided (1 when every
  difference is 0); ``p_holm``: Holm over every row; ``verdict``: the better model by the sign
  of ``mean_diff`` where ``p_holm < alpha``, else ``tie``.
- Ranking: models by mean, best first, with the compact letter display of the verdicts
  (:func:`letter_display`).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from itertools import combinations
from typing import Dict, List, Optional, Sequence, Set

import numpy as np
import pandas as pd

ALPHA = 0.05
SUMMARY_COLUMNS = ['metric', 'model', 'n_prompts', 'n_images', 'mean', 'ci_low', 'ci_high']
PAIRWISE_COLUMNS = ['metric', 'model_a', 'model_b', 'n_prompts', 'mean_diff', 'ci_low', 'ci_high', 'win_rate',
                    'p_value', 'p_holm', 'verdict']
RANKING_COLUMNS = ['metric', 'rank', 'model', 'mean', 'letters', 'ties_with']


@lru_cache(maxsize=16)
def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """The (resamples, n) index matrix resampling ``n`` prompts: the same for every model and
    pair on a set of ``n`` prompts (a function of ``n``, ``resamples`` and ``seed`` only)."""
    if n < 1:
        return np.zeros((resamples, 0), dtype=np.int64)
    return _indices(n, resamples, seed)


def percentile_interval(values: np.ndarray, indices: np.ndarray) -> tuple:
    """(low, high): the 2.5 / 97.5 percentiles of the means of ``values`` (n,) over the rows of
    ``indices`` (resamples, n); (nan, nan) without values."""
    if values.size == 0:
        return float('nan'), float('nan')
    means = values[indices].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def per_prompt_means(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, model, key): ``mean`` of its images' scores, ``n_images``, ``sd``
    (their standard deviation, ddof 1; NaN for one image), ``prompt`` and ``category`` (first)."""
    extra = {c: (c, 'first') for c in ('prompt', 'category') if c in scores}
    return (scores.groupby(['metric', 'model', 'key'], sort=True)
            .agg(mean=('score', 'mean'), n_images=('score', 'size'), sd=('score', 'std'), **extra)
            .reset_index())


def _matrix(means: pd.DataFrame) -> pd.DataFrame:
    """(key x model) table of per-prompt means of one metric, keys sorted."""
    return means.pivot(index='key', columns='model', values='mean').sort_index()


def summary(means: pd.DataFrame, models: Sequence[str], resamples: int, seed: int) -> pd.DataFrame:
    """:data:`SUMMARY_COLUMNS`: per metric and model, over the prompts that every model has."""
    rows = []
    for metric, part in means.groupby('metric', sort=False):
        table = _matrix(part).reindex(columns=list(models)).dropna()
        images = part.set_index(['model', 'key'])['n_images']
        idx = bootstrap_indices(len(table), resamples, seed)
        for model in models:
            values = table[model].to_numpy(float)
            low, high = percentile_interval(values, idx)
            n_images = int(sum(images.get((model, k), 0) for k in table.index))
            rows.append(dict(metric=metric, model=model, n_prompts=len(table), n_images=n_images,
                             mean=float(values.mean()) if values.size else float('nan'), ci_low=low, ci_high=high))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def summary_by_category(means: pd.DataFrame, models: Sequence[str], resamples: int, seed: int) -> pd.DataFrame:
    """:func:`summary` within each category (its own common prompts and bootstrap)."""
    if 'category' not in means:
        return pd.DataFrame(columns=['category'] + SUMMARY_COLUMNS)
    keyed = means.groupby('key')['category'].first()
    parts = []
    for category in sorted(set(keyed.dropna()) - {''}):
        keys = set(keyed.index[keyed == category])
        table = summary(means[means['key'].isin(keys)], models, resamples, seed)
        parts.append(table.assign(category=category))
    if not parts:
        return pd.DataFrame(columns=['category'] + SUMMARY_COLUMNS)
    return pd.concat(parts, ignore_index=True)[['category'] + SUMMARY_COLUMNS]


def wilcoxon_p(diff: np.ndarray) -> float:
    """scipy's two-sided Wilcoxon signed-rank p-value of the differences (zero differences
    dropped, scipy's default); 1.0 when every difference is 0, NaN without differences."""
    from scipy.stats import wilcoxon

    if diff.size == 0:
        return float('nan')
    if not np.any(diff != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # few pairs: scipy notes its exact / normal approximation
        return float(wilcoxon(diff).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment: p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j)) in ascending
    order, m the number of finite p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind='stable')]
    m = len(order)
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adjusted) if m else adjusted
    return out


def _pair_row(metric: str, a: str, b: str, table: pd.DataFrame, sign: int, resamples: int, seed: int) -> dict:
    shared = table[[a, b]].dropna()
    diff = (shared[a] - shared[b]).to_numpy(float)
    low, high = percentile_interval(diff, bootstrap_indices(len(diff), resamples, seed))
    better = np.sign(diff) * sign
    win = float(np.mean(np.where(better > 0, 1.0, np.where(better == 0, 0.5, 0.0)))) if diff.size else float('nan')
    return dict(metric=metric, model_a=a, model_b=b, n_prompts=len(diff),
                mean_diff=float(diff.mean()) if diff.size else float('nan'), ci_low=low, ci_high=high,
                win_rate=win, p_value=wilcoxon_p(diff))


def verdict(mean_diff: float, p_holm: float, sign: int, alpha: float = ALPHA) -> str:
    """``a`` or ``b`` (the better one) when ``p_holm < alpha`` and the difference is not 0, else ``tie``."""
    if not (np.isfinite(p_holm) and p_holm < alpha) or not mean_diff:
        return 'tie'
    return 'a' if mean_diff * sign > 0 else 'b'


def pairwise(means: pd.DataFrame, models: Sequence[str], resamples: int, seed: int,
             lower_better: Optional[Dict[str, bool]] = None) -> pd.DataFrame:
    """:data:`PAIRWISE_COLUMNS`: every metric and pair ``a < b`` by name, on the prompts both have;
    Holm's adjustment over every row."""
    rows = []
    for metric, part in means.groupby('metric', sort=False):
        table = _matrix(part)
        sign = -1 if (lower_better or {}).get(metric) else 1
        for a, b in combinations(sorted(models), 2):
            rows.append(_pair_row(metric, a, b, table.reindex(columns=[a, b]), sign, resamples, seed))
    out = pd.DataFrame(rows, columns=PAIRWISE_COLUMNS[:-2])
    out['p_holm'] = holm(out['p_value'].to_numpy(float)) if len(out) else []
    signs = out['metric'].map(lambda m: -1 if (lower_better or {}).get(m) else 1)
    out['verdict'] = [verdict(d, p, s) for d, p, s in zip(out['mean_diff'], out['p_holm'], signs)]
    return out[PAIRWISE_COLUMNS]


LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'


def letter_display(order: Sequence[str], tied: Set[frozenset]) -> Dict[str, str]:
    """The compact letter display of the models ``order`` (best first), given the pairs that are
    not significantly different (``tied``: ``frozenset({a, b})``): one letter per maximal set of
    models every two of which are not significantly different (found by Piepho's insert-and-absorb:
    start from one set of every model; for each significant pair split each set holding both
    into the set without one and the set without the other; drop a set contained in another).
    Letters go ``a``, ``b``, ... to the sets in the order of their members' ranks (compared as
    sorted lists: the set holding the best model first). Two models share a letter if and only if
    they are not significantly different; a model may carry several (``a``, ``ab``, ``b``)."""
    columns = [frozenset(order)]
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if frozenset((a, b)) in tied:
                continue
            split: List[frozenset] = []
            for column in columns:
                split += [column - {a}, column - {b}] if a in column and b in column else [column]
            split = list(dict.fromkeys(split))
            columns = [c for c in split if not any(c < d for d in split)]
    rank = {model: i for i, model in enumerate(order)}
    columns.sort(key=lambda column: sorted(rank[m] for m in column))
    labels = [LETTERS[k] if len(columns) <= len(LETTERS) else f'{LETTERS[k % 26]}{k // 26} '
              for k in range(len(columns))]
    return {model: ''.join(label for label, column in zip(labels, columns) if model in column).strip()
            for model in order}


def ranking(summary_table: pd.DataFrame, pairs: pd.DataFrame, lower_better: Optional[Dict[str, bool]] = None
            ) -> pd.DataFrame:
    """Per metric, the models best first (by ``mean`` over common prompts) with ``letters``, the
    compact letter display of the pairwise verdicts (:func:`letter_display`: models sharing a
    letter are not significantly different at the Holm level), and ``ties_with``: the models it
    is not significantly different from."""
    rows = []
    for metric, part in summary_table.groupby('metric', sort=False):
        sign = -1 if (lower_better or {}).get(metric) else 1
        order = part.assign(_key=part['mean'] * sign).sort_values(['_key', 'model'], ascending=[False, True])
        verdicts = pairs[pairs['metric'] == metric]
        tied = {frozenset((a, b)) for a, b, v in zip(verdicts['model_a'], verdicts['model_b'], verdicts['verdict'])
                if v == 'tie'}
        letters = letter_display(list(order['model']), tied)
        for rank, (_, row) in enumerate(order.iterrows(), start=1):
            model = row['model']
            ties = sorted(m for m in part['model'] if m != model and frozenset((m, model)) in tied)
            rows.append(dict(metric=metric, rank=rank, model=model, mean=row['mean'], letters=letters[model],
                             ties_with=' '.join(ties)))
    return pd.DataFrame(rows, columns=RANKING_COLUMNS)


def seed_spread(means: pd.DataFrame) -> pd.DataFrame:
    """Per metric and model: over the prompts with several images (seeds), the mean of the
    within-prompt standard deviation (``seed_sd``), next to the standard deviation of the
    per-prompt means across prompts (``prompt_sd``)."""
    rows = []
    for (metric, model), part in means.groupby(['metric', 'model'], sort=True):
        several = part[part['n_images'] > 1]
        rows.append(dict(metric=metric, model=model, n_prompts_with_seeds=len(several),
                         seed_sd=float(several['sd'].mean()) if len(several) else float('nan'),
                         prompt_sd=float(part['mean'].std()) if len(part) > 1 else float('nan')))
    return pd.DataFrame(rows, columns=['metric', 'model', 'n_prompts_with_seeds', 'seed_sd', 'prompt_sd'])


def left_out(means: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """The prompts (keys) that some model lacks: ``key, prompt, missing`` (models, space-separated)."""
    have = means.groupby('key')['model'].agg(set)
    prompts = means.groupby('key')['prompt'].first() if 'prompt' in means else pd.Series(dtype=str)
    rows = [dict(key=key, prompt=prompts.get(key, ''), missing=' '.join(sorted(set(models) - found)))
            for key, found in have.items() if set(models) - found]
    return pd.DataFrame(rows, columns=['key', 'prompt', 'missing'])


def disagreement(means: pd.DataFrame, metric: str, models: Sequence[str], top: int) -> List[str]:
    """The ``top`` keys (of the prompts every model has) where the models' per-prompt means of
    ``metric`` spread most (max - min), largest first."""
    table = _matrix(means[means['metric'] == metric]).reindex(columns=list(models)).dropna()
    spread = (table.max(axis=1) - table.min(axis=1)).sort_values(ascending=False, kind='stable')
    return list(spread.index[:top])
