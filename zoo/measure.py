"""Speed and cost of a backbone's encoders: parameters, GFLOPs per sample, samples per second.

Used by ``zoo compare`` and ``benchmarks/encode_throughput.py``, so both report the
same quantities in the same way for text, image and multimodal backbones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch


def timed(fn: Callable[[], Any], device: torch.device, seconds: float) -> float:
    """Calls of ``fn`` per second over about ``seconds``, after two warm-up calls."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 3:
        fn()
        runs += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return runs / (time.perf_counter() - started)


def example_inputs(
    model: Any, batch: int, seq_len: int = 128, channels_last: bool = False
) -> dict[str, tuple[str, Any]]:
    """For each encoder of ``model``: (shape note, a ready batch). Text at ``seq_len`` tokens (or the
    model's own limit, if lower: a CLIP text tower's context), images at the model's own input size
    (in channels-last memory format when asked)."""
    device = model.device
    out: dict[str, tuple[str, Any]] = {}
    if model.image_preprocessing is not None:
        size = model.image_preprocessing.size
        pixels = torch.randn(batch, 3, *size, device=device)
        if channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        out["image"] = (f"{size[0]}px", pixels)
    if model.text_preprocessing is not None:
        # a text longer than seq_len tokens, cut by the tokenizer at max_length and here at seq_len
        text = " ".join(["the quick brown fox jumps over the lazy dog"] * (seq_len // 8 + 1))
        tokens = {k: v[:, :seq_len].to(device) for k, v in model.tokenize([text] * batch).items()}
        out["text"] = (f"{tokens['input_ids'].shape[1]} tok", tokens)
    return out


@contextmanager
def _mha_fastpath(enabled: bool):
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def measure_encoders(
    model: Any,
    batch: int = 32,
    seq_len: int = 128,
    seconds: float = 2.0,
    autocast: Any = None,
    channels_last: bool = False,
) -> list[dict[str, Any]]:
    """One row per encoder: input, shape, GFLOPs per sample (torch.utils.flop_counter), samples/s.
    ``channels_last`` feeds images in that memory format (convert the model's weights to it too)."""
    from contextlib import nullcontext

    from torch.utils.flop_counter import FlopCounterMode

    device = model.device
    rows = []
    model.eval()
    for kind, (shape, inputs) in example_inputs(model, batch, seq_len, channels_last).items():
        call = (
            (lambda x=inputs: model.encode_pixels(x)) if kind == "image" else (lambda x=inputs: model.encode_tokens(x))
        )
        with torch.inference_mode(), autocast or nullcontext():
            with FlopCounterMode(display=False) as counter, _mha_fastpath(False):
                call()  # nn.MultiheadAttention's fused inference path is invisible to the counter: count the plain one
            gflops = counter.get_total_flops() / batch / 1e9
            rate = timed(call, device, seconds) * batch
        rows.append({"input": kind, "shape": shape, "gflops_per_sample": gflops, "samples_per_second": rate})
    return rows
