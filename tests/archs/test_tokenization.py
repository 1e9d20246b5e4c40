"""Tokenisation off the critical path: the backbone's token cache gives the tokenizer's exact
ids (repeated texts are not tokenised again, the cache is bounded and never copied), and the
scorer tokenises the next batch's prompts in a thread while the model computes."""

import copy
import pickle
import threading

import numpy as np
import open_clip
import pandas as pd
import torch
from PIL import Image

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.archs.backbone.clip import TokenCache
from pyiqa_agiqa.metrics.factory import create_metrics
from pyiqa_agiqa.scoring.rows import rows_from_csv
from pyiqa_agiqa.scoring.local import score_rows

from conftest import rounding

TEXTS = ['a red fox in the snow', 'a cat', 'a red fox in the snow', 'tom &amp; jerry, &lt;3', 'café crème, ½ cup',
         'a very detailed painting of a castle ' * 30, '  spaced\tout\nprompt  ']


class CountingTokenizer:
    """open_clip's tokenizer, recording each call's texts and thread."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, []

    def __call__(self, texts):
        self.calls.append((threading.current_thread().name, list(texts)))
        return self.tokenizer(texts)


def test_token_cache_gives_the_tokenizers_ids_and_tokenises_each_text_once():
    tokenizer = CountingTokenizer(open_clip.get_tokenizer('AGIQA-Tiny-ViT'))
    cache = TokenCache(tokenizer)
    first = cache(TEXTS)
    assert first.dtype == torch.long and torch.equal(first, tokenizer.tokenizer(TEXTS))
    assert tokenizer.calls == [('MainThread', list(dict.fromkeys(TEXTS)))]  # each distinct text once
    again = cache(list(reversed(TEXTS)) + ['a new one'])
    assert torch.equal(again, tokenizer.tokenizer(list(reversed(TEXTS)) + ['a new one']))
    assert tokenizer.calls[1:] == [('MainThread', ['a new one'])]
    assert cache([]).shape == (0, 77)


def test_token_cache_is_bounded_least_recently_used_first_and_not_copied():
    tokenizer = CountingTokenizer(open_clip.get_tokenizer('AGIQA-Tiny-ViT'))
    cache = TokenCache(tokenizer, size=2)
    cache(['a', 'b'])
    cache(['a'])          # 'a' is now the most recent
    cache(['c'])          # drops 'b'
    tokenizer.calls.clear()
    assert torch.equal(cache(['a', 'b', 'c']), tokenizer.tokenizer(['a', 'b', 'c']))
    assert tokenizer.calls == [('MainThread', ['b'])]
    for copied in (pickle.loads(pickle.dumps(cache)), copy.deepcopy(cache)):
        assert len(copied._rows) == 0 and torch.equal(copied(['a']), tokenizer.tokenizer(['a']))


def test_scorer_tokenises_prompts_in_a_thread_and_scores_are_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(7):  # two sizes: the batches are filled per size, in any order
        side = 64 if i % 3 else 72
        Image.fromarray((rng.random((side, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / f'{i}.png')
        rows.append(dict(image=f'{i}.png', prompt=f'a picture number {i % 5}, in colour'))
    pd.DataFrame(rows).to_csv(tmp_path / 'rows.csv', index=False)
    options = dict(pretrained=False, clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8)
    torch.manual_seed(0)
    metrics = create_metrics(['ipce', 'cianet_consistency', 'cianet_authenticity'], 'cpu', options)
    counters = {}
    for name, metric in metrics.items():
        cache = metric.net.backbone.token_cache
        cache.tokenizer = counters[name] = CountingTokenizer(cache.tokenizer)
    table = score_rows(metrics, rows_from_csv(str(tmp_path / 'rows.csv')), batch_size=2, progress=False, workers=0)
    assert (table['error'] == '').all()
    prompt_texts = {name: {t for p in table['prompt'] for t in metrics[name].net.prompt_texts([p])}
                    for name in metrics}
    for name, counter in counters.items():
        tokenised_here = {t for thread, texts in counter.calls if thread == 'MainThread' for t in texts}
        tokenised_ahead = {t for thread, texts in counter.calls if thread.startswith('agiqa-tokenize')
                           for t in texts}
        assert tokenised_ahead == prompt_texts[name]
        assert not tokenised_here & prompt_texts[name]  # the model never waited for a prompt's tokens
    assert not prompt_texts['cianet_authenticity']
    scale = float(metrics['cianet_consistency'].net.backbone.logit_scale())
    ranges = {'ipce': 5, 'cianet_consistency': scale, 'cianet_authenticity': 5 * scale}  # as tests/archs/test_cianet.py
    for name in metrics:  # the same scores as uncached metric calls on each image
        metrics[name].net.backbone.token_cache.clear()
        for _, row in table.iterrows():
            image = torch.from_numpy(np.asarray(Image.open(row['image']), dtype=np.float32) / 255).permute(2, 0, 1)
            direct = metrics[name](image[None], prompt=[row['prompt']]).item()
            assert abs(direct - row[name]) <= 2 * rounding(torch.float32, ranges[name])  # batches of 2 vs 1: two runs
