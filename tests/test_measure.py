"""GFLOPs per sample are counted on the computation that runs, whatever fused path a library takes."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

import zoo
from zoo.measure import example_inputs, measure_encoders


def test_attention_projections_are_counted_in_inference_mode():
    # open_clip's image tower is nn.MultiheadAttention: in eval mode under no_grad torch runs its fused
    # fast path, which the flop counter cannot see; in training mode it runs (and counts) the plain one.
    model = zoo.load("clip/openclip-tiny")
    _, images = example_inputs(model, batch=2)["image"]
    model.train()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.encode_pixels(images)
    expected = counter.get_total_flops() / 2 / 1e9
    row = next(r for r in measure_encoders(model, batch=2, seconds=0.05) if r["input"] == "image")
    assert row["gflops_per_sample"] == expected > 0
    assert torch.backends.mha.get_fastpath_enabled()  # left as it was
