"""AUTOMATIC1111 / Forge / Fooocus / SwarmUI ``parameters`` PNG chunk, written with Pillow and read back."""

import json

from prompt_files import A1111_NO_NEGATIVE, A1111_PARAMETERS, A1111_PROMPT, check, write_png

from pyiqa_agiqa.data.embedded_prompts import EmbeddedPrompt


def test_a1111_multiline_prompt_with_negative_and_steps(tmp_path):
    path = write_png(tmp_path / 'a1111.png', text=[('parameters', A1111_PARAMETERS)])
    result = check(path, A1111_PROMPT, 'png:parameters')
    assert isinstance(result, EmbeddedPrompt) and 'parameters' in result.detail


def test_a1111_without_negative_prompt(tmp_path):
    path = write_png(tmp_path / 'forge.png', text=[('parameters', A1111_NO_NEGATIVE)])
    check(path, 'a red fox sleeping in the snow, golden hour', 'png:parameters')


def test_a1111_plain_text_is_whole_prompt_and_ztxt(tmp_path):
    path = write_png(tmp_path / 'plain.png', ztxt=[('parameters', '  a watercolor of a heron\nstanding in reeds \n')])
    check(path, 'a watercolor of a heron\nstanding in reeds', 'png:parameters')


def test_parameters_as_fooocus_json(tmp_path):
    payload = json.dumps({'prompt': 'a bowl of ramen, studio photo', 'negative_prompt': 'blurry',
                          'steps': 30, 'metadata_scheme': 'fooocus'})
    path = write_png(tmp_path / 'fooocus.png', text=[('parameters', payload)])
    check(path, 'a bowl of ramen, studio photo', 'png:parameters')
    swarm = json.dumps({'sui_image_params': {'prompt': 'a lighthouse, oil painting', 'negativeprompt': 'blurry',
                                             'model': 'flux1-dev', 'seed': 7}})
    path = write_png(tmp_path / 'swarm.png', text=[('parameters', swarm)])
    check(path, 'a lighthouse, oil painting', 'png:parameters')


def test_parameters_itxt_utf8_and_text_after_image_data(tmp_path):
    path = write_png(tmp_path / 'itxt.png', itxt=[('parameters', '東京の夜景, neon\nSteps: 20, Seed: 1')])
    check(path, '東京の夜景, neon', 'png:parameters')
    late = write_png(tmp_path / 'late.png', after_idat=[('parameters', 'a late chunk\nSteps: 20, Seed: 1')])
    check(late, 'a late chunk', 'png:parameters')
