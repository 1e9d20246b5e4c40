"""The plugin's metrics built together: every name and option checked (and the refusal of
untrained heads, :mod:`pyiqa_agiqa.metrics.readiness`) before the first network is built."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch


from ..errors import OptionError


# ----- metrics -----
def plugin_metric_names() -> List[str]:
    from ..metric_configs import AGIQA_METRIC_CONFIGS

    return list(AGIQA_METRIC_CONFIGS)


def metric_network(name: str):
    """The architecture class of the plugin metric ``name`` (OptionError for unknown names)."""
    import difflib

    import pyiqa

    from ..metric_configs import AGIQA_METRIC_CONFIGS
    from ..archs import network_class

    if name not in AGIQA_METRIC_CONFIGS:
        if name in pyiqa.list_models():
            raise OptionError(f"'{name}' is one of pyiqa's own metrics, which take no prompt: score with pyiqa's "
                              f"command (pyiqa {name} -t IMAGES); this command scores {plugin_metric_names()}")
        close = difflib.get_close_matches(name, plugin_metric_names(), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise OptionError(f"unknown metric '{name}'{hint}; the plugin's metrics: {plugin_metric_names()}")
    return network_class({'network': AGIQA_METRIC_CONFIGS[name]['metric_opts']})


def options_per_metric(names: Sequence[str], options: dict) -> Dict[str, dict]:
    """Each network option goes to the metrics whose network takes it; an option that no
    metric takes is an error naming the known ones."""
    from ..options import constructor_keys, unknown_keys_error

    known = {name: constructor_keys(metric_network(name)) for name in names}
    unused = [k for k in options if not any(keys is None or k in keys for keys in known.values())]
    if unused:
        every = set().union(*[keys or set() for keys in known.values()])
        raise unknown_keys_error(unused, every, f'--set (networks of {list(names)})')
    return {name: {k: v for k, v in options.items() if keys is None or k in keys} for name, keys in known.items()}


def metric_requests(names: Sequence[str], options: Optional[dict] = None,
                    weights: Optional[Dict[Optional[str], str]] = None, allow_untrained: bool = False
                    ) -> Dict[str, dict]:
    """{name: create_metric keyword arguments} for the plugin's metric ``names``, checked before
    any model is built: known names, network ``options`` (each goes to the metrics whose network
    takes it), ``weights`` ({metric name or None: SPEC}), the weights each output needs and an
    exported folder's card, whose network options the request takes
    (:func:`pyiqa_agiqa.metrics.readiness.prepare_options`)."""
    from .readiness import prepare_options

    options, weights = dict(options or {}), dict(weights or {})
    unknown = [k for k in weights if k is not None and k not in names]
    if unknown:
        raise OptionError(f'--weights names metric(s) {unknown} that are not scored here ({list(names)})')
    names = list(dict.fromkeys(names))
    requests = {}
    for name, opts in options_per_metric(names, options).items():
        spec = weights.get(name, weights.get(None))
        request = dict(opts, **({'weights': spec} if spec else {}))
        requests[name] = prepare_options(name, dict(request, allow_untrained=allow_untrained))
    return requests


def create_metrics(names: Sequence[str], device=None, options: Optional[dict] = None,
                   weights: Optional[Dict[Optional[str], str]] = None, seed: Optional[int] = 0,
                   compile_mode: Optional[str] = None, allow_untrained: bool = False) -> Dict[str, object]:
    """{name: pyiqa metric} for the plugin's metric ``names`` (checked first, all of them, by
    :func:`metric_requests`: network ``options``, ``weights`` {metric or None: SPEC}, refusal of
    untrained outputs unless ``allow_untrained``). ``seed`` seeds torch before each metric is
    built, so random weights are the same on every run. ``compile_mode`` (e.g. ``'default'``):
    compile the CLIP towers' blocks
    (:func:`pyiqa_agiqa.archs.backbone.compilation.compile_towers`); None runs them eagerly."""
    import pyiqa  # the metric entries are in pyiqa's configs: importing this package added them

    metrics = {}
    for name, request in metric_requests(names, options, weights, allow_untrained).items():
        if seed is not None:
            torch.manual_seed(seed)
        metrics[name] = pyiqa.create_metric(name, device=device, allow_untrained=allow_untrained, **request)
        if compile_mode:
            from ..archs.backbone.compilation import compile_towers

            compile_towers(metrics[name], compile_mode)
    return metrics
