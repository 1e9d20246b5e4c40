"""ComfyUI ``prompt`` (API graph) and ``workflow`` (UI graph) PNG chunks."""

import json

from prompt_files import COMFY_API, COMFY_API_PROMPT, COMFY_WORKFLOW, COMFY_WORKFLOW_PROMPT, check, write_png


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


def test_broken_comfy_prompt_alone_is_reported(tmp_path):
    path = write_png(tmp_path / 'alone.png', text=[('prompt', '{"3": [1, 2')])
    result = check(path, None, 'png:comfyui')
    assert 'invalid JSON' in result.detail
