"""The ``adapter:`` and ``towers:`` recipe keys, read and checked (no torch here: recipes check them).

``adapter: {method: lora, r: 8, alpha: 16, dropout: 0.05, target_modules: null}`` trains low-rank
adapters (peft's LoRA) instead of the backbone's weights; ``towers: {image: frozen|lora|full, text:
frozen|lora|full}`` says how each tower of a multimodal backbone trains. `zoo.adapters` applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.errors import RecipeError
from zoo.signatures import nearest_key_hint

ADAPTER_DEFAULTS: dict[str, Any] = {"method": "lora", "r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None}
METHODS = ("lora",)
TOWER_MODES = ("frozen", "lora", "full")
TOWER_NAMES = ("image", "text")
# what peft's LoraConfig (and its users) call the adapter's keys
ADAPTER_ALIASES = {
    "rank": "r",
    "lora_r": "r",
    "lora_alpha": "alpha",
    "scale": "alpha",
    "lora_dropout": "dropout",
    "targets": "target_modules",
    "modules": "target_modules",
    "type": "method",
    "peft_type": "method",
}


def adapter_settings(adapter: Mapping[str, Any], where: str = "adapter") -> dict[str, Any]:
    """The adapter mapping with every key filled in from `ADAPTER_DEFAULTS`; a RecipeError naming the
    key for an unknown key or a bad value."""
    if not isinstance(adapter, Mapping):
        raise RecipeError(f"{where}: adapter must be a mapping such as {{method: lora, r: 8}}, got {adapter!r}")
    for key in adapter:
        if key not in ADAPTER_DEFAULTS:
            keys = f"its keys: {', '.join(ADAPTER_DEFAULTS)}"
            hint = nearest_key_hint(str(key), list(ADAPTER_DEFAULTS), keys, ADAPTER_ALIASES)
            raise RecipeError(f"{where}: adapter has no key {key!r}; {hint}")
    settings = {**ADAPTER_DEFAULTS, **adapter}
    if settings["method"] not in METHODS:
        raise RecipeError(f"{where}: adapter.method must be {' or '.join(METHODS)}, got {settings['method']!r}")
    r = settings["r"]
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise RecipeError(f"{where}: adapter.r (the rank) must be an integer >= 1, got {r!r}")
    alpha = settings["alpha"]
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise RecipeError(
            f"{where}: adapter.alpha must be a number > 0 (the update is scaled by alpha / r), got {alpha!r}"
        )
    dropout = settings["dropout"]
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise RecipeError(f"{where}: adapter.dropout must be >= 0 and < 1, got {dropout!r}")
    targets = settings["target_modules"]
    if isinstance(targets, str):
        targets = settings["target_modules"] = [targets]
    if targets is not None and (
        not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets)
    ):
        raise RecipeError(
            f"{where}: adapter.target_modules must be null (the family's default) or a list of module names "
            f"(e.g. [query, value]), got {targets!r}"
        )
    return settings


def tower_settings(towers: Mapping[str, Any], where: str = "towers") -> dict[str, str]:
    """The towers mapping, checked: keys image / text, values frozen / lora / full."""
    if not isinstance(towers, Mapping):
        raise RecipeError(f"{where}: towers must be a mapping such as {{image: frozen, text: lora}}, got {towers!r}")
    for key, mode in towers.items():
        if key not in TOWER_NAMES:
            hint = nearest_key_hint(str(key), list(TOWER_NAMES), "the towers are image and text")
            raise RecipeError(f"{where}: towers has no tower {key!r}; {hint}")
        if mode not in TOWER_MODES:
            raise RecipeError(f"{where}: towers.{key} must be frozen, lora or full, got {mode!r}")
    return dict(towers)


def check_adapter_keys(adapter: Mapping[str, Any], towers: Mapping[str, Any], where: str) -> None:
    """A RecipeError for a bad ``adapter`` or ``towers`` mapping (empty ones mean: not set)."""
    if adapter:
        adapter_settings(adapter, where)
    if towers:
        tower_settings(towers, where)
