"""LoRA against full fine-tuning of a 1B-parameter decoder as a sequence classifier, side by side, bf16.

The decoder is Llama-3.2-1B's published architecture written out as a ``LlamaConfig`` (hidden 2048, 16
layers, 32 heads, 8 key/value heads, MLP 8192, vocabulary 128,256, tied embeddings, RoPE theta 500,000)
at random initialisation: speed and memory do not depend on the weights. It classifies synthetic token
batches (two classes, no padding). Both configurations keep fp32 weights and run forward and backward
under bf16 autocast (as the engine and ``Trainer(bf16=True)`` do), with fused AdamW on a GPU. LoRA is
``peft``'s, rank 16, alpha 32, dropout 0.05, on the attention (q, k, v, o) and MLP (gate, up, down)
projections, the classification head trained in full (``task_type="SEQ_CLS"``).

It uses transformers and peft directly, not ``zoo.load``: zoo loads a Hugging Face folder only with its
tokenizer (the registry's text contract), and Llama-3.2's tokenizer is gated on the hub, so a folder
written from the config alone is refused; token ids are all this benchmark needs.

    python benchmarks/lora_decoder.py [--batch 8] [--seq-len 256] [--steps 10] [--device cuda] [--json FILE]
    python benchmarks/lora_decoder.py --tiny --device cpu      # 2 layers, hidden 128: a check that it runs

prints, for full fine-tuning and LoRA: trainable parameters, peak GPU memory
(``torch.cuda.max_memory_allocated`` over the timed steps, weights and optimizer state included) and
training samples/s, with the LoRA / full ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForSequenceClassification

LLAMA_32_1B = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 8192,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
    "rope_theta": 500000.0,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
}
TINY = {**LLAMA_32_1B, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 32000}  # fmt: skip
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def measure(kind: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Build the classifier on ``device``, train ``args.steps`` timed steps, return its figures."""
    config = LlamaConfig(**(TINY if args.tiny else LLAMA_32_1B), num_labels=2, pad_token_id=0)
    torch.manual_seed(0)
    with device:
        model = LlamaForSequenceClassification(config)
    if kind == "lora":
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=LORA_TARGETS, task_type="SEQ_CLS")
        model = get_peft_model(model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    lr = 1e-4 if kind == "lora" else 1e-5
    optimizer = torch.optim.AdamW(trainable, lr=lr, fused=device.type == "cuda")
    ids = torch.randint(1, config.vocab_size, (args.batch, args.seq_len), device=device)
    labels = torch.randint(0, 2, (args.batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):  # the optimizer state exists after the first step
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    row = {
        "kind": kind,
        "trainable": sum(p.numel() for p in trainable),
        "total": sum(p.numel() for p in model.parameters()),
        "peak_gib": peak,
        "samples_per_s": args.batch * args.steps / seconds,
    }
    return row  # the model and optimizer go with this frame; main collects them before the next


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per sample")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps for each configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="2 layers, hidden 128: a check that runs on a CPU")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    label = "tiny Llama (2 layers, hidden 128)" if args.tiny else "Llama-3.2-1B architecture, random init"
    print(
        f"device: {device.type} ({name}), torch {torch.__version__}, {label}, bf16 autocast, "
        f"batch {args.batch} x {args.seq_len} tokens, {args.steps} timed steps"
    )
    rows = {}
    for kind in ("full", "lora"):
        rows[kind] = measure(kind, args, device)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    full, lora = rows["full"], rows["lora"]

    def gib(value: float | None) -> str:
        return "n/a (cpu)" if value is None else f"{value:.2f}"

    print(f"{'':22} {'full':>16} {'LoRA':>16} {'LoRA / full':>12}")
    print(f"{'parameters':22} {full['total']:16,} {lora['total']:16,}")
    share = f"{lora['trainable']:,} ({lora['trainable'] / lora['total']:.2%})"
    ratio = lora["trainable"] / full["trainable"]
    print(f"{'trainable parameters':22} {full['trainable']:16,} {share:>16} {ratio:12.4f}")
    memory_ratio = "" if full["peak_gib"] is None else f"{lora['peak_gib'] / full['peak_gib']:12.2f}"
    print(f"{'peak GPU memory (GiB)':22} {gib(full['peak_gib']):>16} {gib(lora['peak_gib']):>16} {memory_ratio}")
    speed = lora["samples_per_s"] / full["samples_per_s"]
    print(f"{'train samples/s':22} {full['samples_per_s']:16,.1f} {lora['samples_per_s']:16,.1f} {speed:12.2f}")
    if args.json:
        meta = {"device": f"{device.type} ({name})", "tiny": args.tiny, "batch": args.batch, "seq_len": args.seq_len}
        with open(args.json, "w") as handle:
            json.dump({**meta, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
