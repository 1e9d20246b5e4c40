"""The plugin's version, and the versions of what made a file (cards, training logs)."""

__version__ = '0.1.0'


def versions() -> dict:
    import open_clip
    import pyiqa
    import torch

    return {'pyiqa_agiqa': __version__, 'pyiqa': pyiqa.__version__, 'torch': torch.__version__,
            'open_clip': open_clip.__version__}
