"""LoRA adapters (peft) on a backbone, or on the towers of a multimodal backbone.

`adapt` injects peft's LoRA layers into the backbone in place (``peft.inject_adapter_in_model``), so the
backbone keeps its class and its own methods (``encode_tokens``, ``pretrain_loss``, ...), and leaves
trainable only the adapter (and, for a multimodal backbone, the towers set to ``full`` and what lies
outside the towers: projections, temperature). The default targets come from the family
(`zoo.Backbone.adapter_targets`). A backbone carrying an adapter saves the adapter alone
(`save_adapter`: ``adapter.safetensors`` and ``adapter.json``, with the base backbone's registry name
and weights digest); `attach` puts a saved adapter back onto that base and refuses any other, and
`merge` folds it into the weights (what export writes).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.adapter_options import ADAPTER_DEFAULTS, adapter_settings, tower_settings
from zoo.errors import RecipeError, WeightsError
from zoo.validation import TRUST_OPTIONS, read_json_file

ADAPTER_CONFIG = "adapter.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_FORMAT = 1
ADAPTER_SCHEMA = {
    "type": "object",
    "required": ["zoo_adapter", "settings", "targets", "towers", "base", "preprocessing", "sha256"],
    "properties": {
        "zoo_adapter": {"const": ADAPTER_FORMAT},
        "settings": {"type": "object"},
        "targets": {"type": "array", "items": {"type": "string"}},
        "towers": {"type": ["object", "null"]},
        "base": {
            "type": "object",
            "required": ["name", "pretrained", "options", "seed", "sha256"],
            "properties": {
                "name": {"type": "string"},
                "pretrained": {"type": ["string", "boolean"]},
                "options": {"type": "object"},
                "seed": {"type": ["integer", "null"]},
                "sha256": {"type": "string"},
            },
        },
        "preprocessing": {"type": "object"},
        "sha256": {"type": "string"},
    },
}


@dataclass
class Adapter:
    """The adapter a backbone carries (``Backbone.adapter``): its settings, the modules it adapts, each
    tower's mode (multimodal backbones), the base it was made on and the preprocessing it trained with."""

    settings: dict[str, Any]
    targets: list[str]
    towers: dict[str, str] | None
    base: dict[str, Any]
    preprocessing: dict[str, Any]


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of every tensor of ``module`` (names and bytes, in name order): which base weights these are."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def adaptable_paths(root: nn.Module, within: nn.Module | None = None) -> list[str]:
    """Paths in ``root`` of the layers LoRA can adapt: every ``nn.Linear`` and ``nn.MultiheadAttention``
    (its ``out_proj`` goes with it: peft adapts both), inside ``within`` (default: all of ``root``).
    The default of `zoo.Backbone.adapter_targets`."""
    prefix = _path_of(root, within) if within is not None else ""
    attention = [name for name, module in root.named_modules() if isinstance(module, nn.MultiheadAttention)]
    found = []
    for name, module in root.named_modules():
        if prefix and not _under(name, prefix):
            continue
        inside_attention = any(name.startswith(a + ".") for a in attention)
        if isinstance(module, nn.MultiheadAttention) or (isinstance(module, nn.Linear) and not inside_attention):
            found.append(name)
    return found


def _path_of(root: nn.Module, module: nn.Module) -> str:
    for name, candidate in root.named_modules():
        if candidate is module:
            return name
    raise WeightsError(f"{type(module).__name__} is not a part of {type(root).__name__}")


def tower_paths(backbone: Any) -> dict[str, str]:
    """Where each declared tower of a multimodal backbone is (``{"image": "image_tower", ...}``)."""
    if backbone.modality != "multimodal":
        return {}
    found = {}
    for part in ("image", "text"):
        tower = getattr(backbone, f"{part}_tower")
        if tower is not None:
            found[part] = _path_of(backbone, tower)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def tower_modes(backbone: Any, adapter: Mapping[str, Any], towers: Mapping[str, Any]) -> dict[str, str] | None:
    """Each tower's mode: the recipe's ``towers``, else lora for every tower when an adapter is set;
    None for a backbone without towers."""
    if backbone.modality != "multimodal":
        if towers:
            raise RecipeError(
                f"towers: {backbone.name} is a {backbone.modality} backbone; towers are a multimodal backbone's "
                "(use adapter: alone)"
            )
        return None
    default = "lora" if adapter else "full"
    return {part: str(towers.get(part, default)) for part in tower_paths(backbone)}


def resolve_targets(backbone: Any, settings: Mapping[str, Any], modes: Mapping[str, str] | None) -> list[str]:
    """The paths of the modules to adapt: the family's defaults, or the modules whose name is or ends
    with one of ``target_modules`` (peft's rule), inside the towers in lora mode."""
    places = [None] if modes is None else [part for part, mode in modes.items() if mode == "lora"]
    wanted = settings.get("target_modules")
    paths: list[str] = []
    for place in places:
        if wanted is None:
            paths += backbone.adapter_targets(place)
            continue
        within = "" if place is None else tower_paths(backbone)[place]
        names = [name for name, _ in backbone.named_modules() if name and (not within or _under(name, within))]
        hits = [name for name in names if any(name == t or name.endswith("." + t) for t in wanted)]
        if not hits:
            where = f"the {place} tower of {backbone.name}" if place else backbone.name
            raise RecipeError(
                f"adapter.target_modules: no module of {where} is named {', '.join(wanted)}; "
                f"its default targets are e.g. {', '.join(backbone.adapter_targets(place)[:3])}"
            )
        paths += hits
    if places and not paths:
        raise RecipeError(f"adapter: {backbone.name} declares no modules LoRA can adapt; name them in target_modules")
    return list(dict.fromkeys(paths))


def _inject(backbone: Any, settings: Mapping[str, Any], targets: list[str]) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=int(settings["r"]),
        lora_alpha=settings["alpha"],  # peft scales the update by alpha / r
        lora_dropout=float(settings["dropout"]),
        target_modules=list(targets),
    )
    try:
        inject_adapter_in_model(config, backbone)
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"adapter: peft cannot adapt {backbone.name} ({str(exc).splitlines()[0]})") from None


def _set_trainable(backbone: Any, modes: Mapping[str, str] | None) -> None:
    """Only the adapter trains, plus each tower in full mode and whatever lies outside the towers."""
    towers = tower_paths(backbone) if modes is not None else {}
    # a token table outside the declared text tower (open_clip keeps it beside the transformer) is the
    # text side's: it trains with a full text tower only
    tables = [name for name, module in backbone.named_modules() if isinstance(module, nn.Embedding)]
    for name, param in backbone.named_parameters():
        tower = next((part for part, path in towers.items() if _under(name, path)), None)
        if "lora_" in name:
            param.requires_grad_(True)
        elif modes is None:
            param.requires_grad_(False)
        elif tower is None and any(_under(name, table) for table in tables):
            param.requires_grad_(modes.get("text") == "full")
        elif tower is None:
            param.requires_grad_(True)  # projections, temperature: the join between the towers
        else:
            param.requires_grad_(modes[tower] == "full")
    for part, path in towers.items():
        if modes is not None and modes.get(part) == "frozen":
            hold_in_eval(backbone.get_submodule(path))


def hold_in_eval(tower: nn.Module) -> None:
    """Keep a frozen tower in eval mode whatever mode its model is put in: its BatchNorm statistics stay
    and its dropout is off, as a locked tower's are (each module turns itself to eval before it runs)."""
    for module in tower.modules():
        if not getattr(module, "_zoo_held_in_eval", False):
            module.register_forward_pre_hook(_eval_before_forward)
            module._zoo_held_in_eval = True  # type: ignore[assignment]


def _eval_before_forward(module: nn.Module, args: Any) -> None:
    module.training = False


def adapt(
    backbone: Any,
    adapter: Mapping[str, Any],
    towers: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> Adapter | None:
    """Apply the recipe's ``adapter`` and ``towers`` to ``backbone`` in place; the `Adapter` it now
    carries (None where no tower is in lora mode: then only the towers' freezing is applied).
    ``options`` (the recipe's model_options) and ``seed`` (for a base at random weights, the seed it was
    built under) are recorded so the base can be rebuilt when the adapter is loaded."""
    settings = adapter_settings(adapter) if adapter else dict(ADAPTER_DEFAULTS)
    towers = tower_settings(towers) if towers else {}
    modes = tower_modes(backbone, adapter, towers)
    uses_lora = modes is None or "lora" in modes.values()
    current = backbone.adapter
    if current is not None:
        if current.settings == settings and current.towers == modes:
            return current  # a finished run's adapter, loaded to evaluate it
        raise RecipeError(
            f"adapter: {backbone.name} already carries an adapter ({current.settings}); merge it "
            "(backbone.merge_adapter()) or start from the base backbone"
        )
    if not uses_lora:
        _set_trainable(backbone, modes)
        return None
    base = describe_base(backbone, options, seed)
    targets = resolve_targets(backbone, settings, modes)
    _inject(backbone, settings, targets)
    _set_trainable(backbone, modes)
    backbone.adapter = Adapter(settings, targets, modes, base, backbone.preprocessing)
    return backbone.adapter


def describe_base(backbone: Any, options: Mapping[str, Any] | None, seed: int | None) -> dict[str, Any]:
    """What rebuilds the base: registry name, weights (a tag, a local path, or false for random weights
    built under ``seed``), model options, and the digest of its weights."""
    weights = backbone.weights
    if weights is None:
        pretrained: Any = False
    elif isinstance(weights, (str, os.PathLike)):
        pretrained = os.fspath(weights)
    else:
        pretrained = weights.tag
    return {
        "name": backbone.spec.name,
        "pretrained": pretrained,
        "options": json.loads(json.dumps(dict(options or {}), default=str)),
        "seed": seed if weights is None else None,
        "sha256": weights_digest(backbone),
    }


def adapter_state(backbone: Any) -> dict[str, torch.Tensor]:
    """The tensors the adapter saves: LoRA's, plus (multimodal) the full-mode towers' and what lies
    outside the towers, all trained."""
    adapter = backbone.adapter
    towers = tower_paths(backbone) if adapter.towers is not None else {}
    tables = [name for name, module in backbone.named_modules() if isinstance(module, nn.Embedding)]
    kept = {}
    for name, tensor in backbone.state_dict().items():
        tower = next((part for part, path in towers.items() if _under(name, path)), None)
        if adapter.towers is None or tower is not None:
            trained = "lora_" in name or (tower is not None and adapter.towers.get(tower) == "full")
        elif any(_under(name, table) for table in tables):
            trained = adapter.towers.get("text") == "full"
        else:
            trained = True
        if trained:
            kept[name] = tensor.detach().contiguous().cpu().clone()
    return kept


def save_adapter(backbone: Any, path: str | os.PathLike) -> Path:
    """Write the adapter of ``backbone`` to folder ``path`` atomically: ``adapter.safetensors`` and
    ``adapter.json`` (settings, targets, towers, base name and weights digest, preprocessing)."""
    from safetensors.torch import save_file

    from zoo.saving import sha256, staged_directory

    adapter = backbone.adapter
    with staged_directory(path) as staging:
        save_file(adapter_state(backbone), str(staging / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        config = {
            "zoo_adapter": ADAPTER_FORMAT,
            **asdict(adapter),
            "sha256": sha256(staging / ADAPTER_WEIGHTS),
        }
        (staging / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
    return Path(path).resolve()


def is_adapter_folder(path: str | os.PathLike) -> bool:
    """True for a folder `save_adapter` wrote."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def read_adapter(path: str | os.PathLike) -> dict[str, Any]:
    """``adapter.json`` of a saved adapter, checked against its schema and the weights' checksum."""
    from zoo.saving import sha256

    directory = Path(path)
    config = read_json_file(directory / ADAPTER_CONFIG, ADAPTER_SCHEMA, "a saved adapter's adapter.json")
    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise WeightsError(f"{directory}: {ADAPTER_WEIGHTS} is missing")
    if sha256(weights) != config["sha256"]:
        raise WeightsError(f"{weights}: checksum does not match {ADAPTER_CONFIG}; the file is corrupt or was changed")
    granted = [key for key in config["base"]["options"] if key in TRUST_OPTIONS]
    if granted:
        raise WeightsError(f"{directory / ADAPTER_CONFIG} sets {granted[0]!r}: trust is the caller's choice alone")
    return config


def load_adapted(path: str | os.PathLike, load: Callable[..., Any], **kwargs: Any) -> Any:
    """The base backbone a saved adapter names, built with ``load`` (`zoo.load`), with the adapter on."""
    config = read_adapter(path)
    base = config["base"]
    options = {**base["options"], **kwargs}
    if base["seed"] is not None:  # random base weights: rebuilt under the seed they were built under
        with torch.random.fork_rng():
            torch.manual_seed(base["seed"])
            backbone = load(base["name"], pretrained=base["pretrained"], **options)
    else:
        backbone = load(base["name"], pretrained=base["pretrained"], **options)
    return attach(backbone, path, config)


def attach(backbone: Any, path: str | os.PathLike, config: dict[str, Any] | None = None) -> Any:
    """Put the adapter saved in ``path`` onto ``backbone``, which must be its base: the same registered
    backbone with the same weights (a WeightsError naming both otherwise). Returns ``backbone`` in eval mode."""
    from zoo.saving import read_state_dict

    config = config or read_adapter(path)
    base = config["base"]
    if backbone.adapter is not None:
        raise WeightsError(f"{backbone.name} already carries an adapter; load {path} onto its base backbone")
    if backbone.spec.name != base["name"]:
        raise WeightsError(
            f"adapter {path} was trained on {base['name']}; this backbone is {backbone.spec.name}: "
            f"load it onto {base['name']}"
        )
    digest = weights_digest(backbone)
    if digest != base["sha256"]:
        raise WeightsError(
            f"adapter {path} was trained on {base['name']} with weights {base['sha256'][:12]}; this "
            f"{backbone.spec.name} has weights {digest[:12]}: load it onto the base it was trained on"
        )
    modes = config["towers"]
    _inject(backbone, config["settings"], config["targets"])
    state = read_state_dict(Path(path) / ADAPTER_WEIGHTS)
    expected = backbone.state_dict()
    unknown = [key for key in state if key not in expected]
    lora = [key for key in expected if "lora_" in key and key not in state]
    if unknown or lora:
        first = (unknown or lora)[0]
        raise WeightsError(f"{path}: adapter tensor {first!r} does not fit {backbone.spec.name}")
    backbone.load_state_dict(state, strict=False)
    _set_trainable(backbone, modes)
    backbone.set_preprocessing(config["preprocessing"])
    backbone.adapter = Adapter(config["settings"], config["targets"], modes, base, config["preprocessing"])
    return backbone.eval()


def merge(backbone: Any) -> Any:
    """Fold the adapter into ``backbone``'s weights (peft's merge, layer by layer) and drop it: the
    backbone is a plain one again, as export writes it."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    while True:
        found = next(((n, m) for n, m in backbone.named_modules() if isinstance(m, BaseTunerLayer)), None)
        if found is None:
            break
        name, layer = found
        if hasattr(layer, "unload_and_optionally_merge_module"):  # nn.MultiheadAttention: peft's own way
            plain = layer.unload_and_optionally_merge_module(merge=True, safe_merge=False, adapter_names=None)
        else:
            layer.merge()
            plain = layer.get_base_layer()
        parent, _, child = name.rpartition(".")
        setattr(backbone.get_submodule(parent) if parent else backbone, child, plain)
    if "peft_config" in backbone.__dict__:
        del backbone.peft_config
    backbone.adapter = None
    return backbone
