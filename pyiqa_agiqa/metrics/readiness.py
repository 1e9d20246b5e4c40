"""A metric scores only when the weights its output needs are there.

Plain CLIP weights (open_clip's ``openai`` tag, or a local CLIP file) make IPCE,
``cianet_consistency`` and ``cianet_authenticity`` meaningful (zero-shot CLIP similarities).
The outputs that an architecture lists in ``requires_fine_tuned`` come from parts that CLIP
does not provide: CIA-Net's quality (the CIA layer and its head), CLIP-AGIQA (learned context
vectors and head), DCMPL's quality and alignment (learned prompts, MPA, adapter). Created
from plain CLIP weights, those parts are freshly initialised and their scores mean nothing
(the ``cianet`` metric returned 0.0 for every image). So :func:`check_weights` refuses such a
metric with :class:`~pyiqa_agiqa.errors.WeightsRequiredError` unless:

- fine-tuned weights are given (``weights=SPEC`` / ``pretrained_model_path``; an exported
  folder's card must also list the output as trained, see ``weights.card.check_card``);
- ``pretrained=False``: explicit random weights (tests, shapes, speed);
- ``allow_untrained=True``: a deliberate untrained head (e.g. to look at the architecture with
  real CLIP towers), never the default.

The check runs before anything is built or downloaded, for ``pyiqa.create_metric`` (through
:func:`install`), the command line and the Ray engine. Training builds networks directly
(``build_network``) and is not affected: it starts from plain CLIP weights by design.
"""

from __future__ import annotations

from typing import Mapping, Optional

from ..errors import WeightsRequiredError

ALLOW_UNTRAINED = 'allow_untrained'
_INSTALLED = '_pyiqa_agiqa_readiness'
# how to get fine-tuned weights per architecture: (option file of the published recipe,
# the command converting the authors' checkpoint, or None where no converter exists)
ROUTES = {
    'CIANet': ('options/cianet_agiqa3k.yml',
               'pyiqa-agiqa convert-reference --from cianet-ref quality_best_ckpt.pt -o weights/cianet_ref'),
    'CLIPAGIQA': ('options/clip_agiqa_agiqa3k.yml', None),
    'DCMPL': ('options/dcmpl_agiqa3k.yml',
              'pyiqa-agiqa convert-reference --from dcmpl-ref RUN_tar_best.pth RUN_aux_best.pth -o weights/dcmpl_base, '
              "the base's prompts, used with mpa=False adapter=False"),
}


def needs_fine_tuned(architecture, options: Mapping) -> Optional[str]:
    """The output of ``architecture`` (a class) built with ``options`` if it comes from parts
    that plain CLIP weights do not provide, else None."""
    output = options.get('output') or tuple(getattr(architecture, 'output_names', ('score',)))[0]
    return output if output in tuple(getattr(architecture, 'requires_fine_tuned', ())) else None


def refusal(metric: str, architecture: str, output: str) -> str:
    """The one-line message naming the three ways to get weights."""
    option_file, convert = ROUTES.get(architecture, ('an option file of options/', None))
    experiment = option_file.rsplit('/', 1)[-1].rsplit('.', 1)[0]
    convert = (f"convert the authors' checkpoint ({convert})" if convert
               else "convert the authors' checkpoint (none is published for this method)")
    return (f"{metric}: the {output} output of {architecture} comes from trained parts that plain CLIP weights do "
            f'not provide, and no fine-tuned weights were given, so its scores would mean nothing. Get weights '
            f'one of three ways: train and export them (pyiqa-agiqa train -opt {option_file}, then pyiqa-agiqa '
            f'export experiments/{experiment} -o weights/{experiment}); {convert}; or a named or '
            f'hf://org/repo@revision/path entry. Pass them as weights=SPEC (--weights SPEC). pretrained=False '
            f'(--random-weights) builds explicit random weights; allow_untrained=True (--allow-untrained) scores '
            'with the untrained parts anyway.')


def check_weights(metric: str, options: Mapping, allow_untrained: bool = False) -> None:
    """Raise WeightsRequiredError if the plugin metric ``metric`` created with ``options``
    (its config's network options updated with the caller's) would score with untrained parts."""
    from pyiqa.utils.registry import ARCH_REGISTRY

    import pyiqa_agiqa.archs  # noqa: F401  (registers the architectures)

    if allow_untrained or options.get('pretrained', True) is False:
        return
    if options.get('weights') or options.get('pretrained_model_path'):
        return
    architecture = ARCH_REGISTRY.get(options['type'])
    output = needs_fine_tuned(architecture, options)
    if output is not None:
        raise WeightsRequiredError(refusal(metric, options['type'], output))


def metric_options(metric: str, overrides: Optional[Mapping] = None) -> dict:
    """The network options ``pyiqa.create_metric(metric, **overrides)`` builds with."""
    from ..metric_configs import AGIQA_METRIC_CONFIGS

    return dict(AGIQA_METRIC_CONFIGS[metric]['metric_opts'], **dict(overrides or {}))


def _init(original):
    def __init__(self, metric_name, *args, **kwargs):
        from ..metric_configs import AGIQA_METRIC_CONFIGS

        allow = bool(kwargs.pop(ALLOW_UNTRAINED, False))
        if metric_name in AGIQA_METRIC_CONFIGS:
            known = ('as_loss', 'loss_weight', 'loss_reduction', 'device', 'seed', 'check_input_range')
            check_weights(metric_name, metric_options(metric_name, {k: v for k, v in kwargs.items()
                                                                    if k not in known}), allow)
        original(self, metric_name, *args, **kwargs)
    __init__.__doc__ = original.__doc__
    return __init__


def install() -> None:
    """Make pyiqa's InferenceModel refuse plugin metrics without the weights they need (and
    take ``allow_untrained``); idempotent, ``import pyiqa_agiqa`` calls it."""
    from pyiqa.models.inference_model import InferenceModel

    if getattr(InferenceModel.__init__, _INSTALLED, False):
        return
    wrapped = _init(InferenceModel.__init__)
    setattr(wrapped, _INSTALLED, True)
    InferenceModel.__init__ = wrapped
