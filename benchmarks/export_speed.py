"""`encode_*` through torch against the same backbone's ONNX export through onnxruntime, side by side.

Each backbone is exported with ``zoo.export(name, "onnx", ...)`` (which checks parity), then torch
(``encode_pixels`` / ``encode_tokens`` on tensors, eval, inference mode) and onnxruntime (the
exported graph, default CPU provider, intra-op threads = torch's threads) run the same inputs,
interleaved round after round so machine noise hits both alike; the median samples/s of each and
their ratio are reported. Text at ``--seq-len`` tokens, images at the model's input size.

    python benchmarks/export_speed.py [--only text/minilm-l6 vision/efficientnet-lite0] [--batch 1 32]
                                      [--seq-len 128] [--rounds 5] [--seconds 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

import zoo
from zoo.exporting import parts_of
from zoo.exporting.graphs import onnx_session
from zoo.measure import example_inputs, timed


def compare(name: str, batches: list[int], seq_len: int, rounds: int, seconds: float, folder: Path) -> list[dict]:
    """Rows of torch and onnxruntime samples/s for each tower of ``name`` and each batch size."""
    model = zoo.load(name).eval()
    zoo.export(model, "onnx", folder)
    sessions = {
        part: onnx_session(folder / f"{part}.onnx", threads=torch.get_num_threads()) for part in parts_of(model)
    }
    rows = []
    for batch in batches:
        for part, (shape, inputs) in example_inputs(model, batch, seq_len).items():
            session = sessions[part]
            tensors = {"pixels": inputs} if part == "image" else inputs
            feeds = {i.name: tensors[i.name].cpu().numpy() for i in session.get_inputs()}
            encode = model.encode_pixels if part == "image" else model.encode_tokens

            def with_torch(encode=encode, inputs=inputs):
                with torch.inference_mode():
                    return encode(inputs)

            def with_onnxruntime(session=session, feeds=feeds):
                return session.run(None, feeds)[0]

            difference = float((with_torch() - torch.from_numpy(with_onnxruntime())).abs().max())
            rates: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
            for _ in range(rounds):
                rates["torch"].append(timed(with_torch, torch.device("cpu"), seconds) * batch)
                rates["onnxruntime"].append(timed(with_onnxruntime, torch.device("cpu"), seconds) * batch)
            torch_rate, ort_rate = (statistics.median(rates[k]) for k in ("torch", "onnxruntime"))
            row = {
                "backbone": name,
                "input": f"{part} {shape}",
                "batch": batch,
                "torch_samples_per_second": torch_rate,
                "onnxruntime_samples_per_second": ort_rate,
                "ratio": ort_rate / torch_rate,
                "max_abs_diff": difference,
            }
            rows.append(row)
            print(
                f"{name:26} {row['input']:12} {batch:5} {torch_rate:12.1f} {ort_rate:12.1f} "
                f"{row['ratio']:7.2f}x {difference:10.1e}",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["text/minilm-l6", "vision/efficientnet-lite0"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per text sample")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per runtime")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing window per round")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    import onnxruntime

    print(
        f"cpu ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, fp32, text at {args.seq_len} tokens; "
        f"median of {args.rounds} interleaved rounds"
    )
    print(
        f"{'backbone':26} {'input':12} {'batch':>5} {'torch smp/s':>12} {'ort smp/s':>12} "
        f"{'ort/torch':>8} {'max|diff|':>10}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for index, name in enumerate(args.only):
            rows += compare(name, args.batch, args.seq_len, args.rounds, args.seconds, Path(directory) / str(index))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
