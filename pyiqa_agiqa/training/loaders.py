"""Samplers and data loaders for training runs that resume exactly and shard over processes.

- :class:`ResumableSampler`: pyiqa's ``EnlargedSampler`` order (the epoch's permutation,
  enlarged, the process's stride of it) with a start offset, so that a run resumed in the
  middle of an epoch reads the remaining batches of that epoch without decoding the others.
  It yields ``(epoch, index)`` keys.
- :class:`SeededItems`: every item's random draws (augmentation, random views) come from
  RNGs seeded by (manual_seed, epoch, index) and the caller's RNG states are restored
  afterwards. An item is then the same whatever worker or process reads it and whether
  the run was interrupted, and the training process's own RNG stream (dropout, draws
  inside the network) is not touched by data loading.
- :class:`ShardSampler`: the ``rank::world_size`` stride of a validation set, no padding;
  the model gathers the predictions of all processes back into dataset order.
"""

from __future__ import annotations

import math
import random
from typing import Iterator, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one item of one epoch."""
    return int(np.random.SeedSequence([int(seed) % 2**32, int(epoch), int(index)]).generate_state(1)[0])


class SeededItems(Dataset):
    """``dataset`` addressed by ``(epoch, index)`` keys, each item drawn with its own seed."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        epoch, index = key
        seed = item_seed(self.seed, epoch, index)
        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA RNGs stay as they are
        try:
            return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)


class ResumableSampler(Sampler):
    """pyiqa's ``EnlargedSampler`` order, started ``skip`` samples into the epoch.

    Args:
        size: dataset length; num_replicas / rank: processes and this one's index;
        ratio: dataset_enlarge_ratio; shuffle: permute each epoch (seeded by the epoch, as pyiqa).
    """

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0, ratio: int = 1, shuffle: bool = True):
        self.size, self.num_replicas, self.rank, self.shuffle = size, num_replicas, rank, shuffle
        self.num_samples = math.ceil(size * ratio / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Next iteration: epoch ``epoch``, leaving out its first ``skip`` samples (of this rank)."""
        self.epoch, self.skip = int(epoch), int(skip)

    def epoch_indices(self) -> list:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.epoch)
            order = torch.randperm(self.total_size, generator=generator).tolist()
        else:
            order = list(range(self.total_size))
        return [v % self.size for v in order][self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        return iter([(self.epoch, i) for i in self.epoch_indices()[self.skip:]])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...`` of a dataset of ``size`` items (no padding)."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0):
        self.size, self.num_replicas, self.rank = size, num_replicas, rank
        self.shard_indices = list(range(rank, size, num_replicas))

    def __iter__(self):
        return iter(self.shard_indices)

    def __len__(self) -> int:
        return len(self.shard_indices)


def _loader_kwargs(dataset_opt: dict, workers: int) -> dict:
    kwargs = dict(num_workers=workers, pin_memory=bool(dataset_opt.get('pin_memory', False)))
    if workers > 0:
        kwargs['persistent_workers'] = bool(dataset_opt.get('persistent_workers', False))
    return kwargs


def build_train_loader(dataset: Dataset, dataset_opt: dict, opt: dict) -> Tuple[DataLoader, ResumableSampler]:
    """The training loader: pyiqa's batch / worker options (``batch_size_per_gpu``,
    ``num_worker_per_gpu``, multiplied by ``num_gpu`` without ``dist`` as pyiqa does),
    ``drop_last`` as pyiqa, seeded items and a resumable sampler."""
    world, rank = opt['world_size'], opt['rank']
    multiplier = 1 if opt['dist'] else max(1, int(opt.get('num_gpu') or 0))
    sampler = ResumableSampler(len(dataset), world, rank, int(dataset_opt.get('dataset_enlarge_ratio', 1)),
                               bool(dataset_opt.get('use_shuffle', True)))
    # the loader's own generator: creating an epoch's iterator draws from it, not from the global RNG
    generator = torch.Generator().manual_seed(int(opt['manual_seed']))
    loader = DataLoader(SeededItems(dataset, opt['manual_seed']), sampler=sampler, drop_last=True, generator=generator,
                        batch_size=int(dataset_opt['batch_size_per_gpu']) * multiplier,
                        **_loader_kwargs(dataset_opt, int(dataset_opt.get('num_worker_per_gpu', 0)) * multiplier))
    return loader, sampler


def build_eval_loader(dataset: Dataset, dataset_opt: dict, opt: dict) -> DataLoader:
    """A validation / test loader over this process's shard (the whole set in one process)."""
    sampler = ShardSampler(len(dataset), opt.get('world_size', 1), opt.get('rank', 0))
    return DataLoader(dataset, sampler=sampler, batch_size=int(dataset_opt.get('batch_size_per_gpu', 1)),
                      generator=torch.Generator().manual_seed(0),
                      **_loader_kwargs(dataset_opt, int(dataset_opt.get('num_worker_per_gpu', 0))))
