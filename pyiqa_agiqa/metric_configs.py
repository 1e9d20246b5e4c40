"""The plugin's metric entries for ``pyiqa.create_metric`` / ``pyiqa.list_models``.

pyiqa has no hook for outside metric configs: ``create_metric`` reads the dict object
``pyiqa.default_model_configs.DEFAULT_CONFIGS``, so :func:`register_metric_configs` adds the
entries to that same object, in place. ``import pyiqa_agiqa`` calls it; calling it again
changes nothing. No model is built here.

Naming: ``<method>`` is a method's main score; ``<method>_<output>`` another output of it;
``_l14`` marks the ViT-L/14 variants. Every metric is text-conditioned:
``metric(images, prompt=...)``.

``score_range`` (pyiqa's ``'low, high'``) is the range of the output. Two outputs regress the
raw MOS of the weights' training data (``cianet``, ``clip_agiqa``): their range is the MOS scale
of that data set (:data:`MOS_SCALES`), [0, 5] or [0, 100], and the entry gives the wider one.
"""

from collections import OrderedDict


# The MOS scale of each data set's quality labels, as its release publishes them (docs/datasets.md
# lists the values found): AIGCIQA2023's are MOSz, z-scores rescaled to 0..100 (26.6..72.1 in
# the release); the others are 0..5 (AGIQA-3K 0..4.49, AIGIQA-20K 0.12..4.98, PKU-I2IQA 0.70..4.62).
MOS_SCALES = {'agiqa1k': (0, 5), 'agiqa3k': (0, 5), 'aigiqa20k': (0, 5), 'pku_i2iqa': (0, 5), 'aigciqa2023': (0, 100)}
RAW_MOS_RANGE = '0, 100'  # the widest of MOS_SCALES: weights trained on AIGCIQA2023 (its recipes: no mos_divisor)


def _entry(arch: str, score_range: str, **opts) -> dict:
    return dict(metric_opts=dict(type=arch, **opts), metric_mode='NR', lower_better=False, score_range=score_range)


AGIQA_METRIC_CONFIGS = OrderedDict(
    # IPCE: one score, the image-prompt correspondence read as quality, [0, 5]
    ipce=_entry('IPCE', '0, 5', clip_model='ViT-B-32-quickgelu', clip_pretrained='openai', min_side=512),
    ipce_l14=_entry('IPCE', '0, 5', clip_model='ViT-L-14-quickgelu', clip_pretrained='openai', min_side=768),
    # CIA-Net: visual quality (raw MOS scale of its training data: [0, 5], or [0, 100] for
    # AIGCIQA2023), authenticity [1, 5], consistency 100 * cos(image, prompt) in [-100, 100]
    cianet=_entry('CIANet', RAW_MOS_RANGE, output='quality'),
    cianet_authenticity=_entry('CIANet', '1, 5', output='authenticity'),
    cianet_consistency=_entry('CIANet', '-100, 100', output='consistency'),
    # CLIP-AGIQA: quality on the raw MOS scale of its training data, as CIA-Net's (the prompt is
    # accepted and unused)
    clip_agiqa=_entry('CLIPAGIQA', RAW_MOS_RANGE, output='quality'),
    # DCMPL: quality = softmax(good, bad)[good] in [0, 1]; the auxiliary alignment score likewise
    dcmpl=_entry('DCMPL', '0, 1', output='quality'),
    dcmpl_alignment=_entry('DCMPL', '0, 1', output='alignment'),
)


def register_metric_configs() -> list:
    """Add the plugin's entries to pyiqa's DEFAULT_CONFIGS in place; returns their names.

    A name that pyiqa already defines with another config is an error, never overwritten.
    """
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    for name, cfg in AGIQA_METRIC_CONFIGS.items():
        existing = DEFAULT_CONFIGS.get(name)
        if existing is not None and existing != cfg:
            raise RuntimeError(f"pyiqa already defines a metric named '{name}'; pyiqa_agiqa will not replace it")
        DEFAULT_CONFIGS[name] = cfg
    return list(AGIQA_METRIC_CONFIGS)
