"""Every command prints an error of the plugin's kinds (weights, prompts, metadata, options,
images, training) as one line naming the problem and the fix, and exits with status 2; rows that
could not be scored are a result, not an error (status 1, tested with the scorer)."""

import os
import subprocess

import pytest
import yaml
from PIL import Image

from pyiqa_agiqa.cli import EXIT_ERROR, main, one_line

from conftest import console_script


def one_error_line(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_ERROR == 2, err
    assert err.count('\n') == 1 and err.startswith('error: ') and 'Traceback' not in err, err
    return err.strip()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'a.png'
    Image.new('RGB', (64, 64), (200, 30, 30)).save(path)
    return path


def test_score_offline_without_cached_clip_weights_is_one_line(image, tmp_path):
    """As a newcomer meets it: a real process, no cached CLIP, the hub unreachable."""
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path / 'empty_cache'))
    result = subprocess.run([console_script(), 'score', 'cianet_consistency', '-t', str(image), '--prompt',
                             'a red square', '-o', str(tmp_path / 's.csv')], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith("error: CLIP weights 'ViT-B-32-quickgelu' / 'openai' are not in the local cache")
    assert 'clip_pretrained=' in result.stderr  # the fix is named


def test_score_refusal_and_prompt_errors(image, capsys):
    assert 'no fine-tuned weights were given' in one_error_line(capsys, ['score', 'dcmpl', '-t', str(image), '-q'])
    assert '--prompt is empty' in one_error_line(capsys, ['score', 'ipce', '-t', str(image), '--prompt', ' ', '-q'])


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_train_and_train_nsplits(demo_data, tmp_path, capsys):
    from training_helpers import ipce_options

    opt = ipce_options(demo_data, 'typo', epochs=1)
    opt['train']['total_epochs'] = 3
    message = one_error_line(capsys, ['train', '-opt', str(write_yaml(tmp_path / 'a.yml', opt))])
    assert "unknown option(s) ['total_epochs'] in section train" in message and "did you mean 'total_epoch'" in message
    opt = ipce_options(demo_data, 'nosplits', epochs=1)
    message = one_error_line(capsys, ['train-nsplits', '-opt', str(write_yaml(tmp_path / 'b.yml', opt))])
    assert 'train-nsplits needs split_num' in message


def test_export_convert_and_demo(tmp_path, capsys):
    (tmp_path / 'not_an_experiment').mkdir()
    message = one_error_line(capsys, ['export', str(tmp_path / 'not_an_experiment'), '-o', str(tmp_path / 'w')])
    assert 'is neither an experiment folder nor the prefix of a multi-split run' in message
    (tmp_path / 'ckpt.pt').write_bytes(b'not a checkpoint')
    message = one_error_line(capsys, ['convert-reference', '--from', 'cianet-ref', str(tmp_path / 'ckpt.pt'), '-o',
                                      str(tmp_path / 'out')])
    assert 'ckpt.pt' in message
    workdir = tmp_path / 'demo'
    (workdir / 'data').mkdir(parents=True)
    (workdir / 'data' / 'meta_info.csv').write_text('name,mos_quality\n')  # the user's own file
    message = one_error_line(capsys, ['demo', '--workdir', str(workdir)])
    assert 'already holds a meta_info.csv' in message and 'overwrite' in message
    assert (workdir / 'data' / 'meta_info.csv').read_text() == 'name,mos_quality\n'


def test_an_error_raised_in_a_dataloader_worker_keeps_only_its_message():
    from pyiqa_agiqa.data.image_io import ImageReadError

    text = ('Caught ImageReadError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n'
            '  File "x.py", line 1, in f\n    raise\npyiqa_agiqa.data.image_io.ImageReadError: Cannot read image '
            'a.png: truncated')
    assert one_line(ImageReadError(text)) == 'Cannot read image a.png: truncated'
    assert one_line(ValueError('two\n  lines')) == 'two lines'


def test_an_option_file_with_a_python_tag_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.yml'
    evil.write_text(f"name: evil\nnum_gpu: 0\ndatasets: {{}}\npath: {{}}\n"
                    f"evil: !!python/object/apply:os.system ['touch {marker}']\n")
    message = one_error_line(capsys, ['train', '-opt', str(evil)])
    assert 'is not valid YAML' in message and 'python/object/apply' in message
    assert not marker.exists()
