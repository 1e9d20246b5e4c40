"""A plugin metric called with a path and no prompt (how pyiqa's command calls it) takes the
file's own prompt: embedded metadata, else a sidecar caption; tensors still need ``prompt=``."""

import numpy as np
import pyiqa
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.prompt_args import PromptError

TINY = dict(pretrained=False, clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, device='cpu')


@pytest.fixture(scope='module')
def metric():
    torch.manual_seed(0)
    return pyiqa.create_metric('ipce', **TINY)


@pytest.fixture
def generated(tmp_path):
    """{file name: its prompt}: an A1111 PNG, PNGs with a .txt / .caption caption; and a PNG with none."""
    rng = np.random.default_rng(0)

    def save(name, parameters=None):
        info = PngInfo()
        if parameters:
            info.add_text('parameters', f'{parameters}\nNegative prompt: blurry\nSteps: 20, Seed: 1')
        Image.fromarray((rng.random((64, 72, 3)) * 255).astype(np.uint8)).save(tmp_path / name, pnginfo=info)

    save('a1111.png', 'a lighthouse at dusk')
    save('txt.png')
    (tmp_path / 'txt.txt').write_text('a red fox in the snow\n')
    save('caption.png')
    (tmp_path / 'caption.caption').write_text('an owl on a branch')
    save('none.png')
    return tmp_path, {'a1111.png': 'a lighthouse at dusk', 'txt.png': 'a red fox in the snow',
                      'caption.png': 'an owl on a branch'}


def test_a_path_without_a_prompt_is_scored_with_the_files_prompt(metric, generated):
    folder, prompts = generated
    for name, prompt in prompts.items():
        path = str(folder / name)
        assert metric(path).item() == metric(path, prompt=prompt).item()
        assert metric(folder / name).item() != metric(path, prompt='a blue square').item()
    paths = [str(folder / name) for name in prompts]
    torch.testing.assert_close(metric(paths), metric(paths, prompt=list(prompts.values())), rtol=0, atol=0)


def test_no_prompt_anywhere_names_the_file_and_the_ways_and_tensors_need_one(metric, generated):
    folder, _ = generated
    path = str(folder / 'none.png')
    with pytest.raises(PromptError) as error:
        metric(path)
    message = str(error.value)
    assert '\n' not in message and message.startswith(f'ipce: no prompt for {path} (no prompt found; looked at')
    assert "no sidecar caption (none.txt, none.caption)); pass it as prompt='...', or write it into none.txt" in message
    with pytest.raises(PromptError, match=f'no prompt for {path}'):
        metric([str(folder / 'txt.png'), path])
    # a tensor or a PIL image carries no file: it still needs prompt=
    with pytest.raises(PromptError, match='pass the generation prompt'):
        metric(torch.rand(1, 3, 64, 64))
    with pytest.raises(PromptError, match='pass the generation prompt'):
        metric(Image.open(folder / 'a1111.png'))
