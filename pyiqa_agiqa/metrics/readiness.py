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

The check runs before anything is built or downloaded, for ``pyiqa.create_metric`` (the adapter
of pyiqa's ``InferenceModel.__init__``, :mod:`~pyiqa_agiqa.metrics.pyiqa_adapter`, calls
:func:`prepare_options`), the command line and the Ray engine.

Weights given as an exported folder (local, named or ``hf://``) build the network they were
trained with: :func:`prepare_options` reads the folder's card and adds every network option it
records; an option the caller gave with another value is a one-line
:class:`~pyiqa_agiqa.weights.card.CardMismatchError` naming both values. Training builds networks directly
(``build_network``) and is not affected: it starts from plain CLIP weights by design.
"""

from __future__ import annotations

from typing import Mapping, Optional

from ..errors import WeightsRequiredError

ALLOW_UNTRAINED = 'allow_untrained'
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


def prepare_options(metric: str, given: Mapping) -> dict:
    """The network options pyiqa builds the plugin metric ``metric`` with, from the caller's
    ``given`` ones (``create_metric``'s keyword arguments that are not InferenceModel's own):
    ``allow_untrained`` taken out, the weights the output needs checked (:func:`check_weights`),
    and, for fine-tuned weights in an exported folder, the card's network options added
    (:func:`with_card_options`). Idempotent: its result gives itself back."""
    options = dict(given)
    check_weights(metric, metric_options(metric, options), bool(options.pop(ALLOW_UNTRAINED, False)))
    return with_card_options(metric, options)


def with_card_options(metric: str, options: Mapping) -> dict:
    """``options`` of the plugin metric ``metric`` with, when their fine-tuned weights
    (``weights`` / ``pretrained_model_path``) are an exported folder, the folder fetched once
    (a named or ``hf://`` entry becomes the local folder), its card's architecture checked and
    every network option the card records added; an option of ``options`` that contradicts the
    card raises CardMismatchError. Other options (a bare weights file, random weights) are
    returned as they are."""
    from pyiqa.utils.registry import ARCH_REGISTRY

    import pyiqa_agiqa.archs  # noqa: F401  (registers the architectures)

    from ..weights.card import check_architecture, is_exported_folder, network_from_card, read_card
    from ..weights.specs import resolve

    options = dict(options)
    keys = [k for k in ('weights', 'pretrained_model_path') if options.get(k)]
    if not keys or options.get('pretrained', True) is False:
        return options
    spec = str(options[keys[0]])
    folder = resolve(options[keys[0]])
    if not is_exported_folder(folder):
        return options
    card = read_card(folder)
    architecture = ARCH_REGISTRY.get(metric_options(metric)['type'])
    check_architecture(card, architecture.__name__, spec)
    network = network_from_card(card, architecture.network_options, options, spec)
    return dict(options, **network, **{k: folder for k in keys})
