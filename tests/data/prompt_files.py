"""Shared by the embedded-prompt tests: sample metadata of each generator, builders that write
small PNG / JPEG / WebP files holding it (text chunks, EXIF, XMP, stealth pixel bits) with
Pillow, and :func:`check`, which reads a file back; :func:`spy_on_stealth_decodes` counts pixel
decodes."""

import gzip

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pyiqa_agiqa.data.embedded_prompts import read_embedded_prompt, stealth

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
STEALTH_PROMPT = 'a tin robot watering tulips'
STEALTH_PARAMETERS = STEALTH_PROMPT + '\nNegative prompt: blurry, lowres\nSteps: 20, Sampler: Euler a, Seed: 7'


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


def check(path, prompt, source):
    result = read_embedded_prompt(path)
    assert (result.prompt, result.source) == (prompt, source), result.detail
    return result


def spy_on_stealth_decodes(monkeypatch):
    """Calls of the function that decodes pixels for stealth PNG info (patched where the reader looks it up)."""
    calls = []
    real = stealth._read_stealth

    def spy(img, meta):
        calls.append(img.size)
        return real(img, meta)

    monkeypatch.setattr(stealth, '_read_stealth', spy)
    return calls
