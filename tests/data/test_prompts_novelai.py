"""NovelAI ``Description`` and ``Comment`` PNG chunks."""

import json

from prompt_files import check, write_png

NOVELAI_COMMENT = {'prompt': '1girl, silver hair, cherry blossoms, masterpiece', 'steps': 28, 'height': 768,
                   'width': 512, 'scale': 11, 'seed': 1234567, 'sampler': 'k_euler_ancestral',
                   'uc': 'lowres, bad anatomy'}


def test_novelai_description(tmp_path):
    path = write_png(tmp_path / 'nai.png', text=[
        ('Title', 'AI generated image'), ('Description', 'a knight under a full moon, detailed'),
        ('Software', 'NovelAI'), ('Source', 'Stable Diffusion 1D44365E'), ('Comment', json.dumps(NOVELAI_COMMENT))])
    check(path, 'a knight under a full moon, detailed', 'png:novelai')


def test_novelai_comment_json(tmp_path):
    path = write_png(tmp_path / 'nai_comment.png', text=[('Software', 'NovelAI'),
                                                         ('Comment', json.dumps(NOVELAI_COMMENT))])
    check(path, '1girl, silver hair, cherry blossoms, masterpiece', 'png:novelai')
