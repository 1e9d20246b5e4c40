"""Process groups for multi-process training, on CPUs (gloo) and GPUs (nccl).

pyiqa's ``init_dist`` hard-codes CUDA and nccl (``torch.cuda.set_device(rank % n_gpus)``), so
it fails on a CPU machine. :func:`init_distributed` reads the launcher's environment
(torchrun: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; Slurm: ``SLURM_PROCID``, ...) and picks
the backend: nccl with one GPU per process (``LOCAL_RANK``) when the run uses GPUs, gloo
otherwise. ``dist_params: {backend: gloo}`` in the option file forces a backend.

The helpers below are no-ops in a single process, so the training code calls them
unconditionally.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from typing import Any, List, Optional

import torch
import torch.distributed as dist

from ..errors import OptionError

LAUNCHERS = ('none', 'pytorch', 'slurm')


def wants_gpu(num_gpu) -> bool:
    """Whether an option file's ``num_gpu`` ('auto', an int, None) means GPUs on this machine."""
    if not torch.cuda.is_available():
        return False
    return num_gpu == 'auto' or (isinstance(num_gpu, int) and num_gpu > 0)


def _slurm_environment(port: Optional[int]) -> None:
    proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    os.environ.setdefault('MASTER_ADDR', subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1'))
    os.environ['MASTER_PORT'] = str(port or os.environ.get('MASTER_PORT', 29500))
    os.environ['WORLD_SIZE'], os.environ['RANK'] = str(ntasks), str(proc_id)
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))


def init_distributed(launcher: str, num_gpu='auto', dist_params: Optional[dict] = None) -> tuple:
    """Join the process group of ``launcher`` ('none', 'pytorch' = torchrun, 'slurm').

    Returns (rank, world_size, backend); ('none' -> (0, 1, None)). Idempotent.
    """
    if launcher not in LAUNCHERS:
        raise OptionError(f"--launcher must be one of {list(LAUNCHERS)}, got '{launcher}'")
    if launcher == 'none':
        return 0, 1, None
    params = dict(dist_params or {})
    if launcher == 'slurm':
        _slurm_environment(params.pop('port', None))
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise OptionError(f'--launcher {launcher} needs the environment of a launcher ({", ".join(missing)} unset): '
                          'start the run with `torchrun --nproc_per_node=N $(which pyiqa-agiqa) train -opt FILE '
                          '--launcher pytorch`, or drop --launcher for one process')
    backend = params.pop('backend', None) or ('nccl' if wants_gpu(num_gpu) else 'gloo')
    if backend == 'nccl':
        if not torch.cuda.is_available():
            raise OptionError('dist_params.backend nccl needs GPUs; this machine has none (use gloo)')
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(params.pop('timeout_s', 1800)))
        dist.init_process_group(backend=backend, timeout=timeout)
    return dist.get_rank(), dist.get_world_size(), backend


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _collective_device() -> torch.device:
    """Where tensors of a collective must live: the current GPU for nccl, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def all_gather_object(obj: Any) -> List[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] in one process)."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of a (float) tensor over the ranks, on every rank (the tensor itself in one process)."""
    if not is_distributed():
        return values
    reduced = values.detach().to(_collective_device(), torch.float64).clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return (reduced / dist.get_world_size()).to(values.device, values.dtype)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
