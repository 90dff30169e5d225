"""``batch_size: auto``: the search over micro-batches, a real trial on a model that runs out of memory
above a size (an out-of-memory error raised by a forward hook), the recipe key, and a CPU run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.engine import prepare, run
from zoo.engine.batch_size import is_out_of_memory, micro_batch, search
from zoo.engine.distributed import Context
from zoo.engine.evaluation import TrainingError
from zoo.engine.loop import autocast_for
from zoo.recipes import RecipeError, validate


def limit(largest: int, seen: list[int] | None = None):
    def fits(size: int) -> bool:
        if seen is not None:
            seen.append(size)
        return size <= largest

    return fits


def test_search_doubles_while_it_fits_and_halves_while_it_does_not():
    assert search(limit(20), 64, 4) == (
        16,
        [{"micro_batch": s, "fits": s <= 20} for s in (4, 8, 16, 32)],
    )
    assert search(limit(5), 64, 32)[0] == 4  # 32, 16, 8 fail; 4 fits
    assert search(limit(100), 64, 8)[0] == 64  # never more than the global batch
    seen: list[int] = []
    assert search(limit(30, seen), 48, 4)[0] == 24
    assert seen == [4, 8, 16, 48, 24]  # only divisors of 48; between 16 (fits) and 48 (does not): 24
    seen.clear()
    assert search(limit(7, seen), 48, 48)[0] == 6
    assert seen == [48, 24, 12, 6, 8]  # halving down to 6, then 8 (between 6 and 12) does not fit
    assert search(limit(10), 48, 3)[0] == 8  # 3, 6 fit, 12 does not, 8 does


def test_search_stops_at_one_with_a_clear_error():
    with pytest.raises(TrainingError, match="micro-batch of 1 does not fit"):
        search(limit(0), 16, 4)


def test_out_of_memory_is_recognised_by_type_and_by_cuda_messages():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("CUDA out of memory"))


def recipe_values(tmp_path: Path, **extra) -> dict:
    return {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "train_limit": 64,
        "eval_limit": 32,
        "epochs": 1,
        "lr": 1e-2,
        "output_dir": str(tmp_path),
        **extra,
    }


def test_trials_on_a_model_that_runs_out_of_memory_above_a_size_find_it_and_leave_no_trace(tmp_path):
    recipe = validate(recipe_values(tmp_path, batch_size="auto:64", grad_accum=8), "test")
    task = prepare(recipe)
    model = task.model()
    sizes: list[int] = []

    def out_of_memory_above_12(module, args):  # what the CUDA allocator raises when a batch is too large
        sizes.append(len(args[0]))
        if len(args[0]) > 12:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (injected above 12)")

    model.register_forward_pre_hook(out_of_memory_above_12)
    model.train()
    weights = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm statistics too
    randomness = torch.get_rng_state()
    autocast, _ = autocast_for("fp32", torch.device("cpu"))
    train_set = task.examples("train", train=True)
    size, record = micro_batch(task, model, recipe, Context(), autocast, tmp_path, train_set, search_on=("cpu",))
    assert size == 8 and record["grad_accum"] == 8 and record["global_batch"] == 64
    assert sizes == [8, 16]  # from the recipe's 64 / 8: 8 fits, 16 does not
    assert [t["fits"] for t in record["search"]] == [True, False]
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), randomness)
    assert json.loads((tmp_path / "batch_size.json").read_text())["micro_batch"] == 8
    # a resumed run keeps the micro-batch it started with, without trying again
    sizes.clear()
    assert micro_batch(task, model, recipe, Context(), autocast, tmp_path, train_set, resume=True)[0] == 8
    assert sizes == []


def test_an_error_that_is_not_out_of_memory_is_not_swallowed(tmp_path):
    recipe = validate(recipe_values(tmp_path, batch_size="auto:16"), "test")
    task = prepare(recipe)
    model = task.model()
    model.register_forward_pre_hook(lambda module, args: (_ for _ in ()).throw(RuntimeError("shapes do not match")))
    autocast, _ = autocast_for("fp32", torch.device("cpu"))
    with pytest.raises(RuntimeError, match="shapes do not match"):
        examples = task.examples("train", True)
        micro_batch(task, model, recipe, Context(), autocast, tmp_path, examples, search_on=("cpu",))


def test_batch_size_auto_recipe_values():
    base = {"model": "m", "task": "t", "data": "d"}
    assert validate({**base, "batch_size": "auto"}, "r").global_batch == 32
    assert validate({**base, "batch_size": "auto:96", "grad_accum": 3}, "r").global_batch == 96
    assert validate({**base, "batch_size": 24}, "r").global_batch == 24
    assert not validate({**base, "batch_size": 24}, "r").auto_batch
    for bad in ("auto:0", "max", "auto:-8", "auto:x"):
        with pytest.raises(RecipeError, match="batch_size must be a whole number, auto or auto:N"):
            validate({**base, "batch_size": bad}, "r")
    with pytest.raises(RecipeError, match=r"batch_size \(30\) must be a positive multiple of grad_accum \(4\)"):
        validate({**base, "batch_size": "auto:30", "grad_accum": 4}, "r")


def test_on_the_cpu_auto_keeps_the_recipe_batch_says_so_and_trains_as_the_number_would(tmp_path):
    numbered = run(validate(recipe_values(tmp_path, name="n", batch_size=16, grad_accum=2), "test"))
    auto = run(validate(recipe_values(tmp_path, name="a", batch_size="auto:16", grad_accum=2), "test"))
    batch = auto["train"]["batch"]
    assert batch["micro_batch"] == 8 and batch["grad_accum"] == 2 and batch["global_batch"] == 16
    assert "cpu gives no out-of-memory signal" in batch["search"]
    assert numbered["train"]["batch"] == {"micro_batch": 8, "grad_accum": 2}
    assert auto["metrics"] == numbered["metrics"]
