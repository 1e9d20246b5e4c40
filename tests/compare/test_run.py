"""A whole ``pyiqa-agiqa compare`` on generated images with a known truth (the demo's shapes on a
smooth texture: one model clean, one with mild and one with strong additive Gaussian noise), scored
through the command by two of pyiqa's metrics that need no weights: ``piqe`` (lower is better; it
measures noise and blocking) and ``entropy`` (higher is better). piqe's ranking comes out right
(clean > mild > strong, a / b / c), every figure agrees with an independent recomputation from
OUT/scores/, and renaming the files or shuffling the rows changes nothing."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, wilcoxon

from pyiqa_agiqa.cli import main
from pyiqa_agiqa.demo.synthetic import make_comparison_set

RESAMPLES = 4000
METRICS = ['piqe', 'entropy']
LOWER_BETTER = {'piqe': True, 'entropy': False}  # pyiqa's own table says the same (checked below)
ARGS = ['--bootstrap', str(RESAMPLES), '--workers', '0', '-q', '--device', 'cpu']
TABLES = ('summary', 'pairwise', 'ranking', 'summary_by_category', 'seed_spread')


def compare(out: Path, *inputs: str) -> dict:
    """Run the command; its CSV tables, read back."""
    assert main(['compare', *METRICS, *inputs, '--out', str(out)] + ARGS) == 0
    return {name: pd.read_csv(out / f'{name}.csv') for name in TABLES}


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp('compare-run')
    table = make_comparison_set(root / 'gen', family='noise', n_prompts=12, seeds=2, image_size=64, texture=0.05)
    return root, table, compare(root / 'cmp', '--table', str(table))


def test_the_ranking_comes_out_right(generated):
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    _, _, result = generated
    assert {m: DEFAULT_CONFIGS[m].get('lower_better', False) for m in METRICS} == LOWER_BETTER
    ranking = result['ranking'][result['ranking']['metric'] == 'piqe']
    assert list(ranking['model']) == ['clean', 'mild', 'strong'] and list(ranking['letters']) == ['a', 'b', 'c']
    pairs = result['pairwise'][result['pairwise']['metric'] == 'piqe']
    assert list(pairs['verdict']) == ['a', 'a', 'a']  # clean > mild, clean > strong, mild > strong
    assert (pairs['mean_diff'] < 0).all() and (pairs['win_rate'] >= 0.9).all()  # lower is better
    assert set(result['summary']['n_prompts']) == {12} and set(result['summary']['n_images']) == {24}


def _holm(p):
    """Holm's adjustment written out as a loop (independent of stats.holm)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def _my_interval(values, rng, resamples):
    picks = rng.choice(len(values), size=(resamples, len(values)), replace=True)
    boot = values[picks].mean(axis=1)
    return np.quantile(boot, 0.025), np.quantile(boot, 0.975), boot.std()


def _tolerance(sd, resamples):
    """4 standard errors of the difference of two independent bootstrap estimates of a 2.5 %
    quantile (normal approximation: se = sqrt(q (1 - q) / B) / density at the quantile)."""
    se = np.sqrt(0.025 * 0.975 / resamples) * sd / norm.pdf(norm.ppf(0.025))
    return 4 * np.sqrt(2) * se


def _my_letters(order, tied):
    """The compact letter display by brute force: every maximal set of models in which every two
    tie, lettered in the order of their members' ranks."""
    from itertools import combinations

    cliques = [set(c) for k in range(1, len(order) + 1) for c in combinations(order, k)
               if all(frozenset(p) in tied for p in combinations(c, 2))]
    maximal = sorted((c for c in cliques if not any(c < d for d in cliques)),
                     key=lambda c: sorted(order.index(m) for m in c))
    return [''.join('abcdefghij'[i] for i, c in enumerate(maximal) if m in c) for m in order]


def test_every_figure_agrees_with_an_independent_recomputation(generated):
    root, table, result = generated
    listing = pd.read_csv(table)
    scores = pd.concat([pd.read_csv(p).assign(model=p.stem) for p in sorted((root / 'cmp' / 'scores').glob('*.csv'))])
    assert set(scores['model']) == {'clean', 'mild', 'strong'}
    scores['image'] = [str(Path(p).relative_to(table.parent)) for p in scores['image']]
    joined = listing.merge(scores[['model', 'image'] + METRICS], on=['model', 'image'])
    assert len(joined) == len(listing)
    per_prompt = {m: joined.groupby(['prompt_id', 'model'])[m].mean().unstack() for m in METRICS}
    rng = np.random.RandomState(123)
    for row in result['summary'].itertuples():
        values = per_prompt[row.metric][row.model].to_numpy()
        assert row.mean == pytest.approx(values.mean(), rel=1e-12)
        low, high, sd = _my_interval(values, rng, RESAMPLES)
        tol = _tolerance(sd, RESAMPLES)
        assert abs(row.ci_low - low) < tol and abs(row.ci_high - high) < tol
    pairs = result['pairwise']
    assert len(pairs) == 6  # 2 metrics x 3 pairs: Holm over all six
    p_values = []
    for row in pairs.itertuples():
        diff = (per_prompt[row.metric][row.model_a] - per_prompt[row.metric][row.model_b]).to_numpy()
        assert row.mean_diff == pytest.approx(diff.mean(), rel=1e-12)
        better = -diff if LOWER_BETTER[row.metric] else diff
        assert row.win_rate == ((better > 0).sum() + 0.5 * (better == 0).sum()) / len(diff)
        assert row.p_value == pytest.approx(wilcoxon(diff, alternative='two-sided').pvalue, rel=1e-12)
        low, high, sd = _my_interval(diff, rng, RESAMPLES)
        tol = _tolerance(sd, RESAMPLES)
        assert abs(row.ci_low - low) < tol and abs(row.ci_high - high) < tol
        p_values.append(row.p_value)
    holm = _holm(p_values)
    assert list(pairs['p_holm']) == pytest.approx(holm, rel=1e-12)
    for row, adjusted in zip(pairs.itertuples(), holm):
        sign = -1 if LOWER_BETTER[row.metric] else 1
        assert row.verdict == ('tie' if adjusted >= 0.05 else 'a' if sign * row.mean_diff > 0 else 'b')
    for metric, part in result['ranking'].groupby('metric'):
        means = per_prompt[metric].mean()
        order = list((means if LOWER_BETTER[metric] else -means).sort_values().index)
        assert list(part['model']) == order
        verdicts = pairs[pairs['metric'] == metric]
        tied = {frozenset((a, b)) for a, b, v in zip(verdicts['model_a'], verdicts['model_b'], verdicts['verdict'])
                if v == 'tie'}
        assert list(part['letters']) == _my_letters(order, tied)


def test_renamed_files_and_shuffled_rows_change_nothing(generated, tmp_path):
    root, table, result = generated
    listing = pd.read_csv(table).sample(frac=1, random_state=3).reset_index(drop=True)
    names = np.random.default_rng(8).permutation(len(listing))
    for i, row in listing.iterrows():
        new = f'{row["model"]}/img_{names[i]:05d}.png'
        (tmp_path / row['model']).mkdir(exist_ok=True)
        shutil.copy(table.parent / row['image'], tmp_path / new)
        listing.loc[i, 'image'] = new
    listing.to_csv(tmp_path / 'shuffled.csv', index=False)
    again = compare(tmp_path / 'cmp', '--table', str(tmp_path / 'shuffled.csv'))
    for name in TABLES:
        pd.testing.assert_frame_equal(result[name], again[name], check_exact=False, rtol=1e-9)


def test_folders_with_sidecar_prompts_pair_by_the_prompt_text(generated, tmp_path):
    root, _, result = generated
    by_folder = compare(tmp_path / 'cmp', '--models', *[f'{m}={root / "gen" / m}' for m in ('strong', 'clean', 'mild')])
    # the same prompts under other keys (texts, not ids): sorted otherwise, so other resamples; the
    # intervals agree within Monte-Carlo error, everything else exactly
    same = ['metric', 'model', 'n_prompts', 'n_images', 'mean']
    pd.testing.assert_frame_equal(result['summary'][same], by_folder['summary'][same], check_exact=False, rtol=1e-9)
    same = ['metric', 'model_a', 'model_b', 'n_prompts', 'mean_diff', 'win_rate', 'p_value', 'p_holm', 'verdict']
    pd.testing.assert_frame_equal(result['pairwise'][same], by_folder['pairwise'][same], check_exact=False, rtol=1e-9)
    for one, two in ((result['summary'], by_folder['summary']), (result['pairwise'], by_folder['pairwise'])):
        sd = (one['ci_high'] - one['ci_low']).to_numpy()[:, None] / (2 * norm.ppf(0.975))  # the bootstrap's sd
        gap = np.abs(one[['ci_low', 'ci_high']].to_numpy() - two[['ci_low', 'ci_high']].to_numpy())
        assert (gap < _tolerance(sd, RESAMPLES)).all()
    scores = pd.read_csv(tmp_path / 'cmp' / 'scores' / 'clean.csv')
    assert set(scores['prompt_source']) == {'caption:txt'}  # each image's sidecar caption, as score reads it
    assert set(scores['prompt']) == set(pd.read_csv(root / 'gen' / 'generations.csv')['prompt'])
