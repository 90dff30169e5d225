#!/usr/bin/env bash
# The README's GPU figures in one go (about 8 minutes on one H200): encode throughput of every built-in
# backbone in fp32 and bf16 (image encoders also channels-last in bf16), the engine against a plain loop
# and Hugging Face Trainer in bf16, EfficientNet-Lite0 training img/s NCHW against channels-last (AMP fp16
# as timm's published figures, and bf16), LoRA against full fine-tuning of a 1B decoder, and the SST-2
# MiniLM fine-tune recipe end to end in bf16 (eager, then a timed stretch with torch.compile).
#
#   benchmarks/gpu_figures.sh OUT_DIR [TEXT_MODEL]
#
# TEXT_MODEL is text/minilm-l6 (default) or a local copy of it (any Hugging Face folder loads). Each step
# runs even if one before it failed; OUT_DIR gets figures.log and the JSON rows.
set -uo pipefail
out=${1:?usage: benchmarks/gpu_figures.sh OUT_DIR [TEXT_MODEL]}
text=${2:-text/minilm-l6}
python=${PYTHON:-python}
mkdir -p "$out"
exec > >(tee -a "$out/figures.log") 2>&1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
extra=()
[[ $text == text/* ]] || extra=(--path "$text")
for precision in fp32 bf16; do
  echo "== encode throughput, $precision"
  $python benchmarks/encode_throughput.py --device cuda --precision "$precision" --batch 256 --seconds 1 \
    "${extra[@]}" --json "$out/encode-$precision.json"
done
echo "== encode throughput, bf16, image encoders channels-last"
$python benchmarks/encode_throughput.py --device cuda --precision bf16 --channels-last --batch 256 --seconds 1 \
  --only 'vision/*' --json "$out/encode-bf16-channels-last.json"
echo "== engine vs a plain loop and HF Trainer, bf16"
$python benchmarks/engine_vs_baselines.py --device cuda --precision bf16 --model "$text" --examples 4096 --rounds 3
for precision in amp-fp16 bf16; do
  echo "== EfficientNet-Lite0 training throughput, NCHW vs channels-last, $precision"
  $python benchmarks/train_throughput.py --device cuda --precision "$precision" --batch 256 \
    --json "$out/train-lite0-$precision.json"
done
echo "== LoRA vs full fine-tuning, Llama-3.2-1B-shaped classifier, bf16"
$python benchmarks/lora_decoder.py --device cuda --json "$out/lora-decoder.json"
runs=$(mktemp -d)
echo "== SST-2 MiniLM fine-tune, whole recipe, bf16"
$python -m zoo run recipes/sst2-minilm-finetune.yaml --set model="$text" --set output_dir="$runs" &&
  cp "$runs/sst2-minilm-finetune/results.json" "$out/sst2-minilm-finetune.json"
echo "== the same, 600 steps with torch.compile"
$python -m zoo run recipes/sst2-minilm-finetune.yaml --set model="$text" --set output_dir="$runs" \
  --set name=compiled --set compile=true --set max_steps=600 --set test_split=null &&
  cp "$runs/compiled/results.json" "$out/sst2-compiled.json"
