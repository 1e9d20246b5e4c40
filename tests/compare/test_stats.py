"""The statistics of compare (pyiqa_agiqa/compare/stats.py) on per-image scores made up here:
ties, swap symmetry, order invariance, Holm by hand, the compact letter display against a brute
force, and the coverage of the intervals."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from pyiqa_agiqa.compare import stats


def long_table(scores: dict, seeds: int = 1, categories=None) -> pd.DataFrame:
    """{model: (n_prompts * seeds,) scores} -> the long table compare analyses (prompt-major)."""
    rows = []
    for model, values in scores.items():
        for i, value in enumerate(values):
            key = f'p{i // seeds:03d}'
            rows.append(dict(metric='m', model=model, key=key, prompt=f'prompt {key}', score=float(value),
                             category=(categories or {}).get(key, '')))
    return pd.DataFrame(rows)


def analyse(table, models, resamples=2000, seed=0, lower_better=None):
    means = stats.per_prompt_means(table)
    summary = stats.summary(means, models, resamples, seed)
    pairs = stats.pairwise(means, models, resamples, seed, lower_better)
    return summary, pairs, stats.ranking(summary, pairs, lower_better)


def test_identical_models_tie():
    values = np.random.default_rng(1).normal(size=40)
    summary, pairs, ranking = analyse(long_table({'a': values, 'b': values.copy()}), ['a', 'b'])
    row = pairs.iloc[0]
    assert row.mean_diff == 0 and row.ci_low == 0 and row.ci_high == 0
    assert row.win_rate == 0.5 and row.p_value == 1 and row.p_holm == 1 and row.verdict == 'tie'
    assert list(ranking['letters']) == ['a', 'a'] and set(ranking['ties_with']) == {'a', 'b'}
    assert summary['mean'].iloc[0] == summary['mean'].iloc[1]


def test_swapping_the_models_negates_the_difference_and_swaps_the_verdict():
    rng = np.random.default_rng(2)
    base = rng.normal(size=30)
    better = base + 0.5 + rng.normal(scale=0.3, size=30)
    _, one, _ = analyse(long_table({'x': better, 'y': base}), ['x', 'y'])
    _, two, _ = analyse(long_table({'x': base, 'y': better}), ['x', 'y'])
    a, b = one.iloc[0], two.iloc[0]
    assert a.verdict == 'a' and b.verdict == 'b'
    assert b.mean_diff == pytest.approx(-a.mean_diff, abs=1e-12)
    assert (b.ci_low, b.ci_high) == pytest.approx((-a.ci_high, -a.ci_low), abs=1e-12)
    assert b.win_rate == pytest.approx(1 - a.win_rate) and b.p_value == pytest.approx(a.p_value)


def test_the_order_of_rows_changes_nothing():
    rng = np.random.default_rng(3)
    table = long_table({m: rng.normal(size=60) for m in ('a', 'b', 'c')}, seeds=2,
                       categories={f'p{i:03d}': 'odd' if i % 2 else 'even' for i in range(30)})
    shuffled = table.sample(frac=1, random_state=7).reset_index(drop=True)
    for one, two in zip(analyse(table, ['a', 'b', 'c']), analyse(shuffled, ['a', 'b', 'c'])):
        pd.testing.assert_frame_equal(one, two)
    means = stats.per_prompt_means(table), stats.per_prompt_means(shuffled)
    pd.testing.assert_frame_equal(stats.summary_by_category(means[0], ['a', 'b', 'c'], 500, 0),
                                  stats.summary_by_category(means[1], ['a', 'b', 'c'], 500, 0))


def test_seeds_are_averaged_within_a_prompt_before_anything_else():
    table = long_table({'a': [1.0, 3.0, 10.0, 10.0], 'b': [0.0, 0.0, 0.0, 0.0]}, seeds=2)
    summary, pairs, _ = analyse(table, ['a', 'b'])
    assert summary.set_index('model').loc['a', 'mean'] == 6.0  # (2 + 10) / 2, not (1 + 3 + 10 + 10) / 4 by chance
    spread = stats.seed_spread(stats.per_prompt_means(table)).set_index('model')
    assert spread.loc['a', 'seed_sd'] == pytest.approx(np.std([1, 3], ddof=1) / 2)


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, np.nan, 0.005]
    # sorted finite: 0.005 (x4) 0.02, 0.01 (x3) 0.03, 0.03 (x2) 0.06, 0.04 (x1) 0.04 -> running max 0.06
    assert np.allclose(stats.holm(p), [0.03, 0.06, 0.06, np.nan, 0.02], equal_nan=True)


def test_lower_is_better_turns_the_verdict_and_the_win_rate():
    low = np.arange(20.0)
    _, pairs, ranking = analyse(long_table({'a': low, 'b': low + 5}), ['a', 'b'], lower_better={'m': True})
    assert pairs.iloc[0].verdict == 'a' and pairs.iloc[0].win_rate == 1.0 and pairs.iloc[0].mean_diff == -5
    assert list(ranking['model']) == ['a', 'b']


def test_prompts_a_model_lacks_are_left_out_of_the_summary_but_not_of_its_pairs():
    table = long_table({'a': np.arange(10.0), 'b': np.arange(10.0) + 1, 'c': np.arange(10.0) + 2})
    table = table[~((table['model'] == 'c') & table['key'].isin(['p000', 'p001']))]
    summary, pairs, _ = analyse(table, ['a', 'b', 'c'])
    assert set(summary['n_prompts']) == {8}
    assert pairs.set_index(['model_a', 'model_b']).loc[('a', 'b'), 'n_prompts'] == 10
    left = stats.left_out(stats.per_prompt_means(table), ['a', 'b', 'c'])
    assert list(left['key']) == ['p000', 'p001'] and set(left['missing']) == {'c'}


def test_the_bootstrap_is_the_documented_index_matrix():
    values = np.random.default_rng(4).normal(size=25)
    idx = np.random.default_rng(0).integers(0, 25, size=(300, 25))
    expected = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    assert stats.percentile_interval(values, stats.bootstrap_indices(25, 300, 0)) == pytest.approx(tuple(expected))


def test_intervals_cover_the_true_difference_about_95_percent_of_the_time():
    """1000 simulated comparisons (per-prompt scores: a prompt effect shared by both models, a true
    difference of 0.3, noise): the 95 % interval of the difference covers 0.3 in a share of them
    within 3 binomial standard deviations of 0.95 (the percentile bootstrap of a mean of n values
    is a little narrow, by sqrt((n - 1) / n): about 0.945 at n = 60, well inside)."""
    reps, n, truth = 1000, 60, 0.3
    rng = np.random.default_rng(5)
    covered = 0
    for _ in range(reps):
        prompt = rng.normal(scale=1.0, size=n)
        a = prompt + truth + rng.normal(scale=0.5, size=n)
        b = prompt + rng.normal(scale=0.5, size=n)
        diff = a - b
        low, high = stats.percentile_interval(diff, stats.bootstrap_indices(n, 500, int(rng.integers(1 << 30))))
        covered += low <= truth <= high
    sd = np.sqrt(0.95 * 0.05 / reps)
    assert abs(covered / reps - 0.95) <= 3 * sd, covered / reps


def brute_force_letters(order, tied):
    """The compact letter display by enumeration (independent of stats.letter_display): every
    subset of models in which every two tie, the maximal ones, lettered in the order of their
    members' ranks (compared as sorted lists)."""
    cliques = [set(c) for k in range(1, len(order) + 1) for c in combinations(order, k)
               if all(frozenset(pair) in tied for pair in combinations(c, 2))]
    maximal = sorted((c for c in cliques if not any(c < d for d in cliques)),
                     key=lambda c: sorted(order.index(m) for m in c))
    return {m: ''.join(stats.LETTERS[i] for i, c in enumerate(maximal) if m in c) for m in order}


def test_compact_letters_of_non_transitive_ties():
    f = frozenset
    cases = [  # (pairs not significantly different, letters of A B C (D)), models best first
        ({f('AB'), f('BC')}, 'a ab b'),  # A ~ B, B ~ C, A > C
        (set(), 'a b c'),
        ({f('AB'), f('BC'), f('AC')}, 'a a a'),
        ({f('AB'), f('BC'), f('CD')}, 'a ab bc c'),
        ({f('AB'), f('AC'), f('BD')}, 'ab ac b c'),  # maximal sets {A, B}, {A, C}, {B, D}
        ({f('AC'), f('BD')}, 'a b a b'),
    ]
    for tied, expected in cases:
        order = list('ABCD'[:len(expected.split())])
        letters = stats.letter_display(order, tied)
        assert [letters[m] for m in order] == expected.split(), (tied, letters)
        assert letters == brute_force_letters(order, tied)


def test_compact_letters_agree_with_a_brute_force_on_random_verdicts():
    rng = np.random.default_rng(11)
    for _ in range(300):
        order = [f'm{i}' for i in range(int(rng.integers(2, 8)))]
        tied = {frozenset(pair) for pair in combinations(order, 2) if rng.random() < rng.uniform(0.2, 0.9)}
        letters = stats.letter_display(order, tied)
        assert letters == brute_force_letters(order, tied)
        for a, b in combinations(order, 2):  # sharing a letter <=> not significantly different
            assert bool(set(letters[a]) & set(letters[b])) == (frozenset((a, b)) in tied)
        assert letters[order[0]].startswith('a')


def test_the_ranking_carries_the_letters_of_the_holm_verdicts():
    """Three models, A > C significant, A ~ B and B ~ C not (B is A's and C's midpoint plus a
    large per-prompt noise): the ranking's letters are a, ab, b."""
    rng = np.random.default_rng(12)
    base = rng.normal(size=40)
    a, c = base + 1.0 + rng.normal(scale=0.1, size=40), base
    table = long_table({'A': a, 'B': (a + c) / 2 + rng.normal(scale=2.0, size=40), 'C': c})
    summary, pairs, ranking = analyse(table, ['A', 'B', 'C'])
    verdicts = dict(zip(zip(pairs['model_a'], pairs['model_b']), pairs['verdict']))
    assert verdicts == {('A', 'B'): 'tie', ('A', 'C'): 'a', ('B', 'C'): 'tie'}, pairs
    assert list(ranking['model']) == ['A', 'B', 'C'] and list(ranking['letters']) == ['a', 'ab', 'b']
    assert list(ranking['ties_with']) == ['B', 'A C', 'B']
