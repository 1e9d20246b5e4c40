"""ComfyUI: the positive prompt of the first sampler, from the ``prompt`` chunk (API graph) or else
the ``workflow`` chunk (UI graph), followed back through conditioning nodes to the text encoders.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from .common import _Found, _join_distinct, _json_object, _Malformed

_Nodes = Dict[str, Dict[str, Any]]  # ComfyUI node id -> node
_Links = Dict[Union[int, str], str]  # ComfyUI workflow link id -> source node id

_SAMPLER_MARKERS = ('KSampler', 'SamplerCustom')
_ENCODER_MARKER = 'TextEncode'
_ENCODER_TEXT_KEYS = ('text', 'prompt')
_ENCODER_DUAL_KEYS = ('text_g', 'text_l', 't5xxl', 'clip_g', 'clip_l')
_SOURCE_TEXT_KEYS = ('text', 'string', 'value')


def _id_key(node_id: str) -> tuple[int, tuple[int, ...], str]:
    parts = str(node_id).split(':')
    if all(part.isdigit() for part in parts):
        return (0, tuple(int(part) for part in parts), '')
    return (1, (), str(node_id))


def _follows(input_name: Any) -> bool:
    """Inputs that carry positive conditioning towards the text encoder."""
    name = str(input_name)
    return 'negative' not in name and (name in ('positive', 'guider') or name.startswith('cond'))


def _pick_sampler(found: list[tuple[str, str]], n_samplers: int) -> _Found:
    """found: [(node_id, prompt)] sorted by node id -> (prompt, note)."""
    if not found:
        raise _Malformed(f'no positive prompt text reachable from {n_samplers} sampler node(s)'
                         if n_samplers else 'no sampler node')
    node_id, prompt = found[0]
    note = f'sampler node {node_id}'
    disagree = sum(1 for _, other in found[1:] if other != prompt)
    if disagree:
        note += f'; {disagree} other sampler(s) with a different prompt ignored'
    return prompt, note


# ----------------------------------------------------------------------------- ComfyUI API graph

def _parse_comfy_api(text: str) -> _Found:
    graph = _json_object(text, 'ComfyUI graph')
    nodes = {str(key): node for key, node in graph.items()
             if isinstance(node, dict) and isinstance(node.get('inputs'), dict)}
    if not nodes:
        raise _Malformed('no ComfyUI nodes')
    samplers = [key for key, node in nodes.items()
                if any(marker in str(node.get('class_type', '')) for marker in _SAMPLER_MARKERS)]
    if not samplers:
        samplers = [key for key, node in nodes.items() if 'positive' in node['inputs']]
    found = []
    for node_id in sorted(samplers, key=_id_key):
        prompt = _join_distinct(_api_texts(nodes, node_id, set()))
        if prompt:
            found.append((node_id, prompt))
    return _pick_sampler(found, len(samplers))


def _is_link(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int))


def _api_texts(nodes: _Nodes, node_id: str, seen: set[str]) -> list[str]:
    if node_id in seen or node_id not in nodes:
        return []
    seen.add(node_id)
    node = nodes[node_id]
    if _ENCODER_MARKER in str(node.get('class_type', '')):
        return [_api_encoder_text(nodes, node['inputs'])]
    texts = []
    for name, value in node['inputs'].items():
        if _follows(name) and _is_link(value):
            texts += _api_texts(nodes, str(value[0]), seen)
    return texts


def _api_encoder_text(nodes: _Nodes, inputs: dict[str, Any]) -> str:
    for key in _ENCODER_TEXT_KEYS:
        if key in inputs:
            return _api_resolve(nodes, inputs[key], set()) or ''
    return _join_distinct(_api_resolve(nodes, inputs.get(key), set()) for key in _ENCODER_DUAL_KEYS)


def _api_resolve(nodes: _Nodes, value: Any, seen: set[str]) -> Optional[str]:
    """A string input, or the text of the primitive / string node it is linked to."""
    if isinstance(value, str):
        return value
    if not _is_link(value) or str(value[0]) in seen or str(value[0]) not in nodes:
        return None
    seen.add(str(value[0]))
    inputs = nodes[str(value[0])]['inputs']
    for key in _SOURCE_TEXT_KEYS:
        resolved = _api_resolve(nodes, inputs.get(key), seen)
        if resolved is not None:
            return resolved
    return None


# ----------------------------------------------------------------------------- ComfyUI UI workflow

def _parse_comfy_workflow(text: str) -> _Found:
    data = _json_object(text, 'ComfyUI workflow')
    if not isinstance(data.get('nodes'), list):
        raise _Malformed('no nodes list')
    nodes = {str(node['id']): node for node in data['nodes'] if isinstance(node, dict) and 'id' in node}
    links = _workflow_links(data.get('links'))
    samplers = [key for key, node in nodes.items()
                if any(marker in str(node.get('type', '')) for marker in _SAMPLER_MARKERS)]
    if not samplers:
        samplers = [key for key, node in nodes.items() if 'positive' in _input_links(node)]
    found = []
    for node_id in sorted(samplers, key=_id_key):
        prompt = _join_distinct(_wf_texts(nodes, links, node_id, set()))
        if prompt:
            found.append((node_id, prompt))
    if found:
        return _pick_sampler(found, len(samplers))
    return _wf_single_encoder(nodes, links), 'the only text encoder not wired to a negative input'


def _workflow_links(raw: Any) -> dict[Union[int, str], str]:
    """link id -> source node id, from [id, from, from_slot, to, to_slot, type] or dict links."""
    links = {}
    for link in raw if isinstance(raw, list) else []:
        if isinstance(link, list) and len(link) >= 4 and _is_id(link[0]):
            links[link[0]] = str(link[1])
        elif isinstance(link, dict) and _is_id(link.get('id')) and 'origin_id' in link:
            links[link['id']] = str(link['origin_id'])
    return links


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str))


def _input_links(node: dict[str, Any]) -> dict[str, Union[int, str]]:
    """input name -> link id (only linked inputs)."""
    inputs = node.get('inputs')
    return {str(inp.get('name')): inp['link'] for inp in inputs if isinstance(inp, dict)
            and _is_id(inp.get('link'))} if isinstance(inputs, list) else {}


def _wf_texts(nodes: _Nodes, links: _Links, node_id: str, seen: set[str]) -> list[str]:
    if node_id in seen or node_id not in nodes:
        return []
    seen.add(node_id)
    node = nodes[node_id]
    if _ENCODER_MARKER in str(node.get('type', '')):
        return [_wf_encoder_text(nodes, links, node)]
    texts = []
    for name, link in _input_links(node).items():
        if _follows(name) and link in links:
            texts += _wf_texts(nodes, links, links[link], seen)
    return texts


def _wf_encoder_text(nodes: _Nodes, links: _Links, node: dict[str, Any]) -> str:
    linked = _input_links(node).get('text')
    if linked in links and links[linked] in nodes:
        source = _widgets(nodes[links[linked]])
        if source and isinstance(source[0], str):
            return source[0]
    widgets = _widgets(node)
    if widgets and isinstance(widgets[0], str):
        return widgets[0]
    return _join_distinct(value for value in widgets if isinstance(value, str))


def _widgets(node: dict[str, Any]) -> list[Any]:
    values = node.get('widgets_values')
    if isinstance(values, dict):
        return [values.get('text')]
    return values if isinstance(values, list) else []


def _wf_single_encoder(nodes: _Nodes, links: _Links) -> str:
    negative_links = [link for node in nodes.values() for name, link in _input_links(node).items()
                      if 'negative' in name]
    negative_nodes = {links[link] for link in negative_links if link in links}
    encoders = [key for key, node in nodes.items()
                if _ENCODER_MARKER in str(node.get('type', '')) and key not in negative_nodes]
    if len(encoders) != 1:
        raise _Malformed(f'no sampler path to a text encoder, and {len(encoders)} candidate text encoders')
    return _wf_encoder_text(nodes, links, nodes[encoders[0]])
