"""Multi-process data-parallel training: torchrun, DistributedDataParallel, gloo or NCCL.

Under `torchrun --nproc_per_node N script.py` (or any launcher that sets
`WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), `fit`
joins the process group (NCCL on GPU, each process on `cuda:LOCAL_RANK`;
gloo on CPU) and wraps the model in `DistributedDataParallel`. The script
does not change.

`batch_size` stays the *global* batch, as with Keras' distribution
strategies: every process reads the same batches in the same order (same
seed) and keeps its own slice of each (rows `rank::world_size`), which acts
as a distributed sampler. Each process divides its summed loss by the
element count of the whole global batch (one all-reduce), so the averaged
gradients are those of single-process training on the same global batch.
Metrics are summed across processes. Only rank 0 prints, logs and writes
checkpoints.

    $ torchrun --nproc_per_node 2 train.py        # train.py calls model.fit(...) as usual
    >>> model.fit(x, y, batch_size=64, distributed=True)   # insists on a launcher
"""

from __future__ import annotations

import atexit
import inspect
import os
from dataclasses import dataclass
from typing import Callable, Mapping, TextIO

import torch
import torch.distributed as dist

__all__ = ["ProcessGroup", "current", "is_main_process", "launched_by_torchrun", "print_main", "setup"]


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the run: `rank` of `world_size`, and `local_rank` on its machine.

        >>> group = current(); group.is_main
        True
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over all processes, in place; the identity in a single process."""
        if not self.is_distributed:
            return tensor
        if dist.get_backend() == "nccl" and tensor.device.type != "cuda":  # NCCL reduces GPU tensors only
            on_gpu = tensor.to(torch.device("cuda", self.local_rank))
            dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
            return tensor.copy_(on_gpu)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_int(self, value: int) -> int:
        """Rank 0's `value` on every process."""
        if not self.is_distributed:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return int(holder[0])

    def barrier(self) -> None:
        """Wait until every process gets here (e.g. until rank 0 has written its files)."""
        if self.is_distributed:
            dist.barrier()

    def shard(self, size: int) -> slice:
        """This process's rows of a global batch of `size` rows."""
        return slice(self.rank, size, self.world_size)


def launched_by_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a launcher started several processes (WORLD_SIZE > 1 with RANK set)."""
    return "RANK" in environ and int(environ.get("WORLD_SIZE", "1")) > 1


def current() -> ProcessGroup:
    """The process group this process belongs to (a single process when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return ProcessGroup(dist.get_rank(), dist.get_world_size(), local_rank)
    return ProcessGroup()


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the one that writes files and prints.

    Before `fit` joins the process group, a launcher's `RANK` decides, so
    that what an application prints or writes before training happens once.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return not launched_by_torchrun(os.environ) or int(os.environ["RANK"]) == 0


def print_main(*values: object, file: TextIO | None = None, flush: bool = False) -> None:
    """`print` on the main process only: a report or progress line of a distributed run appears once."""
    if is_main_process():
        print(*values, file=file, flush=flush)


def on_main_then_wait(write: Callable[[], object]) -> None:
    """Run `write` on the main process only, then wait there until it has run everywhere.

    A distributed run's files are written once, and complete before any process
    reads them or returns (each application's end-of-run files).
    """
    if is_main_process():
        write()
    current().barrier()


def setup(distributed: bool | None, device: torch.device) -> tuple[ProcessGroup, torch.device]:
    """Join the process group when asked (`True`) or launched (`None`); return it and the device to use.

    On CUDA each process gets `cuda:LOCAL_RANK` and NCCL; on CPU, gloo.
    """
    if distributed is False:
        return ProcessGroup(), device
    if not (dist.is_available() and dist.is_initialized()):
        if not launched_by_torchrun():
            if distributed:
                raise RuntimeError(
                    "fit(distributed=True) needs a launcher that starts the processes and sets "
                    "WORLD_SIZE, RANK and LOCAL_RANK: run `torchrun --nproc_per_node N your_script.py`. "
                    "To train in this single process, leave distributed unset."
                )
            return ProcessGroup(), device
        _join(device)
    group = current()
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    return group, device


def _join(device: torch.device) -> None:
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    atexit.register(_leave)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, group: ProcessGroup, device: torch.device) -> torch.nn.Module:
    """`DistributedDataParallel(model)` in a distributed run, else `model` itself.

    Buffers are not broadcast: a stateful layer's carried state belongs to
    the streams of its own process.
    """
    if not group.is_distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    parallel = torch.nn.parallel.DistributedDataParallel
    # torch 2.13 renamed the option; both keep buffers from being re-broadcast at every forward.
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(parallel).parameters
               else {"broadcast_buffers": False})
    return parallel(model, device_ids=device_ids, **no_sync)
