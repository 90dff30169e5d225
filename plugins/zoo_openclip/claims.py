"""What the CLIP-style family loads from disk: an open_clip model folder, as open_clip's hub format has
it (``open_clip_config.json`` with ``model_cfg`` and ``preprocess_cfg``, and the weights), and a
checkpoint of an open_clip training run (``RUN/checkpoints/epoch_N.pt``), whose architecture is the
``model:`` line of the run's ``params.txt``.

Reads file names and small text files only; open_clip is imported when the model loads.
"""

from __future__ import annotations

from pathlib import Path

import zoo
from zoo import FileError, read_json_file

CONFIG = "open_clip_config.json"
WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def claim_folder(path: Path) -> zoo.PathClaim | None:
    """A folder with ``open_clip_config.json`` and its weights, or a training run's checkpoint."""
    config_file = path / CONFIG
    if path.is_file():
        return claim_checkpoint(path)
    if not path.is_dir() or not config_file.is_file():
        return None
    config = read_json_file(
        config_file,
        {
            "type": "object",
            "required": ["model_cfg"],
            "properties": {"model_cfg": {"type": "object"}, "preprocess_cfg": {"type": "object"}},
        },
        "an open_clip config",
    )
    model_cfg = config["model_cfg"]
    if "hf_tokenizer_name" in model_cfg.get("text_cfg", {}):
        raise FileError(
            f"{config_file}: its text tower uses a Hugging Face tokenizer "
            f"({model_cfg['text_cfg']['hf_tokenizer_name']}); zoo loads open_clip folders whose "
            "text tower uses open_clip's own tokenizer"
        )
    weights = next((path / name for name in WEIGHTS if (path / name).is_file()), None)
    if weights is None:
        raise FileError(f"{path}: an open_clip folder without weights: expected {' or '.join(WEIGHTS)} beside {CONFIG}")
    # open_clip's keys, whole: the factory maps every one (resize_mode, fill_color, ...) or refuses it
    preprocessing = dict(config.get("preprocess_cfg") or {})
    options = {"arch_config": model_cfg, **({"preprocessing": preprocessing} if preprocessing else {})}
    return zoo.PathClaim(backbone="clip/open-clip", pretrained=str(weights), options=options)


def claim_checkpoint(path: Path) -> zoo.PathClaim | None:
    """``RUN/checkpoints/epoch_*.pt`` of ``python -m open_clip_train.main``; the run's ``params.txt`` names the
    architecture (``model: ViT-B-32``)."""
    params = path.parent.parent / "params.txt"
    if path.parent.name != "checkpoints" or not path.name.startswith("epoch_") or not params.is_file():
        return None
    lines = params.read_text(errors="replace").splitlines()[:500]
    arch = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model:")), None)
    if not arch:
        raise FileError(f"{params}: no 'model: ARCH' line, so the architecture of {path.name} is unknown")
    return zoo.PathClaim(backbone="clip/open-clip", pretrained=str(path), options={"model_id": arch})
