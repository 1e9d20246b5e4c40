"""Group-disjoint train/val/test splits, stored as meta-info columns ``{scheme}_split_{NN}``.

A split is one string per image row: ``'train'``, ``'val'`` or ``'test'``. Rows that share a
group id (for AGIQA-3K: the prompt) always fall on the same side, so no prompt seen in
training is scored at test time. All randomness comes from ``numpy.random.default_rng(seed)``
applied to the *sorted* distinct group ids, so a split depends only on the set of group ids
and the seed, not on the row order.
"""
import numpy as np
import pandas as pd

PARTS = ('train', 'val', 'test')
EXCLUDED = 'excluded'  # a row in no part of a split (e.g. a published split's CONFLICT row)
MAX_REPORTED_GROUPS = 5


def grouped_split(groups, ratios=(0.7, 0.1, 0.2), seed=0):
    """Assign every row to train/val/test by group.

    Rule: the G distinct group ids are sorted, then shuffled with
    ``numpy.random.default_rng(seed).permutation``; the first ``round(r_train * G)`` shuffled
    groups go to train, the following ones up to ``round((r_train + r_val) * G)`` to val, the
    rest to test (Python ``round``). A ratio of 0 gives an empty part. Every row gets its
    group's part.

    Args:
        groups: array-like of length N, the group id of each row (ints or strings).
        ratios: (train, val, test) fractions of the groups, each >= 0, summing to 1.
        seed: integer seed of ``numpy.random.default_rng``.

    Returns:
        numpy str array of shape (N,), values in ``PARTS``.

    Raises:
        ValueError: if ``ratios`` is not three non-negative numbers summing to 1.
    """
    if len(ratios) != 3 or min(ratios) < 0 or not np.isclose(sum(ratios), 1.0, atol=1e-9):
        raise ValueError(f'ratios must be three non-negative numbers summing to 1, got {ratios}')
    unique, row_group = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = len(unique)
    n_train = min(round(ratios[0] * n_groups), n_groups)
    n_train_val = min(round((ratios[0] + ratios[1]) * n_groups), n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    group_part = np.full(n_groups, 2)
    group_part[order[:n_train]] = 0
    group_part[order[n_train:n_train_val]] = 1
    return np.array(PARTS)[group_part[row_group]]


def carve_validation(parts, groups, val_fraction=0.125, seed=0):
    """Move whole training groups of an existing train/test split to 'val'.

    Rule: the distinct group ids of the train rows are sorted, then shuffled with
    ``numpy.random.default_rng(seed).permutation``; the first ``round(val_fraction * G_train)``
    of them become 'val'. Test rows are returned unchanged, so the test set of a published
    split is kept exactly (e.g. an 80/20 prompt split becomes 70/10/20 with 0.125). For an
    image-level split pass the image names as groups. Rows valued ``EXCLUDED`` stay as they are.

    Args:
        parts: array-like of length N with values 'train'/'test' (or ``EXCLUDED``).
        groups: array-like of length N, the group id of each row.
        val_fraction: fraction of the training groups moved to 'val', in [0, 1].
        seed: integer seed of ``numpy.random.default_rng``.

    Returns:
        numpy str array of shape (N,), values in ``PARTS``.

    Raises:
        ValueError: on values other than train/test, lengths that differ, a fraction outside
            [0, 1], or a group found in both train and test (the message names it).
    """
    parts = np.asarray(parts).astype(str)
    groups = np.asarray(groups)
    if parts.shape != groups.shape:
        raise ValueError(f'parts and groups differ in length: {parts.shape} vs {groups.shape}')
    unexpected = sorted(set(parts.tolist()) - {'train', 'test', EXCLUDED})
    if unexpected:
        raise ValueError(f'carve_validation expects only train/test/{EXCLUDED}, found {unexpected}')
    if not 0 <= val_fraction <= 1:
        raise ValueError(f'val_fraction must be in [0, 1], got {val_fraction}')
    used = parts != EXCLUDED
    mixed = _mixed_groups(groups[used], parts[used])
    if mixed:
        raise ValueError(f'groups in both train and test: {_describe(mixed)}')
    train_groups = np.unique(groups[parts == 'train'])
    n_val = round(val_fraction * len(train_groups))
    shuffled = train_groups[np.random.default_rng(seed).permutation(len(train_groups))]
    carved = parts.astype('<U8')
    to_val = pd.Series(groups).isin(shuffled[:n_val]).to_numpy()  # hashing: fast for 10^4 string groups
    carved[to_val & (parts == 'train')] = 'val'
    return carved


def add_split_columns(df, group_col, scheme, n_splits=10, ratios=(0.7, 0.1, 0.2), base_seed=123):
    """Return a copy of ``df`` with columns ``{scheme}_split_01`` .. ``{scheme}_split_{NN}``.

    Split i (1-based) is ``grouped_split(df[group_col], ratios, seed=base_seed + i)``; the
    package default is 70/10/20 with seeds 124..133.

    Raises:
        ValueError: if ``n_splits`` is not in 1..99 or a split column already exists.
    """
    if not 1 <= n_splits <= 99:
        raise ValueError(f'n_splits must be in 1..99, got {n_splits}')
    out = df.copy()
    for i in range(1, n_splits + 1):
        column = f'{scheme}_split_{i:02d}'
        if column in out.columns:
            raise ValueError(f'column {column!r} already exists')
        out[column] = grouped_split(out[group_col].to_numpy(), ratios, seed=base_seed + i)
    return out


def check_split_disjoint(df, group_col, split_col):
    """Raise ValueError naming ``split_col`` and the first offending groups if any group
    of ``df[group_col]`` has rows on two sides of ``df[split_col]``. Rows valued
    ``EXCLUDED`` are in no part, so they are not a side."""
    parts = df[split_col].to_numpy()
    used = parts != EXCLUDED
    mixed = _mixed_groups(df[group_col].to_numpy()[used], parts[used])
    if mixed:
        raise ValueError(f'{split_col}: {len(mixed)} group(s) of {group_col!r} on several '
                         f'sides: {_describe(mixed)}')


def _mixed_groups(groups, parts):
    """[(group, sorted sides)] for groups spread over several parts, by first appearance."""
    frame = pd.DataFrame({'group': groups, 'part': parts})
    counts = frame.groupby('group', sort=False)['part'].nunique()  # vectorised: fast for many groups
    mixed = counts.index[counts > 1]
    if not len(mixed):
        return []
    sides = frame[frame['group'].isin(mixed)].groupby('group', sort=False)['part'].unique()
    return [(group, sorted(s)) for group, s in sides.items()]


def _describe(mixed):
    shown = ', '.join(f'{group!r} ({"/".join(s)})' for group, s in mixed[:MAX_REPORTED_GROUPS])
    more = len(mixed) - MAX_REPORTED_GROUPS
    return shown + (f', ... and {more} more' if more > 0 else '')
