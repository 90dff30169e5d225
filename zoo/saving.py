"""Saved backbones and safe weight loading, shared by every family.

A saved backbone is a directory holding ``model.safetensors`` (the whole
backbone's state dict), ``zoo.json`` (format version, the spec, the factory
options that rebuild the architecture, the typed preprocessing, and the weights'
SHA-256) and any assets the family writes (a tokenizer). It is written to a
temporary directory and renamed into place, so a crash never leaves half of it.

Reading one back trusts nothing in it: ``zoo.json`` only *names* a registered
backbone, whose installed plugin's factory rebuilds the architecture (`rebuild`);
options that would grant trust are refused, and the preprocessing must match.
Weights are read only through safetensors or ``torch.load(weights_only=True)``:
loading never executes code from a weights file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zoo.errors import OptionError, UnknownNameError, WeightsError, ZooError
from zoo.files import NEW_DIRECTORY_MODE
from zoo.plugins import get_plugin_set, import_object
from zoo.preprocessing import legacy_preprocessing
from zoo.signatures import check_keywords
from zoo.specs import BackboneSpec
from zoo.validation import SAVED_SCHEMA, SPEC_SCHEMA, TRUST_OPTIONS, FileError, check, check_folder, read_json_file

FORMAT_VERSION = 2  # 2: typed preprocessing ({"image": ..., "text": ...}); 1: each family's own dict
CONFIG_FILE = "zoo.json"
WEIGHTS_FILE = "model.safetensors"


def is_saved(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory written by `Backbone.save`."""
    return (Path(path) / CONFIG_FILE).is_file()


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of directory ``path`` to fill; it replaces ``path`` (and whatever was
    there) only when the block ends without an error, and is removed otherwise."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(staging, NEW_DIRECTORY_MODE)
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_backbone(backbone: Any, path: str | os.PathLike) -> Path:
    """Write ``backbone`` to directory ``path`` atomically (replacing an older save there)."""
    from safetensors.torch import save_file

    with staged_directory(path) as staging:
        # safetensors refuses tensors that share memory; tied weights are re-tied by the architecture
        state = {k: v.detach().contiguous().clone() for k, v in backbone.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt", "zoo_format": str(FORMAT_VERSION)})
        backbone.save_assets(staging)
        config = {
            "zoo_format": FORMAT_VERSION,
            "spec": backbone.spec.to_dict(),
            "options": backbone.build_options(),
            "preprocessing": backbone.preprocessing,
            "weights_from": _describe(backbone.weights),
            "sha256": sha256(staging / WEIGHTS_FILE),
            "plugin": _plugin_of(backbone.spec),
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return Path(path).resolve()


def _plugin_of(spec: Any) -> dict[str, str | None]:
    """The plugin that registered ``spec`` and its distribution: what to install to load the save elsewhere."""
    info = get_plugin_set().infos.get(spec.plugin) if spec.plugin else None
    return {
        "name": spec.plugin,
        "distribution": info.distribution if info else None,
        "version": info.version if info else None,
    }


def _describe(weights: Any) -> Any:
    if weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)):
        return str(weights)
    return {"tag": weights.tag, "source": weights.source}


def read_saved(path: str | os.PathLike) -> dict[str, Any]:
    """The ``zoo.json`` of a saved backbone, checked against its schema (types, sizes, no unknown
    keys), for format, and against the weights' checksum. It is data: see `rebuild`. A format-1
    folder's preprocessing is read into format 2's typed form."""
    directory = Path(path)
    config = read_json_file(directory / CONFIG_FILE, SAVED_SCHEMA, "a saved backbone's zoo.json")
    if config["zoo_format"] not in (1, FORMAT_VERSION):
        raise WeightsError(
            f"{directory}: saved with zoo format {config['zoo_format']!r}; "
            f"this zoo reads formats 1 and {FORMAT_VERSION}"
        )
    if config["zoo_format"] == 1:
        try:
            config["preprocessing"] = legacy_preprocessing(config["spec"]["modality"], config["preprocessing"])
        except ZooError as exc:
            raise FileError(f"{directory / CONFIG_FILE}: {exc}") from None
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise WeightsError(f"{directory}: {WEIGHTS_FILE} is missing")
    if sha256(weights) != config["sha256"]:
        raise WeightsError(f"{weights}: checksum does not match {CONFIG_FILE}; the file is corrupt or was changed")
    return config


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file, or a PyTorch file loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"weights file {path} is corrupt or truncated ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come as many types
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            raise WeightsError(
                f"weights file {path} holds Python objects other than tensors; refusing to "
                "unpickle it (it could run code). Convert it to safetensors where you trust it"
            ) from None
        raise WeightsError(
            f"weights file {path} is corrupt or truncated ({text.splitlines()[0] if text else exc})"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} is not a state dict of tensors")
    return dict(state)


def load_state_dict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, owner: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with errors that name the first bad tensor."""
    expected = module.state_dict()
    for key, tensor in state.items():
        if key in expected and tuple(expected[key].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"{source} does not fit {owner}: tensor {key!r} has shape {tuple(tensor.shape)} in the file "
                f"but {tuple(expected[key].shape)} in the model (weights of another architecture?)"
            )
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing from the file, first {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s), first {unexpected[0]!r}")
        raise WeightsError(f"{source} does not fit {owner}: {'; '.join(parts)} (weights of another architecture?)")
    module.load_state_dict(state, strict=True)


def check_loaded_weights(module: torch.nn.Module, path: str | os.PathLike, loader: str) -> None:
    """That a runtime loaded weights file ``path`` into ``module`` whole: every tensor of the file is in the
    module unchanged and the module has none the file lacks; a `WeightsError` naming ``loader`` otherwise.
    What an export format's runner checks, since a loader may drop or re-initialise tensors silently."""
    saved, loaded = read_state_dict(path), module.state_dict()
    dropped, missing = sorted(set(saved) - set(loaded)), sorted(set(loaded) - set(saved))
    changed = sorted(k for k in set(saved) & set(loaded) if not torch.equal(saved[k], loaded[k].cpu()))
    for what, keys in (("drops", dropped), ("lacks", missing), ("changes", changed)):
        if keys:
            name = Path(path).name
            raise WeightsError(f"{loader} {what} {len(keys)} tensor(s) of {name} ({', '.join(keys[:3])})")


def registered_factory(spec_dict: Any, where: str, install_hint: str = "") -> tuple[BackboneSpec, Any]:
    """The registered spec and factory that a saved ``spec_dict`` (read from a file) names.

    The file only names the backbone: the factory comes from the installed plugins'
    registrations, never from the file. A factory, modality or option that disagrees
    with the registration is refused, naming the field.
    """
    saved = check(spec_dict, SPEC_SCHEMA, where)
    registry = get_plugin_set().registry
    try:
        spec = registry.get("backbone", saved["name"])
    except UnknownNameError:
        spec = None
    if spec is None or spec.name != saved["name"]:
        raise FileError(
            f"{where}: backbone {saved['name']!r} is not registered by any installed plugin; "
            f"{install_hint or 'install the plugin that provides it'} "
            "(zoo never imports code that a saved folder names)"
        )
    registered = json.loads(
        json.dumps({"factory": spec.factory, "modality": spec.modality, "options": dict(spec.options)}, default=list)
    )
    for field, value in registered.items():
        if saved.get(field, {} if field == "options" else None) != value:
            raise FileError(
                f"{where}: spec.{field} {saved.get(field)!r} differs from what plugin {spec.plugin!r} "
                f"registers for {spec.name!r} ({value!r}); refusing it: a saved folder cannot choose code"
            )
    return spec, import_object(spec.factory, f"backbone {spec.name!r} (plugin {spec.plugin!r})")


def rebuild(spec_dict: dict[str, Any], options: dict[str, Any], saved_dir: str | os.PathLike, **kwargs: Any) -> Any:
    """The architecture of a saved backbone, with its assets but untrained parameters.

    ``spec_dict`` and ``options`` come from the saved folder's ``zoo.json``: the spec must
    be registered (see `registered_factory`) and the options must be keyword parameters of
    its factory, never one that grants trust (``trust_remote_code``); ``kwargs`` are the
    caller's own options. Families that compose others (the joined CLIP towers) use it to
    rebuild their parts.
    """
    return _rebuild(spec_dict, options, saved_dir, kwargs)


def _rebuild(
    spec_dict: Any,
    options: dict[str, Any],
    saved_dir: str | os.PathLike,
    kwargs: dict[str, Any],
    install_hint: str = "",
) -> Any:
    where = f"saved backbone {os.fspath(saved_dir)!r}"
    spec, factory = registered_factory(spec_dict, where, install_hint)
    granted = [key for key in options if key in TRUST_OPTIONS or key == "saved_dir"]
    if granted:
        raise FileError(
            f"{where}: zoo.json sets {granted[0]!r}; that is the caller's choice alone "
            f"(zoo.load(..., {granted[0]}=...) where you trust the folder), never a file's"
        )
    check_keywords(factory, options, where, "model option", FileError, skip=2)
    check_keywords(factory, kwargs, f"backbone {spec.name!r}", "model option", OptionError, skip=2)
    return factory(spec, None, saved_dir=os.fspath(saved_dir), **{**options, **kwargs})


def load_saved(directory: str, **kwargs: Any) -> Any:
    """Rebuild a saved backbone: its registered factory builds the architecture, then the saved tensors
    load strictly. Nothing in the folder chooses code: see `rebuild`."""
    check_folder(directory)
    config = read_saved(directory)
    plugin = config.get("plugin") or {}
    hint = ""
    if plugin.get("distribution"):  # validated as a distribution name and version: safe to show
        pin = f"=={plugin['version']}" if plugin.get("version") else ""
        hint = f"it was saved with plugin {plugin.get('name')!r}: pip install '{plugin['distribution']}{pin}'"
    model = _rebuild(config["spec"], config["options"], directory, kwargs, hint)
    # explicit options (say max_length=64) change preprocessing on purpose; otherwise it must match
    # (in the fields zoo.json records: a field a newer zoo adds is not a mismatch with an older save)
    rebuilt, recorded = model.preprocessing, config["preprocessing"]
    if not kwargs and _recorded_part(rebuilt, recorded) != recorded:
        raise WeightsError(
            f"{directory}: the preprocessing in zoo.json {config['preprocessing']} differs from what the "
            f"rebuilt model uses {model.preprocessing}; refusing to pair weights with the wrong preprocessing"
        )
    weights_file = os.path.join(directory, WEIGHTS_FILE)
    load_state_dict(model, read_state_dict(weights_file), weights_file, model.spec.name)
    model.weights = os.path.abspath(directory)
    return model.eval()


def _recorded_part(rebuilt: Mapping[str, Any], recorded: Mapping[str, Any]) -> dict[str, Any]:
    """``rebuilt``'s preprocessing in the parts and fields that ``recorded`` has."""
    return {part: {key: rebuilt.get(part, {}).get(key) for key in fields} for part, fields in recorded.items()}
