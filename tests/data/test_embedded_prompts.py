"""Prompts embedded in image files: every format written with Pillow, read back from disk."""

import gzip
import json
import random
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pyiqa_agiqa.data import embedded_prompts
from pyiqa_agiqa.data.embedded_prompts import (MAX_PROMPT_CHARS, EmbeddedPrompt, read_embedded_prompt,
                                               read_embedded_prompts)

A1111_PROMPT = 'masterpiece, a lighthouse on a cliff at dusk,\ndramatic clouds, (volumetric light:1.2)'
A1111_PARAMETERS = (
    A1111_PROMPT + '\n'
    'Negative prompt: blurry, lowres, watermark,\nbad anatomy\n'
    'Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, '
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.7.0')
A1111_NO_NEGATIVE = ('a red fox sleeping in the snow, golden hour\n'
                     'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd_xl_base_1.0')

COMFY_API = {
    '3': {'class_type': 'KSampler', 'inputs': {
        'seed': 156680208700286, 'steps': 20, 'cfg': 8, 'sampler_name': 'euler', 'scheduler': 'normal',
        'denoise': 1, 'model': ['4', 0], 'positive': ['10', 0], 'negative': ['7', 0], 'latent_image': ['5', 0]}},
    '4': {'class_type': 'CheckpointLoaderSimple', 'inputs': {'ckpt_name': 'sd_xl_base_1.0.safetensors'}},
    '5': {'class_type': 'EmptyLatentImage', 'inputs': {'width': 1024, 'height': 1024, 'batch_size': 1}},
    '6': {'class_type': 'CLIPTextEncode', 'inputs': {'text': ['11', 0], 'clip': ['4', 1]}},
    '7': {'class_type': 'CLIPTextEncode', 'inputs': {'text': 'text, watermark, blurry', 'clip': ['4', 1]}},
    '8': {'class_type': 'VAEDecode', 'inputs': {'samples': ['3', 0], 'vae': ['4', 2]}},
    '9': {'class_type': 'SaveImage', 'inputs': {'filename_prefix': 'ComfyUI', 'images': ['8', 0]}},
    '10': {'class_type': 'ConditioningCombine', 'inputs': {'conditioning_1': ['6', 0], 'conditioning_2': ['12', 0]}},
    '11': {'class_type': 'PrimitiveStringMultiline', 'inputs': {'value': 'a cozy cabin in a snowy forest'}},
    '12': {'class_type': 'CLIPTextEncodeSDXL', 'inputs': {
        'width': 1024, 'height': 1024, 'crop_w': 0, 'crop_h': 0, 'target_width': 1024, 'target_height': 1024,
        'text_g': 'warm light in the windows', 'text_l': 'photograph, 35mm', 'clip': ['4', 1]}},
}
COMFY_API_PROMPT = 'a cozy cabin in a snowy forest\nwarm light in the windows\nphotograph, 35mm'

COMFY_WORKFLOW = {
    'last_node_id': 9, 'last_link_id': 9, 'version': 0.4,
    'nodes': [
        {'id': 7, 'type': 'CLIPTextEncode', 'inputs': [{'name': 'clip', 'type': 'CLIP', 'link': 5}],
         'outputs': [{'name': 'CONDITIONING', 'type': 'CONDITIONING', 'links': [6]}],
         'widgets_values': ['text, watermark']},
        {'id': 3, 'type': 'KSampler', 'inputs': [
            {'name': 'model', 'type': 'MODEL', 'link': 1}, {'name': 'positive', 'type': 'CONDITIONING', 'link': 4},
            {'name': 'negative', 'type': 'CONDITIONING', 'link': 6},
            {'name': 'latent_image', 'type': 'LATENT', 'link': 2}],
         'outputs': [{'name': 'LATENT', 'type': 'LATENT', 'links': [7]}],
         'widgets_values': [156680208700286, 'randomize', 20, 8, 'euler', 'normal', 1]},
        {'id': 6, 'type': 'CLIPTextEncode', 'inputs': [{'name': 'clip', 'type': 'CLIP', 'link': 3}],
         'outputs': [{'name': 'CONDITIONING', 'type': 'CONDITIONING', 'links': [4]}],
         'widgets_values': ['beautiful scenery nature glass bottle landscape, purple galaxy bottle,']},
        {'id': 4, 'type': 'CheckpointLoaderSimple', 'inputs': [],
         'outputs': [{'name': 'MODEL', 'links': [1]}, {'name': 'CLIP', 'links': [3, 5]}],
         'widgets_values': ['v1-5-pruned-emaonly.safetensors']},
    ],
    'links': [[1, 4, 0, 3, 0, 'MODEL'], [2, 5, 0, 3, 3, 'LATENT'], [3, 4, 1, 6, 0, 'CLIP'],
              [4, 6, 0, 3, 1, 'CONDITIONING'], [5, 4, 1, 7, 0, 'CLIP'], [6, 7, 0, 3, 2, 'CONDITIONING']],
}
COMFY_WORKFLOW_PROMPT = 'beautiful scenery nature glass bottle landscape, purple galaxy bottle,'


def write_png(path, text=(), itxt=(), ztxt=(), raw=(), exif=None, after_idat=()):
    """A small PNG with tEXt (text), iTXt, zTXt, raw chunks and optional eXIf."""
    info = PngInfo()
    for key, value in text:
        info.add_text(key, value)
    for key, value in itxt:
        info.add_itxt(key, value)
    for key, value in ztxt:
        info.add_text(key, value, zip=True)
    for cid, data in raw:
        info.add(cid, data)
    for key, value in after_idat:
        info.add(b'tEXt', key.encode('latin-1') + b'\x00' + value.encode('latin-1'), after_idat=True)
    kwargs = {'exif': exif.tobytes()} if exif is not None else {}  # Pillow skips an Exif() with an empty IFD0
    Image.new('RGB', (16, 16), (200, 120, 40)).save(path, 'PNG', pnginfo=info, **kwargs)
    return path


def exif_with(user_comment=None, description=None):
    exif = Image.Exif()
    if description is not None:
        exif[0x010E] = description
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    return exif


def write_image(path, fmt, exif=None, **kwargs):
    if exif is not None:
        kwargs['exif'] = exif.tobytes()
    Image.new('RGB', (16, 16), (40, 120, 200)).save(path, fmt, **kwargs)
    return path


def check(path, prompt, source):
    result = read_embedded_prompt(path)
    assert (result.prompt, result.source) == (prompt, source), result.detail
    return result


# ----------------------------------------------------------------------------- A1111 family

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


# ----------------------------------------------------------------------------- ComfyUI

def test_comfyui_api_graph_combine_sdxl_and_primitive(tmp_path):
    texts = [('prompt', json.dumps(COMFY_API)), ('workflow', json.dumps(COMFY_WORKFLOW))]
    path = write_png(tmp_path / 'comfy.png', text=texts)
    result = check(path, COMFY_API_PROMPT, 'png:comfyui')
    assert 'sampler node 3' in result.detail


def test_comfyui_sdxl_identical_texts_joined_once(tmp_path):
    graph = {
        '1': {'class_type': 'KSamplerAdvanced', 'inputs': {'positive': ['2', 0], 'negative': ['3', 0]}},
        '2': {'class_type': 'CLIPTextEncodeSDXL', 'inputs': {'text_g': 'a koi pond', 'text_l': 'a koi pond'}},
        '3': {'class_type': 'CLIPTextEncodeSDXL', 'inputs': {'text_g': 'ugly', 'text_l': 'ugly'}},
    }
    path = write_png(tmp_path / 'sdxl.png', text=[('prompt', json.dumps(graph))])
    check(path, 'a koi pond', 'png:comfyui')


def test_comfyui_first_sampler_by_numeric_id(tmp_path):
    graph = {
        '10': {'class_type': 'KSampler', 'inputs': {'positive': ['12', 0], 'negative': ['13', 0]}},
        '9': {'class_type': 'KSampler', 'inputs': {'positive': ['11', 0], 'negative': ['13', 0]}},
        '11': {'class_type': 'CLIPTextEncode', 'inputs': {'text': 'base pass: a desert at noon'}},
        '12': {'class_type': 'CLIPTextEncode', 'inputs': {'text': 'refiner pass: sharp details'}},
        '13': {'class_type': 'CLIPTextEncode', 'inputs': {'text': 'lowres'}},
    }
    path = write_png(tmp_path / 'two.png', text=[('prompt', json.dumps(graph))])
    result = check(path, 'base pass: a desert at noon', 'png:comfyui')
    assert '1 other sampler' in result.detail


def test_comfyui_flux_guider_chain_and_controlnet(tmp_path):
    graph = {
        '13': {'class_type': 'SamplerCustomAdvanced', 'inputs': {'noise': ['25', 0], 'guider': ['22', 0]}},
        '22': {'class_type': 'BasicGuider', 'inputs': {'model': ['12', 0], 'conditioning': ['26', 0]}},
        '26': {'class_type': 'FluxGuidance', 'inputs': {'guidance': 3.5, 'conditioning': ['30', 0]}},
        '30': {'class_type': 'ControlNetApplyAdvanced', 'inputs': {
            'positive': ['6', 0], 'negative': ['7', 0], 'strength': 0.8}},
        '6': {'class_type': 'CLIPTextEncode', 'inputs': {'text': 'a cat astronaut floating in space'}},
        '7': {'class_type': 'CLIPTextEncode', 'inputs': {'text': 'never this'}},
    }
    path = write_png(tmp_path / 'flux.png', text=[('prompt', json.dumps(graph))])
    check(path, 'a cat astronaut floating in space', 'png:comfyui')


def test_comfyui_workflow_only(tmp_path):
    path = write_png(tmp_path / 'workflow.png', text=[('workflow', json.dumps(COMFY_WORKFLOW))])
    result = check(path, COMFY_WORKFLOW_PROMPT, 'png:comfyui')
    assert 'sampler node 3' in result.detail


def test_comfyui_workflow_single_positive_encoder_fallback(tmp_path):
    workflow = {'nodes': [
        {'id': 1, 'type': 'MyFancySampler', 'inputs': [{'name': 'cond', 'link': 1}, {'name': 'negative', 'link': 2}]},
        {'id': 2, 'type': 'CLIPTextEncode', 'widgets_values': ['a lone tree on a hill']},
        {'id': 3, 'type': 'CLIPTextEncode', 'widgets_values': ['jpeg artifacts']},
    ], 'links': [{'id': 1, 'origin_id': 2, 'origin_slot': 0, 'target_id': 1, 'target_slot': 0},
                 {'id': 2, 'origin_id': 3, 'origin_slot': 0, 'target_id': 1, 'target_slot': 1}]}
    path = write_png(tmp_path / 'fallback.png', text=[('workflow', json.dumps(workflow))])
    check(path, 'a lone tree on a hill', 'png:comfyui')


def test_broken_comfy_prompt_falls_back_to_workflow(tmp_path):
    path = write_png(tmp_path / 'broken.png', text=[('prompt', '{"3": {"class_type": "KSampler",'),
                                                    ('workflow', json.dumps(COMFY_WORKFLOW))])
    result = check(path, COMFY_WORKFLOW_PROMPT, 'png:comfyui')
    assert 'invalid JSON' in result.detail


def test_broken_comfy_prompt_with_valid_parameters(tmp_path):
    path = write_png(tmp_path / 'both.png', text=[('prompt', '{not json'), ('parameters', A1111_NO_NEGATIVE)])
    check(path, 'a red fox sleeping in the snow, golden hour', 'png:parameters')


def test_broken_comfy_prompt_alone_is_reported(tmp_path):
    path = write_png(tmp_path / 'alone.png', text=[('prompt', '{"3": [1, 2')])
    result = check(path, None, 'png:comfyui')
    assert 'invalid JSON' in result.detail


# ----------------------------------------------------------------------------- InvokeAI, NovelAI

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


# ----------------------------------------------------------------------------- EXIF and XMP

def test_exif_user_comment_unicode_big_endian_jpeg_parsed_as_a1111(tmp_path):
    comment = b'UNICODE\x00' + A1111_PARAMETERS.encode('utf-16-be')
    path = write_image(tmp_path / 'a1111.jpg', 'JPEG', exif_with(user_comment=comment))
    check(path, A1111_PROMPT, 'exif:UserComment')


def test_exif_user_comment_unicode_little_endian_webp(tmp_path):
    comment = b'UNICODE\x00' + 'a snowy owl, 雪, perched on a branch\nSteps: 30, Seed: 7'.encode('utf-16-le')
    path = write_image(tmp_path / 'le.webp', 'WEBP', exif_with(user_comment=comment))
    check(path, 'a snowy owl, 雪, perched on a branch', 'exif:UserComment')


def test_exif_user_comment_ascii_jpeg_and_png_exif(tmp_path):
    comment = b'ASCII\x00\x00\x00' + A1111_NO_NEGATIVE.encode('ascii')
    path = write_image(tmp_path / 'ascii.jpg', 'JPEG', exif_with(user_comment=comment))
    check(path, 'a red fox sleeping in the snow, golden hour', 'exif:UserComment')
    png = write_png(tmp_path / 'exif.png', exif=exif_with(user_comment=comment))
    check(png, 'a red fox sleeping in the snow, golden hour', 'exif:UserComment')


def test_exif_user_comment_jis_and_undefined(tmp_path):
    jis = b'JIS\x00\x00\x00\x00\x00' + '桜の木の下の猫'.encode('iso2022_jp')
    check(write_image(tmp_path / 'jis.jpg', 'JPEG', exif_with(user_comment=jis)), '桜の木の下の猫', 'exif:UserComment')
    undefined = b'\x00' * 8 + 'a paper boat on a puddle'.encode('utf-8')
    check(write_image(tmp_path / 'undef.jpg', 'JPEG', exif_with(user_comment=undefined)),
          'a paper boat on a puddle', 'exif:UserComment')


def test_imagemagick_raw_profile_exif_in_png(tmp_path):
    data = exif_with(user_comment=b'ASCII\x00\x00\x00a bonsai tree, macro photo').tobytes()[6:]
    profile = f'\nexif\n{len(data):8d}\n' + '\n'.join(data[i:i + 36].hex() for i in range(0, len(data), 36))
    path = write_png(tmp_path / 'magick.png', ztxt=[('Raw profile type exif', profile)])
    check(path, 'a bonsai tree, macro photo', 'exif:UserComment')


def test_exif_image_description(tmp_path):
    path = write_image(tmp_path / 'desc.jpg', 'JPEG', exif_with(description='a vintage car on route 66'))
    check(path, 'a vintage car on route 66', 'exif:ImageDescription')


def test_user_comment_before_image_description(tmp_path):
    exif = exif_with(user_comment=b'ASCII\x00\x00\x00a glass of lemonade', description='some description')
    check(write_image(tmp_path / 'both.webp', 'WEBP', exif), 'a glass of lemonade', 'exif:UserComment')


def test_xmp_description(tmp_path):
    packet = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
              '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
              'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt>'
              '<rdf:li xml:lang="x-default">a fox &amp; a hound at dawn</rdf:li></rdf:Alt></dc:description>'
              '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
    path = write_png(tmp_path / 'xmp.png', itxt=[('XML:com.adobe.xmp', packet)])
    check(path, 'a fox & a hound at dawn', 'xmp:description')
    jpeg = write_image(tmp_path / 'xmp.jpg', 'JPEG', xmp=packet.encode('utf-8'))
    check(jpeg, 'a fox & a hound at dawn', 'xmp:description')


# ----------------------------------------------------------------------------- failures and hygiene

def test_no_metadata(tmp_path):
    for path in (write_png(tmp_path / 'bare.png'), write_image(tmp_path / 'bare.jpg', 'JPEG')):
        result = check(path, None, 'none')
        assert 'looked at' in result.detail


def test_prompt_too_long_is_malformed_and_later_sources_still_used(tmp_path):
    huge = 'a ' * (MAX_PROMPT_CHARS // 2 + 10) + '\nSteps: 20, Seed: 1'
    result = check(write_png(tmp_path / 'huge.png', ztxt=[('parameters', huge)]), None, 'png:parameters')
    assert str(MAX_PROMPT_CHARS) in result.detail
    exif = exif_with(user_comment=b'ASCII\x00\x00\x00a tidy prompt')
    result = check(write_png(tmp_path / 'huge2.png', text=[('parameters', huge)], exif=exif),
                   'a tidy prompt', 'exif:UserComment')
    assert 'png:parameters skipped' in result.detail


def test_empty_and_whitespace_prompts_rejected(tmp_path):
    path = write_png(tmp_path / 'empty.png', text=[('parameters', '  \nNegative prompt: x\nSteps: 20, Seed: 1'),
                                                   ('Description', 'a fallback description')])
    check(path, 'a fallback description', 'png:novelai')
    blank = write_image(tmp_path / 'blank.jpg', 'JPEG', exif_with(description='          '))
    result = check(blank, None, 'none')
    assert 'empty prompt' in result.detail


def test_truncated_png_reads_chunks_before_the_cut(tmp_path):
    path = write_png(tmp_path / 'full.png', text=[('parameters', A1111_PARAMETERS)])
    data = path.read_bytes()
    cut = tmp_path / 'cut.png'
    cut.write_bytes(data[:data.index(b'IDAT') + 10])
    result = check(cut, A1111_PROMPT, 'png:parameters')
    assert 'truncated' in result.detail
    inside = tmp_path / 'inside.png'
    inside.write_bytes(data[:data.index(b'Negative prompt')])
    result = check(inside, None, 'none')
    assert 'truncated' in result.detail


def test_bad_crc_chunk_skipped(tmp_path):
    data = bytearray(write_png(tmp_path / 'ok.png', text=[('parameters', A1111_NO_NEGATIVE)]).read_bytes())
    start = data.index(b'tEXtparameters')
    length = int.from_bytes(data[start - 4:start], 'big')
    data[start + 4 + length] ^= 0xFF
    bad = tmp_path / 'bad.png'
    bad.write_bytes(bytes(data))
    result = check(bad, None, 'none')
    assert 'bad CRC' in result.detail


def test_non_utf8_bytes(tmp_path):
    latin = write_png(tmp_path / 'latin.png', raw=[(b'tEXt', b'parameters\x00caf\xe9 au lait\nSteps: 20')])
    check(latin, 'café au lait', 'png:parameters')
    itxt = write_png(tmp_path / 'itxt.png', raw=[(b'iTXt', b'parameters\x00\x00\x00\x00\x00caf\xe9 \xff')])
    result = check(itxt, None, 'none')
    assert 'not valid UTF-8' in result.detail
    comment = b'ASCII\x00\x00\x00caf\xe9 \xff\xfe'
    result = check(write_image(tmp_path / 'bad.jpg', 'JPEG', exif_with(user_comment=comment)),
                   None, 'exif:UserComment')
    assert 'not valid' in result.detail


def test_corrupt_ztxt_and_not_an_image(tmp_path):
    raw = [(b'zTXt', b'parameters\x00\x00' + zlib.compress(b'a cat')[:-3] + b'junk')]
    result = check(write_png(tmp_path / 'z.png', raw=raw), None, 'none')
    assert 'zTXt chunk skipped' in result.detail
    text_file = tmp_path / 'notes.jpg'
    text_file.write_text('not an image at all')
    result = check(text_file, None, 'none')
    assert 'Pillow could not read' in result.detail


def test_comfy_workflow_in_image_description_is_not_a_prompt(tmp_path):
    description = 'Workflow:' + json.dumps(COMFY_WORKFLOW)
    path = write_image(tmp_path / 'comfy.webp', 'WEBP', exif_with(description=description))
    result = check(path, None, 'exif:ImageDescription')
    assert 'ComfyUI graph' in result.detail


def test_mutated_files_never_raise(tmp_path):
    rng = random.Random(0)
    seeds = [write_png(tmp_path / 'a.png', text=[('parameters', A1111_PARAMETERS), ('prompt', json.dumps(COMFY_API))],
                       exif=exif_with(user_comment=b'UNICODE\x00' + 'a cat'.encode('utf-16-le'))).read_bytes(),
             write_image(tmp_path / 'b.jpg', 'JPEG', exif_with(b'ASCII\x00\x00\x00a dog', 'd')).read_bytes(),
             write_image(tmp_path / 'c.webp', 'WEBP', exif_with(b'ASCII\x00\x00\x00a dog', 'd')).read_bytes()]
    target = tmp_path / 'mutated.bin'
    for _ in range(150):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        target.write_bytes(bytes(data[:rng.randint(len(data) // 2, len(data))]))
        result = read_embedded_prompt(target)
        assert result.prompt is None or (isinstance(result.prompt, str) and result.prompt.strip())


def test_missing_file_raises_naming_the_path(tmp_path):
    missing = tmp_path / 'nowhere' / 'missing.png'
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_embedded_prompt(missing)


def test_read_many_with_progress(tmp_path):
    paths = [write_png(tmp_path / 'a.png', text=[('parameters', A1111_NO_NEGATIVE)]),
             write_png(tmp_path / 'b.png')]
    results = read_embedded_prompts(paths, progress=True)
    assert [(r.prompt, r.source) for r in results] == [('a red fox sleeping in the snow, golden hour',
                                                        'png:parameters'), (None, 'none')]
    assert read_embedded_prompts([str(p) for p in paths]) == results


# ----------------------------------------------------------------------------- stealth PNG info (pixel LSBs)

STEALTH_PROMPT = 'a tin robot watering tulips'
STEALTH_PARAMETERS = STEALTH_PROMPT + '\nNegative prompt: blurry, lowres\nSteps: 20, Sampler: Euler a, Seed: 7'


def write_stealth_png(path, payload='', mode='alpha', compressed=False, image_mode='RGBA', size=(40, 30),
                      data=None, n_bits=None, text=(), seed=0):
    """A PNG of random pixels with A1111 stealth PNG info written into the LSBs, as the format says.

    mode 'alpha': one bit per pixel in alpha; 'rgb': R, G, B LSBs of each pixel as one stream. Pixels
    in column-major order (for x: for y:), bytes MSB first. data: payload bytes as they are (else
    payload, UTF-8, gzipped when compressed); n_bits: the declared length (else the true one)."""
    if data is None:
        data = gzip.compress(payload.encode('utf-8')) if compressed else payload.encode('utf-8')
    signature = f'stealth_{"png" if mode == "alpha" else "rgb"}{"comp" if compressed else "info"}'.encode()
    n_bits = 8 * len(data) if n_bits is None else n_bits
    bits = np.unpackbits(np.frombuffer(signature + n_bits.to_bytes(4, 'big') + data, np.uint8))
    width, height = size
    bands = len(image_mode)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, bands), dtype=np.uint8)
    channels = [bands - 1] if mode == 'alpha' else [0, 1, 2]
    slots = [(y, x, c) for x in range(width) for y in range(height) for c in channels]
    assert len(bits) <= len(slots), 'test payload does not fit the image'
    for bit, (y, x, c) in zip(bits, slots):
        pixels[y, x, c] = (pixels[y, x, c] & 0xFE) | bit
    info = PngInfo()
    for key, value in text:
        info.add_text(key, value)
    Image.fromarray(pixels, image_mode).save(path, 'PNG', pnginfo=info)
    return path


@pytest.fixture
def stealth_decodes(monkeypatch):
    """Calls of the function that decodes pixels for stealth PNG info."""
    calls = []
    real = embedded_prompts._read_stealth

    def spy(img, meta):
        calls.append(img.size)
        return real(img, meta)

    monkeypatch.setattr(embedded_prompts, '_read_stealth', spy)
    return calls


@pytest.mark.parametrize('mode, compressed, image_mode, payload, prompt', [
    ('alpha', False, 'RGBA', STEALTH_PARAMETERS, STEALTH_PROMPT),
    ('alpha', True, 'RGBA', STEALTH_PARAMETERS, STEALTH_PROMPT),
    ('alpha', False, 'LA', STEALTH_PARAMETERS, STEALTH_PROMPT),
    ('rgb', False, 'RGB', A1111_PARAMETERS, A1111_PROMPT),
    ('rgb', True, 'RGB', A1111_PARAMETERS, A1111_PROMPT),
    ('rgb', False, 'RGBA', A1111_NO_NEGATIVE, 'a red fox sleeping in the snow, golden hour'),  # alpha tried first
])
def test_stealth_round_trip_strips_negative_and_steps(tmp_path, stealth_decodes, mode, compressed, image_mode,
                                                      payload, prompt):
    path = write_stealth_png(tmp_path / 'stealth.png', payload, mode, compressed, image_mode)
    result = check(path, prompt, 'png:stealth')
    tag = f'stealth_{"png" if mode == "alpha" else "rgb"}{"comp" if compressed else "info"}'
    assert tag in result.detail and stealth_decodes == [(40, 30)]
    assert 'Negative prompt' not in result.prompt and 'Steps:' not in result.prompt


def test_text_chunks_win_over_stealth_bits_without_decoding_pixels(tmp_path, stealth_decodes):
    path = write_stealth_png(tmp_path / 'both.png', STEALTH_PARAMETERS, text=[('parameters', A1111_NO_NEGATIVE)])
    check(path, 'a red fox sleeping in the snow, golden hour', 'png:parameters')
    assert stealth_decodes == []
    data = bytearray(path.read_bytes())  # pixel data wrecked: never looked at while a text chunk has the prompt
    start = data.index(b'IDAT') + 4
    data[start + 8:start + 200] = bytes(192)
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(bytes(data))
    check(corrupt, 'a red fox sleeping in the snow, golden hour', 'png:parameters')
    assert stealth_decodes == []


def test_undecodable_pixels_are_a_note(tmp_path):
    data = write_stealth_png(tmp_path / 'ok.png', STEALTH_PARAMETERS).read_bytes()
    start = data.index(b'IDAT') + 4
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(data[:start + 2] + b'\xff' * 198 + data[start + 200:])
    result = check(corrupt, None, 'none')
    assert 'could not be decoded (OSError' in result.detail
    cut = tmp_path / 'cut.png'
    cut.write_bytes(data[:start + 300])
    result = check(cut, None, 'none')
    assert 'truncated' in result.detail and 'could not be decoded' in result.detail


def test_random_lsbs_are_no_stealth_prompt(tmp_path, stealth_decodes):
    for image_mode in ('RGBA', 'RGB'):
        pixels = np.random.default_rng(1).integers(0, 256, (30, 40, len(image_mode)), dtype=np.uint8)
        path = tmp_path / f'random_{image_mode}.png'
        Image.fromarray(pixels, image_mode).save(path)
        result = check(path, None, 'none')
        assert 'stealth' in result.detail and 'no signature' in result.detail
    assert len(stealth_decodes) == 2
    assert 'alpha or RGB' in read_embedded_prompt(tmp_path / 'random_RGBA.png').detail


def test_stealth_length_beyond_capacity_and_corrupt_payloads_are_malformed(tmp_path):
    path = write_stealth_png(tmp_path / 'long.png', 'a cat', n_bits=1_000_000)
    result = check(path, None, 'png:stealth')
    assert '1000000 bits is more than the 1048 bits' in result.detail
    broken = gzip.compress(STEALTH_PARAMETERS.encode())
    broken = broken[:12] + b'\x00junk not deflate' + broken[30:]
    result = check(write_stealth_png(tmp_path / 'gzip.png', compressed=True, data=broken), None, 'png:stealth')
    assert 'gzip payload is corrupt' in result.detail
    short = gzip.compress(STEALTH_PARAMETERS.encode())[:-20]
    result = check(write_stealth_png(tmp_path / 'short.png', compressed=True, data=short), None, 'png:stealth')
    assert 'truncated' in result.detail
    latin = write_stealth_png(tmp_path / 'latin.png', data=b'caf\xe9 \xff\nSteps: 20', mode='rgb', image_mode='RGB')
    result = check(latin, None, 'png:stealth')
    assert 'not valid UTF-8' in result.detail


def test_stealth_only_in_png_and_refused_above_max_image_pixels(tmp_path, monkeypatch):
    path = write_stealth_png(tmp_path / 'big.png', STEALTH_PARAMETERS)
    webp = tmp_path / 'stealth.webp'
    Image.open(path).save(webp, 'WEBP', lossless=True, exact=True)
    assert np.array_equal(np.asarray(Image.open(webp)), np.asarray(Image.open(path)))
    assert 'stealth' not in check(webp, None, 'none').detail
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    result = check(path, None, 'none')
    assert '40x30 pixels is above Image.MAX_IMAGE_PIXELS (1000)' in result.detail


def test_stealth_prompt_through_read_row(tmp_path):
    from pyiqa_agiqa.scoring.rows import read_row

    path = write_stealth_png(tmp_path / 'row.png', STEALTH_PARAMETERS, compressed=True)
    prompt, source, picture, error = read_row(str(path), None, '')
    assert (prompt, source, error) == (STEALTH_PROMPT, 'png:stealth', '')
    assert picture is not None and picture.size == (40, 30)
