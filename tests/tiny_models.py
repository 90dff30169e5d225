"""Tiny random-weight model folders, written on the spot by the libraries themselves (no download):
what a user holds after ``save_pretrained`` (transformers), ``save_for_hf`` (timm) or an open_clip
training run, at a size that loads in a blink."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = [
    "the",
    "a",
    "film",
    "movie",
    "story",
    "actor",
    "plot",
    "scene",
    "good",
    "great",
    "fine",
    "lovely",
    "superb",
    "bad",
    "awful",
    "poor",
    "dreadful",
    "grim",
    "is",
    "was",
    "very",
    "not",
    "quite",
    "rather",
    "long",
    "short",
    "funny",
    "sad",
    "dark",
    "bright",
    "slow",
    "quick",
    "warm",
    "cold",
]


def _corpus(lines: int = 400) -> list[str]:
    import random

    generator = random.Random(0)
    return [" ".join(generator.choices(WORDS, k=generator.randint(3, 12))) for _ in range(lines)]


def tokenizer(kind: str):
    """A small BPE tokenizer as a transformers fast tokenizer: BERT-style ('encoder'), GPT-style without a
    pad token ('decoder'), or T5/BART-style with pad and end tokens ('encoder-decoder')."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = {
        "encoder": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        "decoder": ["<|endoftext|>"],
        "encoder-decoder": ["<pad>", "</s>", "<unk>", "<mask>"],
    }[kind]
    model = Tokenizer(models.BPE(unk_token=special[1] if kind != "decoder" else None))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    model.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=120, special_tokens=special))
    if kind == "encoder":
        model.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", model.token_to_id("[CLS]")), ("[SEP]", model.token_to_id("[SEP]"))],
        )
        names = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    elif kind == "decoder":
        names = dict(eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    else:
        model.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", model.token_to_id("</s>"))]
        )
        names = dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>", mask_token="<mask>")
    return PreTrainedTokenizerFast(tokenizer_object=model, **names)


def text_config(name: str, vocab: int, tok, positions: int = 128):
    """The transformers config of a 2-layer, 32-wide model of architecture ``name`` (with ``positions``
    learned positions where it has them)."""
    import transformers as tf

    small = dict(num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, hidden_size=32)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return {
        "gpt2": lambda: (
            tf.GPT2Config(
                n_embd=32,
                n_layer=2,
                n_head=2,
                n_positions=positions,
                vocab_size=vocab,
                bos_token_id=tok.eos_token_id,
                eos_token_id=tok.eos_token_id,
            ),
            tf.GPT2LMHeadModel,
        ),
        "llama": lambda: (
            tf.LlamaConfig(
                **small,
                num_key_value_heads=2,
                max_position_embeddings=128,
                vocab_size=vocab,
                bos_token_id=tok.eos_token_id,
                eos_token_id=tok.eos_token_id,
            ),
            tf.LlamaForCausalLM,
        ),
        "t5": lambda: (
            tf.T5Config(
                d_model=32,
                d_ff=64,
                d_kv=16,
                num_layers=2,
                num_heads=2,
                vocab_size=vocab,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
                decoder_start_token_id=pad,
            ),
            tf.T5ForConditionalGeneration,
        ),
        "bart": lambda: (
            tf.BartConfig(
                d_model=32,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=2,
                decoder_attention_heads=2,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                max_position_embeddings=positions,
                vocab_size=vocab,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
                decoder_start_token_id=tok.eos_token_id,
            ),
            tf.BartForConditionalGeneration,
        ),
        "bert": lambda: (
            tf.BertConfig(**small, max_position_embeddings=positions, vocab_size=vocab, pad_token_id=pad),
            tf.BertForMaskedLM,
        ),
        "roberta": lambda: (
            tf.RobertaConfig(**small, max_position_embeddings=132, vocab_size=vocab, pad_token_id=pad),
            tf.RobertaForMaskedLM,
        ),
        "xlnet": lambda: (
            tf.XLNetConfig(d_model=32, n_layer=2, n_head=2, d_inner=64, vocab_size=vocab, pad_token_id=pad),
            tf.XLNetLMHeadModel,
        ),
        "modernbert": lambda: (
            tf.ModernBertConfig(
                **small, vocab_size=vocab, pad_token_id=pad, max_position_embeddings=128, global_attn_every_n_layers=1
            ),
            tf.ModernBertForMaskedLM,
        ),
    }[name]()


KINDS = {
    "gpt2": "decoder",
    "llama": "decoder",
    "t5": "encoder-decoder",
    "bart": "encoder-decoder",
    "roberta": "encoder",
    "xlnet": "encoder",
    "modernbert": "encoder",
}
# BERT is left out of KINDS (the folders the contract kit runs): the registered text/bert-* backbones cover it there
TOKENIZER_KINDS = {**KINDS, "bert": "encoder"}


def hf_folder(root: Path, name: str, positions: int = 128) -> Path:
    """A Hugging Face model folder (config.json, model.safetensors, tokenizer files) of architecture ``name``."""
    import torch

    folder = root / name
    tok = tokenizer(TOKENIZER_KINDS[name])
    config, model_class = text_config(name, len(tok), tok, positions)
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def timm_folder(root: Path, arch: str) -> Path:
    """A timm model folder as ``timm.models.save_for_hf`` writes it (config.json with the architecture and
    its pretrained_cfg, model.safetensors)."""
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=10)
    folder = root / arch
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def open_clip_folder(root: Path) -> Path:
    """An open_clip model folder as its hub format has it: open_clip_config.json (model_cfg,
    preprocess_cfg) and open_clip_model.safetensors, for a small ViT CLIP."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg)
    folder = root / "open-clip-vit"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    preprocess = {
        "mean": list(open_clip.OPENAI_DATASET_MEAN),
        "std": list(open_clip.OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess}))
    return folder
