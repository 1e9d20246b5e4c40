"""Each metric's ``score_range`` holds what the published recipes train its output on: the
quality labels of the recipe's data set (its MOS scale, ``MOS_SCALES``), divided by the
recipe's ``mos_divisor``; and ``MOS_SCALES`` holds the labels of the bundled meta-info."""

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pyiqa_agiqa.metric_configs import AGIQA_METRIC_CONFIGS, MOS_SCALES

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / 'options').glob('*.yml'))
META_INFO = sorted((REPO / 'pyiqa_agiqa' / 'data' / 'meta_info').glob('*.csv'))


def score_range(metric):
    low, high = AGIQA_METRIC_CONFIGS[metric]['score_range'].split(',')
    return float(low), float(high)


@pytest.mark.parametrize('recipe', RECIPES, ids=lambda p: p.stem)
def test_the_main_metric_range_holds_the_labels_its_recipe_trains_on(recipe):
    method, dataset = re.fullmatch(r'(ipce|cianet|clip_agiqa|dcmpl)_(\w+)', recipe.stem).groups()
    divisor = float(yaml.safe_load(recipe.read_text())['datasets']['train'].get('mos_divisor', 1))
    low, high = score_range(method)
    scale = MOS_SCALES[dataset]
    assert low <= scale[0] / divisor and scale[1] / divisor <= high, (recipe.name, scale, divisor, (low, high))


@pytest.mark.parametrize('path', META_INFO, ids=lambda p: p.stem)
def test_the_recorded_mos_scale_holds_the_bundled_labels(path):
    labels = pd.read_csv(path, usecols=lambda c: c.startswith('mos_'))
    low, high = MOS_SCALES[path.stem]
    assert len(labels.columns) and labels.min().min() >= low and labels.max().max() <= high
