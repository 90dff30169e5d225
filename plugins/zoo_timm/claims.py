"""Which local folders the vision family loads: a timm model folder (``timm.models.save_for_hf``).

Reads file names and ``config.json`` only; timm is imported when the model loads.
"""

from __future__ import annotations

from pathlib import Path

import zoo
from zoo import FileError, read_json_file

WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# timm.create_model keywords a config may set: sizes only (never checkpoint_path or other paths)
MODEL_ARGS = ("img_size", "in_chans", "global_pool", "num_classes")  # num_classes: zoo's own option
PREPROCESSING = ("input_size", "mean", "std", "interpolation", "crop_pct")


def claim_folder(path: Path) -> zoo.PathClaim | None:
    """A folder with a timm ``config.json`` (naming an ``architecture``) and its weights."""
    config_file = path / "config.json"
    if not path.is_dir() or not config_file.is_file():
        return None
    config = read_json_file(config_file, {"type": "object"}, "a model's config.json")
    if not isinstance(config.get("architecture"), str) or "model_type" in config:
        return None
    weights = next((path / name for name in WEIGHTS if (path / name).is_file()), None)
    if weights is None:
        raise FileError(
            f"{path}: a timm {config['architecture']} folder without weights: expected "
            f"{' or '.join(WEIGHTS)} beside config.json"
        )
    model_args = dict(config.get("model_args") or {})
    unknown = sorted(set(model_args) - set(MODEL_ARGS))
    if unknown:
        raise FileError(
            f"{config_file}: model_args {', '.join(unknown)} are not sizes zoo passes on "
            f"(it passes {', '.join(MODEL_ARGS)})"
        )
    num_classes = model_args.pop("num_classes", config.get("num_classes"))
    options = {"model_id": config["architecture"], "num_classes": num_classes, "model_args": model_args}
    pretrained_cfg = config.get("pretrained_cfg") or {}
    if all(key in pretrained_cfg for key in PREPROCESSING):
        try:  # every key mapped (crop_mode included) or the folder refused: none dropped
            options["preprocessing"] = zoo.ImagePreprocessing.from_timm_cfg(pretrained_cfg).to_dict()
        except zoo.SpecError as exc:
            raise FileError(f"{config_file}: {exc}") from None
    names = config.get("label_names") or pretrained_cfg.get("label_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names) and len(names) == num_classes:
        options["class_names"] = names  # the classifier's labels come with it (zoo export --to timm writes them)
    return zoo.PathClaim(backbone="vision/timm", pretrained=str(weights), options=options)
