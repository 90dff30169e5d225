"""Data parallel training when started by ``torchrun`` (gloo on CPU, NCCL on GPUs): replicas (DDP), or
the model sharded across the processes (FSDP2's ``fully_shard``), and what checkpoints and saving need
of a sharded model."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from zoo.errors import RecipeError


@dataclass
class Context:
    """Where this process stands: its rank, the world size, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` from every rank, in rank order (just ``[obj]`` in one process)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, *values: float) -> list[float]:
        """Each value summed over all ranks."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def setup(device: str = "auto") -> Context:
    """Join the process group ``torchrun`` describes (if any) and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        index = int(device.partition(":")[2]) if device.startswith("cuda:") and world_size == 1 else local_rank
        torch.cuda.set_device(index)
        chosen = torch.device("cuda", index)
    elif device == "mps":
        chosen = torch.device("mps")
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Context(rank, world_size, local_rank, chosen)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard_model(model: nn.Module, backbone: Any, recipe: Any, ctx: Context, bf16: bool) -> Sharded | None:
    """``model`` sharded when the recipe's ``strategy`` is fsdp under torchrun (bf16 compute when
    ``bf16`` on a GPU), its units the backbone's ``blocks()``; None otherwise (DDP, or one process)."""
    if recipe.strategy != "fsdp":
        return None
    if not ctx.distributed:
        if ctx.is_main:
            warnings.warn("strategy: fsdp shards only under torchrun; one process trains the whole model", stacklevel=3)
        return None
    if recipe.ema_decay is not None:
        raise RecipeError("strategy: fsdp keeps no moving average of sharded weights; drop ema_decay or use ddp")
    return Sharded(model, backbone.blocks(), bf16 and ctx.device.type == "cuda")


def all_finite(model: nn.Module, ctx: Context) -> bool:
    """Whether every weight is finite; for a sharded model, every process's part (all must call it)."""
    finite = all(bool(torch.isfinite(local_tensor(p)).all()) for p in model.parameters())
    return ctx.sum(float(not finite))[0] == 0 if is_sharded(model) else finite


@contextmanager
def whole_root(model: nn.Module) -> Iterator[None]:
    """For a sharded model, the root unit's parameters gathered whole for the block, so that a task can
    call the backbone's methods directly (as whole-split evaluations do) rather than the model's
    forward, whose hooks would gather them; the blocks' units still gather themselves. Every process
    must run the same calls inside it."""
    root = getattr(model, "_orig_mod", model)
    if not is_sharded(model):
        yield
        return
    root.unshard()  # type: ignore[operator]
    try:
        yield
    finally:
        root.reshard()  # type: ignore[operator]


def is_sharded(model: nn.Module) -> bool:
    """True for a model FSDP sharded (every process must then run each forward pass)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(getattr(model, "_orig_mod", model), FSDPModule)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a sharded tensor (a DTensor's local shard); a plain tensor as it is."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if callable(to_local) else tensor


class Sharded:
    """``model`` sharded with FSDP2: one unit per block (the backbone's ``blocks()`` inside the model),
    then the root; bf16 compute with fp32 reductions when ``bf16`` (GPUs). A weightless copy of the
    model (on the meta device) is kept to take the full weights at the end: what the run saves."""

    def __init__(self, model: nn.Module, blocks: list[nn.Module], bf16: bool) -> None:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        self.model, self.bf16 = model, bf16
        # the copy shares no storage: its parameters are meta tensors (buffers, small, are copied)
        memo: dict[int, Any] = {
            id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()
        }
        self.shadow = copy.deepcopy(model, memo)
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
        options: dict[str, Any] = {"mp_policy": policy} if policy is not None else {}
        inside = {id(module) for module in model.modules()}
        self.units = [b for b in blocks if id(b) in inside and any(True for _ in b.parameters())]
        for block in self.units:
            fully_shard(block, **options)
        fully_shard(model, **options)

    def local_parameters(self) -> int:
        """How many parameter values this process holds."""
        return sum(local_tensor(p).numel() for p in self.model.parameters())

    def sync_gradients(self, enabled: bool) -> None:
        """Reduce-scatter gradients after this backward (False: accumulate them locally, as DDP's no_sync)."""
        from torch.distributed.fsdp import FSDPModule

        if isinstance(self.model, FSDPModule):
            self.model.set_requires_gradient_sync(enabled)

    def full_weights(self) -> dict[str, Any]:
        """The unsharded state dict on rank 0 (on the CPU), empty on the others; every process must call it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_full_weights(self, state: dict[str, Any]) -> None:
        """Load an unsharded state dict (the same on every process) into the shards."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(self.model, state, options=StateDictOptions(full_state_dict=True))

    def describe(self, ctx: Context) -> dict[str, Any]:
        """What results.json records: the units, and how many parameter values each process held."""
        return {
            "strategy": "fsdp",
            "units": len(self.units) + 1,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "local_parameters": ctx.gather(self.local_parameters()),
            "mixed_precision": "bf16" if self.bf16 else None,
        }

    def kept(self) -> nn.Module:
        """The copy with the full trained weights (on rank 0; every process must call it)."""
        full = self.full_weights()
        if full:
            self.shadow.load_state_dict(full, assign=True)
        return self.shadow
