"""Shared pieces of the compare tests: a metric that really measures blur, generated models."""

import torch
import torch.nn.functional as F

LAPLACIAN = torch.tensor([[0., 1., 0.], [1., -4., 1.], [0., 1., 0.]]).view(1, 1, 3, 3)


class Sharpness:
    """The variance of the Laplacian of the grey image (higher: sharper; a standard focus measure),
    called as the scoring engine calls a metric: (B, 3, H, W) in [0, 1] -> (B,)."""
    device = torch.device('cpu')
    lower_better = False

    def __call__(self, images, prompt=None):
        grey = images.mean(dim=1, keepdim=True)
        return F.conv2d(grey, LAPLACIAN).flatten(1).var(dim=1) * 100


class Brightness:
    """The mean grey level, lower taken as better here (to exercise a lower-is-better metric)."""
    device = torch.device('cpu')
    lower_better = True

    def __call__(self, images, prompt=None):
        return images.mean(dim=(1, 2, 3))


def sharpness_metrics():
    return {'sharpness': Sharpness()}


def two_metrics():
    return {'sharpness': Sharpness(), 'brightness': Brightness()}
