"""``unfreeze: N`` (per tower: ``{image: N, text: M}``): partial fine-tuning, as open_clip's
``--lock-image-unlocked-groups`` and the "freeze all but the last N layers" of Hugging Face users.

The last N of each tower's blocks (as the family declares them, `Backbone.blocks`, input side first)
train with the task's head; the rest of the backbone keeps its loaded weights: embeddings and stems,
the earlier blocks, and what a tower has beside its blocks (final norms, poolers). In a multimodal
backbone what joins the towers (projections into the shared space, the temperature) trains too, as a
head does; token tables kept beside a tower stay frozen with the input side. ``freeze_norm_stats``
also keeps the running statistics of the frozen part's norms (BatchNorm): those norms always run in
eval mode, as open_clip's ``--lock-image-freeze-bn-stats`` does, so the frozen part computes exactly
what it computed before training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from zoo.errors import RecipeError
from zoo.recipes import Recipe
from zoo.tasks.base import Task


def tower_counts(backbone: Any, unfreeze: int | Mapping[str, int]) -> dict[str | None, int]:
    """Blocks to unfreeze per tower (None: the backbone of a single modality); a RecipeError naming the
    tower the backbone lacks."""
    multimodal = backbone.modality == "multimodal"
    if not isinstance(unfreeze, Mapping):
        return {"image": unfreeze, "text": unfreeze} if multimodal else {None: unfreeze}
    own = ("image", "text") if multimodal else (backbone.modality,)
    for tower in unfreeze:
        if tower not in own:
            raise RecipeError(
                f"unfreeze.{tower}: backbone {backbone.name} has no {tower} tower (its: {', '.join(own)}); "
                f"{'name those' if multimodal else f'write unfreeze: N for a {backbone.modality} backbone'}"
            )
    return {tower if multimodal else None: count for tower, count in unfreeze.items()}


def keep_statistics(module: nn.Module, args: Any) -> None:
    """A forward pre-hook: the norm runs in eval mode (its running statistics neither used from the
    batch nor updated), whatever mode the model was put in."""
    module.training = False


def unfreeze(task: Task, model: nn.Module, recipe: Recipe) -> dict[str, Any] | None:
    """Apply the recipe's ``unfreeze`` and ``freeze_norm_stats`` to ``model`` (the task's, holding the
    backbone); the record results.json keeps (blocks per tower, parameters trained), or None without
    ``unfreeze``."""
    if recipe.unfreeze is None:
        if recipe.freeze_norm_stats:
            raise RecipeError("freeze_norm_stats keeps the frozen blocks' norm statistics: set unfreeze too")
        return None
    backbone = task.backbone
    inside = {id(p) for p in backbone.parameters()}
    if not any(id(p) in inside for p in model.parameters()):
        raise RecipeError(
            f"unfreeze: mode {task.mode} trains no backbone block (only a head on its features); use mode finetune"
        )
    counts = tower_counts(backbone, recipe.unfreeze)
    if counts.get("image") and backbone.frozen_image_encoder() is not None:
        raise RecipeError(
            f"unfreeze.image: the image tower of {backbone.name} is locked (its features are computed once); "
            "unlock it (model_options.lock_image=false for a joined model) or set unfreeze.image: 0"
        )
    trained: set[int] = set()  # ids of parameters and modules that train
    towers: dict[str, dict[str, int]] = {}
    for tower, count in counts.items():
        blocks = backbone.blocks(tower)
        where = "unfreeze" if tower is None else f"unfreeze.{tower}"
        part = f"the {tower} tower of {backbone.name}" if tower else backbone.name
        if not blocks:
            raise RecipeError(f"{where}: {part} declares no blocks (Backbone.blocks), so none can be unfrozen")
        if count > len(blocks):
            raise RecipeError(
                f"{where}: {count} is more than the {len(blocks)} blocks of {part}; at most {len(blocks)}"
            )
        for block in blocks[len(blocks) - count :]:
            trained |= {id(item) for item in [*block.parameters(), *block.modules()]}
        towers[tower or backbone.modality] = {"blocks": len(blocks), "unfrozen": count}
    if backbone.modality == "multimodal":  # what joins the towers trains; token tables stay with the input
        declared = [tower for tower in (backbone.image_tower, backbone.text_tower) if tower is not None]
        in_towers = {id(p) for tower in declared for p in tower.parameters()}
        tables = {id(p) for m in backbone.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        trained |= {id(p) for p in backbone.parameters() if id(p) not in in_towers | tables}
    for param in backbone.parameters():
        param.requires_grad_(id(param) in trained)
    kept = 0
    if recipe.freeze_norm_stats:
        for module in backbone.modules():
            has_statistics = getattr(module, "running_mean", None) is not None
            if has_statistics and id(module) not in trained and not any(p.requires_grad for p in module.parameters()):
                module.register_forward_pre_hook(keep_statistics)
                kept += 1
    return {
        "towers": towers,
        "trained_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params": sum(p.numel() for p in model.parameters()),
        "norms_kept": kept,
    }
