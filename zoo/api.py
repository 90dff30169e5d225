"""The public functions of `zoo`, re-exported by ``zoo/__init__.py``.

Nothing here imports torch or a model library: listing and describing work on
specs alone, and `load` imports a backbone's factory only when it is called.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from zoo.errors import FactoryError, OptionError, PluginWarning, UnknownNameError, ZooError
from zoo.plugins import PluginInfo, get_plugin_set, guard, import_object
from zoo.specs import BackboneSpec, DatasetSpec, TaskSpec, Weights


def list_backbones(
    pattern: str = "*",
    modality: str | None = None,
    task: str | None = None,
    pretrained: bool | None = None,
    exclude: Iterable[str] = (),
    specs: bool = False,
) -> list[Any]:
    """Names of the registered backbones matching a wildcard ``pattern`` and filters (their
    `BackboneSpec` entries with ``specs=True``), sorted by name.

    Examples:
        >>> zoo.list_backbones("vision/*lite*", pretrained=True)
    """
    found = get_plugin_set().registry.list_backbones(pattern, modality, task, pretrained, exclude)
    return list(found) if specs else [spec.name for spec in found]


def list_datasets() -> list[DatasetSpec]:
    """The registered data sets (`DatasetSpec`), from every plugin's ``register_datasets``."""
    return list(get_plugin_set().registry.datasets())


def list_tasks() -> list[TaskSpec]:
    """The registered task families (`TaskSpec`), from every plugin's ``register_tasks``."""
    return list(get_plugin_set().registry.tasks())


def get_spec(name: str) -> BackboneSpec:
    """The `BackboneSpec` registered for ``name`` (full, short or alias; a ``:tag`` is allowed)."""
    return _resolve(name)[0]


def _resolve(name: str) -> tuple[BackboneSpec, str | None]:
    """The spec and weights tag ``name`` resolves to; a name that can only be a path and is not there is
    "not found", not an unknown backbone."""
    try:
        return get_plugin_set().registry.resolve_backbone(name)
    except UnknownNameError:
        if looks_like_a_path(name):
            where = os.path.abspath(os.path.expanduser(name))
            raise UnknownNameError(f"model folder or file {where} not found") from None
        raise


def plugins() -> list[PluginInfo]:
    """Every plugin found through the ``zoo`` entry points, with status and contributions."""
    return list(get_plugin_set().infos.values())


def _choose_weights(spec: BackboneSpec, tag: str | None, pretrained: bool | str | None) -> Weights | str | None:
    if pretrained is False:
        if tag:
            raise UnknownNameError(f"{spec.name}:{tag} names pretrained weights, but pretrained=False was given")
        return None
    if isinstance(pretrained, str):
        if tag:
            raise UnknownNameError(f"give the weights once: either '{spec.name}:{tag}' or pretrained={pretrained!r}")
        if os.path.sep in pretrained or os.path.exists(pretrained):
            if not os.path.exists(pretrained):
                raise UnknownNameError(f"pretrained={pretrained!r}: no such file or directory")
            if os.path.isdir(pretrained):
                from zoo.validation import check_folder

                check_folder(pretrained)  # a model folder handed over: no link or file name out of it
            return os.path.abspath(pretrained)
        return spec.get_weights(pretrained.lower())
    if pretrained is None and not spec.weights:
        return None  # an architecture meant to be trained from scratch
    return spec.get_weights(tag)


def load(name: str | os.PathLike, pretrained: bool | str | None = None, **kwargs: Any):
    """Build the backbone ``name`` and return it as a `zoo.Backbone`.

    ``name`` is a registered name (``"vision/efficientnet-lite0"``, optionally
    with a weights tag ``":in1k"``) or a local file or folder: one written by
    `Backbone.save`, or any format a plugin claims (a Hugging Face model folder, a
    timm or open_clip folder, a ``hubconf.py`` folder: see `claim_path`);
    ``"PLUGIN:path"`` asks only that plugin.
    ``pretrained``: None (default) loads the default weights, or initialises at
    random when the spec has none (an architecture meant for training from
    scratch); True requires weights; False initialises at random; a string is a
    weights tag of the spec or a local weights file or directory.
    Extra keyword arguments go to the family's factory. The backbone comes in eval mode.
    """
    from zoo.signatures import check_keywords

    local = local_path(name)
    if local is not None:
        return _load_path(*local, pretrained, kwargs)
    if not isinstance(name, str):  # local_path took every os.PathLike
        raise UnknownNameError(f"a backbone is named by a string or a path, not a {type(name).__name__}")
    spec, tag = _resolve(name)
    if spec.id_option and tag:  # an open-ended source: "text/hf-hub:org/model"
        kwargs = {spec.id_option: tag, **kwargs}
        tag = None
    weights = _choose_weights(spec, tag, pretrained)
    factory = import_object(spec.factory, f"backbone {spec.name!r} (plugin {spec.plugin!r})")
    check_keywords(factory, kwargs, f"backbone {spec.name!r}", "model option", OptionError, skip=2)
    return factory(spec, weights, **{**spec.options, **kwargs}).eval()  # like from_pretrained: ready to encode


def looks_like_a_path(name: str) -> bool:
    """A name no registry entry can be: relative or absolute path syntax, more folders than a
    ``namespace/name`` has (``runs/sst2/model/backbone``), or a first folder that is no registered
    namespace (``runs/sst2``)."""
    if name.startswith((".", "/", "~")) or name.endswith((".pt", ".pth", ".safetensors", ".bin", ".onnx")):
        return True
    if ":" in name or "/" not in name:
        return False
    namespaces = {spec.name.partition("/")[0] for spec in get_plugin_set().registry.backbones()}
    return name.count("/") >= 2 or name.partition("/")[0] not in namespaces


def local_path(name: Any) -> tuple[str, str | None] | None:
    """``(path, plugin)`` when ``name`` is a local file or folder (``plugin``: a ``PLUGIN:`` prefix that
    forces that plugin's formats), else None: a registered name. A name that is both is an error."""
    if isinstance(name, os.PathLike):
        return os.fspath(name), None
    if not isinstance(name, str):
        return None
    prefix, colon, rest = name.partition(":")
    if colon and rest and prefix in get_plugin_set().infos and os.path.exists(rest):
        return rest, prefix
    if not os.path.exists(name):
        return None
    try:
        get_plugin_set().registry.resolve_backbone(name)
    except UnknownNameError:
        return name, None
    raise UnknownNameError(
        f"{name!r} is both a local path and a registered backbone: write '{os.path.join('.', name)}' for the path"
    )


def claim_path(path: str | os.PathLike, plugin: str | None = None) -> Any:
    """The `PathClaim` for a local file or folder: how zoo would load it (None for a zoo-saved folder,
    which the core claims itself). Formats are asked in turn: third-party plugins' before the
    built-in ones, or only ``plugin``'s; a format whose claim raises anything but a `ZooError` is
    skipped with a `PluginWarning`. Nothing claims it: UnknownNameError naming what was looked for."""
    import warnings

    from zoo.specs import PathClaim
    from zoo.validation import TRUST_OPTIONS, check_folder

    plugin_set, path = get_plugin_set(), Path(path)
    if path.is_dir():
        check_folder(path)
    if plugin is None and (path / "zoo.json").is_file():
        return None
    formats = [f for f in plugin_set.registry.path_formats() if plugin in (None, f.plugin)]
    if plugin is not None and not formats:
        raise UnknownNameError(f"plugin {plugin!r} claims no local formats; see 'zoo plugins'")
    # stable: registration order within each; the registry filled in each format's plugin
    formats.sort(key=lambda f: plugin_set.infos[cast(str, f.plugin)].builtin)
    for fmt in formats:
        owner = f"path format {fmt.name!r} (plugin {fmt.plugin!r})"
        claim = import_object(fmt.claim, owner)
        try:
            found = claim(path)
        except ZooError:
            raise  # its format, and something about it is wrong: the claim says what
        except Exception as exc:  # noqa: BLE001 - one plugin's bug must not stop the others' claims
            warnings.warn(
                f"{owner} failed on {path} and was skipped: {type(exc).__name__}: {exc}", PluginWarning, stacklevel=2
            )
            continue
        if found is None:
            continue
        if not isinstance(found, PathClaim):
            raise FactoryError(f"{owner} returned a {type(found).__name__}; a claim returns zoo.PathClaim or None")
        granted = [key for key in found.options if key in TRUST_OPTIONS]
        if granted:
            raise FactoryError(f"{owner} claims {path} with {granted[0]!r}: trust is the caller's choice alone")
        return found
    looked_for = ["a folder saved by zoo (zoo.json)"] * (plugin is None) + [f.looks_for for f in formats]
    prefixes = ", ".join(dict.fromkeys(f"{f.plugin}:" for f in plugin_set.registry.path_formats()))
    raise UnknownNameError(
        f"nothing claims {path}: looked for {'; '.join(looked_for)}. Name the plugin whose "
        f"format it is with a prefix ({prefixes}PATH), or load it by backbone name with "
        "pretrained=PATH"
    )


def _load_path(path: str, plugin: str | None, pretrained: Any, kwargs: dict[str, Any]):
    """`load` of a local file or folder: a zoo-saved folder, else the first plugin format that claims it."""
    if not os.path.exists(path):
        raise UnknownNameError(f"{path}: no such file or folder")
    if pretrained not in (None, True):
        raise UnknownNameError(f"{path} is a local model; give weights (pretrained=...) only with a registered name")
    from zoo.adapters import is_adapter_folder, load_adapted

    if plugin is None and is_adapter_folder(path):  # a LoRA run's adapter: its base, then the adapter on it
        from zoo.validation import check_folder

        check_folder(path)
        return load_adapted(path, load, **kwargs)
    claim = claim_path(path, plugin)
    if claim is None:
        from zoo.saving import load_saved

        return load_saved(path, **kwargs)
    return load(claim.backbone, pretrained=claim.pretrained, **{**claim.options, **kwargs})


guard(sys.modules[__name__], ("load", "list_backbones", "get_spec", "plugins", "import_object", "get_plugin_set"))
