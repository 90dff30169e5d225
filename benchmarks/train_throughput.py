"""Training throughput of an image backbone, NCHW against channels-last, side by side in one run.

The step is the one timm's ``benchmark.py`` times in its train mode: forward, cross-entropy loss, backward,
one SGD step (momentum 0.9, Nesterov), on a synthetic batch already on the device. The backbone is loaded
through ``zoo.load`` (random weights: speed does not depend on them) with a 1000-class linear head, as the
ImageNet model timm times. Rounds alternate between the two memory formats; the median of each is reported.

    python benchmarks/train_throughput.py [--model vision/efficientnet-lite0] [--batch 256] [--image-size N]
                                          [--precision bf16|fp32|amp-fp16] [--steps 30] [--rounds 3]
                                          [--device cuda|cpu] [--json FILE]

timm's published training figures for EfficientNet-Lite0 with AMP on an RTX 3090 (1,592 img/s NCHW,
2,135 img/s channels-last) are printed beside for reference: another GPU, so compare ratios, not rates.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from contextlib import nullcontext

import torch

import zoo

TIMM_LITE0_RTX3090_AMP = {"nchw": 1592.0, "channels_last": 2135.0}


def build(model_name: str, device: torch.device, channels_last: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The backbone with a 1000-class head, on ``device``, in the asked memory format."""
    backbone = zoo.load(model_name, pretrained=False)
    head = torch.nn.Linear(backbone.embed_dim, 1000)
    backbone.to(device).train()
    head.to(device).train()
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    return backbone, head


def throughput(args: argparse.Namespace, device: torch.device, size: tuple[int, int], channels_last: bool) -> float:
    """Images per second over ``args.steps`` training steps, after ``args.warmup`` untimed ones."""
    backbone, head = build(args.model, device, channels_last)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, nesterov=True)
    dtype = {"bf16": torch.bfloat16, "amp-fp16": torch.float16}.get(args.precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "amp-fp16")
    pixels = torch.randn(args.batch, 3, *size, device=device)
    if channels_last:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (args.batch,), device=device)

    def step() -> None:
        with autocast:
            loss = torch.nn.functional.cross_entropy(head(backbone.encode_pixels(pixels)), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.batch * args.steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vision/efficientnet-lite0", help="an image backbone's registry name")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--image-size", type=int, help="square input size; default: the model's own")
    parser.add_argument("--precision", choices=["bf16", "fp32", "amp-fp16"], default="bf16")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per memory format, interleaved")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as timm's benchmark: pick the fastest kernels per shape
    probe = zoo.load(args.model, pretrained=False)
    if probe.image_preprocessing is None:
        raise SystemExit(f"--model {args.model}: not an image backbone; pass one such as vision/efficientnet-lite0")
    size = (args.image_size, args.image_size) if args.image_size else tuple(probe.image_preprocessing.size)
    del probe
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"device: {device.type} ({name}), torch {torch.__version__}, {args.model}, {args.precision}, "
        f"batch {args.batch}, {size[0]}x{size[1]} px, {args.steps} steps x {args.rounds} rounds"
    )
    rates: dict[str, list[float]] = {"nchw": [], "channels_last": []}
    for _ in range(args.rounds):
        for layout in rates:
            rates[layout].append(throughput(args, device, size, layout == "channels_last"))
    median = {layout: statistics.median(values) for layout, values in rates.items()}
    ratio = median["channels_last"] / median["nchw"]
    timm_ratio = TIMM_LITE0_RTX3090_AMP["channels_last"] / TIMM_LITE0_RTX3090_AMP["nchw"]
    print(f"{'':28} {'NCHW img/s':>12} {'NHWC img/s':>12} {'NHWC / NCHW':>12}")
    print(f"{'this run':28} {median['nchw']:12,.1f} {median['channels_last']:12,.1f} {ratio:11.2f}x")
    print(
        f"{'timm, Lite0, RTX 3090, AMP':28} {TIMM_LITE0_RTX3090_AMP['nchw']:12,.1f} "
        f"{TIMM_LITE0_RTX3090_AMP['channels_last']:12,.1f} {timm_ratio:11.2f}x  (published; another GPU)"
    )
    if args.json:
        row = {
            "model": args.model,
            "device": f"{device.type} ({name})",
            "precision": args.precision,
            "batch": args.batch,
            "image_size": list(size),
            "img_per_s": median,
            "rounds": rates,
            "channels_last_over_nchw": ratio,
            "timm_published_lite0_rtx3090_amp": TIMM_LITE0_RTX3090_AMP,
        }
        with open(args.json, "w") as handle:
            json.dump(row, handle, indent=2)


if __name__ == "__main__":
    main()
