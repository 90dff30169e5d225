"""Which local folders the text family loads: a Hugging Face model folder (``save_pretrained``).

Reads file names and ``config.json`` only; transformers is imported when the model loads.
"""

from __future__ import annotations

from pathlib import Path

import zoo
from zoo import FileError, read_json_file

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def claim_folder(path: Path) -> zoo.PathClaim | None:
    """A folder with a transformers ``config.json`` (one naming a ``model_type``), its weights and a tokenizer."""
    config_file = path / "config.json"
    if not path.is_dir() or not config_file.is_file():
        return None
    config = read_json_file(config_file, {"type": "object"}, "a model's config.json")
    if "model_type" not in config:
        return None  # another library's config.json (timm writes one naming an "architecture")
    tokenizer = [name for name in TOKENIZER if (path / name).is_file()]
    if not tokenizer and (path / "preprocessor_config.json").is_file():
        return None  # an image model's folder: not a text backbone
    if not any((path / name).is_file() for name in WEIGHTS):
        raise FileError(
            f"{path}: a Hugging Face {config['model_type']} folder without weights: expected one of "
            f"{', '.join(WEIGHTS)} beside config.json"
        )
    if not tokenizer:
        raise FileError(
            f"{path}: a Hugging Face {config['model_type']} folder without a tokenizer: expected one of "
            f"{', '.join(TOKENIZER)} (save it with tokenizer.save_pretrained(folder))"
        )
    return zoo.PathClaim(backbone="text/hf-hub", pretrained=str(path))
