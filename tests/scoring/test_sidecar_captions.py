"""``pyiqa-agiqa score`` reads a sidecar caption (image.txt / image.caption) when an image holds
no embedded prompt, and a resume keeps those rows (a caption is read with the image, like its
metadata: it is not part of the row's identity)."""

import numpy as np
import pandas as pd
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pyiqa_agiqa.cli import main

TINY = ['--random-weights', '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'min_side=64', '--set', 'stride=8',
        '--device', 'cpu', '-q', '--workers', '0']


def _folder(root):
    """An A1111 PNG that also has a .txt, PNGs with a .txt / .caption only, and one with neither."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in ('both', 'txt', 'caption', 'none'):
        info = PngInfo()
        if name == 'both':
            info.add_text('parameters', 'the generation prompt\nSteps: 20, Seed: 1')
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(root / f'{name}.png', pnginfo=info)
    (root / 'both.txt').write_text('a training caption\n')
    (root / 'txt.txt').write_text(' a red fox \n')
    (root / 'caption.caption').write_text('an owl')
    return root


def test_score_reads_sidecar_captions_after_embedded_prompts_and_resumes(tmp_path, capsys):
    folder, out = _folder(tmp_path / 'gen'), tmp_path / 'scores.csv'
    assert main(['score', 'ipce', '-t', str(folder), '-o', str(out)] + TINY) == 1  # none.png: no prompt
    table = pd.read_csv(out, keep_default_na=False).set_index('image')
    assert table.loc[str(folder / 'both.png'), ['prompt', 'prompt_source']].tolist() == ['the generation prompt',
                                                                                         'png:parameters']
    assert table.loc[str(folder / 'txt.png'), ['prompt', 'prompt_source']].tolist() == [' a red fox ', 'caption:txt']
    assert table.loc[str(folder / 'caption.png'), ['prompt', 'prompt_source']].tolist() == ['an owl',
                                                                                            'caption:caption']
    assert 'no sidecar caption (none.txt, none.caption)' in table.loc[str(folder / 'none.png'), 'error']
    capsys.readouterr()
    main(['score', 'ipce', '-t', str(folder), '-o', str(out), '--resume'] + TINY)
    assert '(3 already in the output)' in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 4
