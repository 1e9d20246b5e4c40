"""InvokeAI ``invokeai_metadata``, ``sd-metadata`` and ``Dream`` PNG chunks."""

import json

from prompt_files import check, write_png


def test_invokeai_metadata(tmp_path):
    metadata = {'generation_mode': 'txt2img', 'positive_prompt': 'a steampunk airship above london',
                'negative_prompt': 'low quality', 'width': 512, 'height': 512, 'seed': 3005425012,
                'cfg_scale': 7.5, 'steps': 30, 'scheduler': 'euler', 'model': {'model_name': 'sd-1.5'}}
    path = write_png(tmp_path / 'invoke3.png', text=[('invokeai_metadata', json.dumps(metadata))])
    check(path, 'a steampunk airship above london', 'png:invokeai')


def test_invokeai_sd_metadata_list_and_string(tmp_path):
    listed = {'model': 'stable diffusion', 'app_id': 'invoke-ai/InvokeAI', 'app_version': '2.2.5',
              'image': {'prompt': [{'prompt': 'a fantasy castle on a lake [blurry, lowres]', 'weight': 1.0}],
                        'steps': 50, 'cfg_scale': 7.5, 'seed': 1234, 'sampler': 'k_lms', 'type': 'txt2img'}}
    path = write_png(tmp_path / 'invoke2.png', text=[('sd-metadata', json.dumps(listed))])
    check(path, 'a fantasy castle on a lake', 'png:invokeai')
    single = {'app_id': 'invoke-ai/InvokeAI', 'image': {'prompt': 'an owl in a library', 'steps': 50}}
    path = write_png(tmp_path / 'invoke2s.png', text=[('sd-metadata', json.dumps(single))])
    check(path, 'an owl in a library', 'png:invokeai')


def test_invokeai_dream(tmp_path):
    dream = '"a portrait of an old \\"sea\\" captain, oil painting [cartoon]" -s 50 -S 3357757885 -W 512 -H 512 -C 7.5'
    path = write_png(tmp_path / 'dream.png', text=[('Dream', dream)])
    check(path, 'a portrait of an old "sea" captain, oil painting', 'png:invokeai')
