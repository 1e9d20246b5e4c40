"""A whole compare on generated images (the demo's shapes: one model clean, one mildly, one strongly
blurred) scored through the scoring engine by a metric that measures blur: the ranking comes out
right, every figure agrees with an independent recomputation from OUT/scores/, and renaming the
files or shuffling the rows changes nothing."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, wilcoxon

from pyiqa_agiqa.compare.inputs import from_folders, from_table
from pyiqa_agiqa.compare.run import run_compare
from pyiqa_agiqa.demo.synthetic import make_comparison_set

sys.path.insert(0, str(Path(__file__).parent))
from helpers import two_metrics  # noqa: E402

RESAMPLES = 4000


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp('compare-run')
    table = make_comparison_set(root / 'gen', n_prompts=14, seeds=2, image_size=48)
    result = run_compare(['sharpness', 'brightness'], from_table(str(table)), str(root / 'cmp'), two_metrics,
                         lower_better={'brightness': True}, resamples=RESAMPLES, workers=0, progress=False)
    return root, table, result


def test_the_ranking_comes_out_right(generated):
    _, _, result = generated
    ranking = result.ranking[result.ranking['metric'] == 'sharpness']
    assert list(ranking['model']) == ['clean', 'mild', 'strong']
    assert list(ranking['group']) == [1, 2, 3]
    pairs = result.pairwise[result.pairwise['metric'] == 'sharpness']
    assert list(pairs['verdict']) == ['a', 'a', 'a']  # clean > mild, clean > strong, mild > strong
    assert set(result.summary['n_prompts']) == {14} and set(result.summary['n_images']) == {28}
    bright = result.summary[result.summary['metric'] == 'brightness'].set_index('model')['mean']
    first = result.ranking[result.ranking['metric'] == 'brightness']['model'].iloc[0]
    assert bright[first] == bright.min()  # lower is better for this one
    assert len(result.failed) == 0 and len(result.left_out) == 0


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


def test_every_figure_agrees_with_an_independent_recomputation(generated):
    root, table, result = generated
    listing = pd.read_csv(table)
    scores = pd.concat([pd.read_csv(p).assign(model=p.stem) for p in sorted((root / 'cmp' / 'scores').glob('*.csv'))])
    scores['image'] = [str(Path(p).relative_to(table.parent)) for p in scores['image']]
    joined = listing.merge(scores[['model', 'image', 'sharpness', 'brightness']], on=['model', 'image'])
    assert len(joined) == len(listing)
    per_prompt = {m: joined.groupby(['prompt_id', 'model'])[m].mean().unstack() for m in ('sharpness', 'brightness')}
    rng = np.random.RandomState(123)
    for row in result.summary.itertuples():
        values = per_prompt[row.metric][row.model].to_numpy()
        assert row.mean == pytest.approx(values.mean(), rel=1e-12)
        low, high, sd = _my_interval(values, rng, RESAMPLES)
        tol = _tolerance(sd, RESAMPLES)
        assert abs(row.ci_low - low) < tol and abs(row.ci_high - high) < tol
    pairs = result.pairwise
    assert len(pairs) == 6  # 2 metrics x 3 pairs: Holm over all six
    p_values = []
    for row in pairs.itertuples():
        table = per_prompt[row.metric]
        diff = (table[row.model_a] - table[row.model_b]).to_numpy()
        assert row.mean_diff == pytest.approx(diff.mean(), rel=1e-12)
        better = -diff if row.metric == 'brightness' else diff
        assert row.win_rate == ((better > 0).sum() + 0.5 * (better == 0).sum()) / len(diff)
        assert row.p_value == wilcoxon(diff, alternative='two-sided').pvalue
        low, high, sd = _my_interval(diff, rng, RESAMPLES)
        tol = _tolerance(sd, RESAMPLES)
        assert abs(row.ci_low - low) < tol and abs(row.ci_high - high) < tol
        p_values.append(row.p_value)
    holm = _holm(p_values)
    assert list(pairs['p_holm']) == pytest.approx(holm, rel=1e-12)
    for row, adjusted in zip(pairs.itertuples(), holm):
        sign = -1 if row.metric == 'brightness' else 1
        assert row.verdict == ('tie' if adjusted >= 0.05 else 'a' if sign * row.mean_diff > 0 else 'b')
    written = pd.read_csv(root / 'cmp' / 'pairwise.csv')
    assert list(written['verdict']) == list(pairs['verdict'])
    assert written['mean_diff'].to_numpy() == pytest.approx(pairs['mean_diff'].to_numpy(), rel=1e-12)


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
    again = run_compare(['sharpness', 'brightness'], from_table(str(tmp_path / 'shuffled.csv')), str(tmp_path / 'cmp'),
                        two_metrics, lower_better={'brightness': True}, resamples=RESAMPLES, workers=0,
                        progress=False)
    for name in ('summary', 'pairwise', 'ranking', 'by_category', 'seed_spread'):
        pd.testing.assert_frame_equal(getattr(result, name), getattr(again, name), check_exact=False, rtol=1e-6)


def test_folders_with_sidecar_prompts_pair_by_the_prompt_text(generated, tmp_path):
    root, _, result = generated
    specs = [f'{m}={root / "gen" / m}' for m in ('strong', 'clean', 'mild')]
    by_folder = run_compare(['sharpness', 'brightness'], from_folders(specs), str(tmp_path / 'cmp'), two_metrics,
                            lower_better={'brightness': True}, resamples=RESAMPLES, workers=0, progress=False)
    # the same prompts under other keys (texts, not ids): sorted otherwise, so other resamples; the
    # intervals agree within Monte-Carlo error, everything else exactly
    same = ['model', 'n_prompts', 'n_images', 'mean']
    pd.testing.assert_frame_equal(result.summary[same], by_folder.summary[same], check_exact=False, rtol=1e-6)
    same = ['model_a', 'model_b', 'n_prompts', 'mean_diff', 'win_rate', 'p_value', 'p_holm', 'verdict']
    pd.testing.assert_frame_equal(result.pairwise[same], by_folder.pairwise[same], check_exact=False, rtol=1e-6)
    for one, two in ((result.summary, by_folder.summary), (result.pairwise, by_folder.pairwise)):
        sd = (one['ci_high'] - one['ci_low']).to_numpy()[:, None] / (2 * norm.ppf(0.975))  # the bootstrap's sd
        gap = np.abs(one[['ci_low', 'ci_high']].to_numpy() - two[['ci_low', 'ci_high']].to_numpy())
        assert (gap < _tolerance(sd, RESAMPLES)).all()
    assert set(by_folder.scored['key']) == set(pd.read_csv(root / 'gen' / 'generations.csv')['prompt'])
