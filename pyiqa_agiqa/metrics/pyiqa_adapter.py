"""The one place where pyiqa is adapted: two methods of pyiqa's ``InferenceModel`` (the class
``pyiqa.create_metric`` returns), wrapped for the plugin's metrics only.

pyiqa 0.1.16 offers a plugin no hook into building or calling a metric, so :func:`install`
wraps, once:

- ``InferenceModel.__init__``: for a plugin metric (its name is in ``AGIQA_METRIC_CONFIGS``) the
  caller's network options go through :func:`~pyiqa_agiqa.metrics.readiness.prepare_options`
  first (``allow_untrained`` taken; an output that needs fine-tuned weights refused without
  them; an exported folder's card read, its network options added);
- ``InferenceModel.forward``: for a plugin metric, :func:`~pyiqa_agiqa.metrics.inputs.plugin_forward`
  (lists of images, paths, PIL images, files' own prompts, low-precision tensors) and
  :func:`~pyiqa_agiqa.metrics.inputs.finite_or_raise` (no NaN / inf score is returned).

For every other metric both wrappers call pyiqa's own method at once with the arguments they
were given: pyiqa's metrics give identical results with the plugin loaded (tested).

The wrappers rely on the two signatures in :data:`WRITTEN_AGAINST`. :func:`check_signatures`
compares them with the installed pyiqa's before anything is wrapped; another signature raises
:class:`PyiqaVersionError` naming both and the pyiqa version, instead of calls that silently go
wrong. docs/development.md ("The one place where pyiqa is adapted") describes the small hook in
pyiqa that would let the plugin drop these wrappers.
"""

from __future__ import annotations

import functools
import inspect

from ..errors import AGIQAError

PYIQA_VERSION = '0.1.16'  # the pyiqa these wrappers were written against
# method of InferenceModel -> the signature the wrapper relies on (str(inspect.signature(...)))
WRITTEN_AGAINST = {
    '__init__': "(self, metric_name, as_loss=False, loss_weight=None, loss_reduction='mean', device=None, seed=123, "
                'check_input_range=True, **kwargs)',
    'forward': '(self, target, ref=None, **kwargs)',
}
_MARK = '_pyiqa_agiqa_adapter'  # set on the wrappers: install() runs once


class PyiqaVersionError(AGIQAError, RuntimeError):
    """The installed pyiqa's InferenceModel is not the one the adapter was written against."""


def _model_class():
    from pyiqa.models.inference_model import InferenceModel

    return InferenceModel


def check_signatures(model_class=None) -> None:
    """Raise PyiqaVersionError unless ``model_class`` (default pyiqa's InferenceModel) has the
    methods of :data:`WRITTEN_AGAINST` with those signatures."""
    import pyiqa

    model_class = model_class or _model_class()
    for name, expected in WRITTEN_AGAINST.items():
        method = getattr(model_class, name, None)
        found = str(inspect.signature(method)) if callable(method) else 'missing'
        if found != expected:
            raise PyiqaVersionError(
                f"pyiqa {getattr(pyiqa, '__version__', '?')}: InferenceModel.{name}{found} is not the "
                f'{name}{expected} of pyiqa {PYIQA_VERSION} that pyiqa-agiqa adapts; install pyiqa=={PYIQA_VERSION} '
                '(pip install "pyiqa==0.1.16") or a pyiqa-agiqa release made for this pyiqa')


def _is_plugin_metric(metric_name) -> bool:
    from ..metric_configs import AGIQA_METRIC_CONFIGS

    return metric_name in AGIQA_METRIC_CONFIGS


def _adapted_init(pyiqa_init):
    model_keywords = set(inspect.signature(pyiqa_init).parameters) - {'self', 'metric_name', 'kwargs'}

    @functools.wraps(pyiqa_init)
    def __init__(self, metric_name, *args, **kwargs):
        if _is_plugin_metric(metric_name):
            from .readiness import prepare_options

            own = {k: v for k, v in kwargs.items() if k in model_keywords}  # as_loss, device, seed ...
            network = prepare_options(metric_name, {k: v for k, v in kwargs.items() if k not in model_keywords})
            kwargs = dict(network, **own)
        pyiqa_init(self, metric_name, *args, **kwargs)
    return __init__


def _adapted_forward(pyiqa_forward):
    @functools.wraps(pyiqa_forward)
    def forward(self, target, ref=None, **kwargs):
        if not _is_plugin_metric(getattr(self, 'metric_name', None)):
            return pyiqa_forward(self, target, ref, **kwargs)
        from .inputs import finite_or_raise, plugin_forward

        return finite_or_raise(self.metric_name, plugin_forward(pyiqa_forward, self, target, ref, **kwargs))
    return forward


def installed(model_class=None) -> bool:
    """Whether :func:`install` has wrapped ``model_class`` (default pyiqa's InferenceModel)."""
    model_class = model_class or _model_class()
    return all(getattr(getattr(model_class, name), _MARK, False) for name in WRITTEN_AGAINST)


def install(model_class=None) -> None:
    """Wrap ``__init__`` and ``forward`` of ``model_class`` (default pyiqa's InferenceModel)
    once, after :func:`check_signatures`; ``import pyiqa_agiqa`` calls it."""
    model_class = model_class or _model_class()
    if installed(model_class):
        return
    check_signatures(model_class)
    for name, adapt in (('__init__', _adapted_init), ('forward', _adapted_forward)):
        wrapper = adapt(getattr(model_class, name))
        setattr(wrapper, _MARK, True)
        setattr(model_class, name, wrapper)
