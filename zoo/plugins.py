"""Plugin loading with fault isolation.

pluggy's ``load_setuptools_entrypoints`` loads every entry point in one loop with
no error handling, so one broken plugin breaks the host (llm issue #1280). Here
each entry point is loaded, checked and asked for its registrations on its own:
a plugin that fails to import, targets another core API, implements an unknown
hook, raises in a hook or registers a bad spec is *quarantined* (none of its
registrations land) with a one-line `PluginWarning`, and everything else works.

Environment:
- ``ZOO_STRICT_PLUGINS=1``: a plugin failure raises `PluginError` instead.
- ``ZOO_LOAD_PLUGINS=a,b``: load only these plugins (empty: load none).
- ``ZOO_BLOCK_PLUGINS=a,b``: never load these plugins.
- ``ZOO_PLUGIN_TIMEOUT=S``: a plugin whose import or hook takes longer than S seconds
  (default 10) is quarantined and loading goes on; one slower than 2 s is reported.
Plugins are named by entry-point name or distribution name.

A plugin registers specs only through its hooks: one that replaces zoo's functions or
edits the registry tables while loading is quarantined and the change undone, and the
registry is read-only once loading ends.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import FactoryError, PluginError, PluginWarning
from zoo.registry import SPEC_KINDS, Registry

API_VERSION = "2.0"
# API versions whose plugins still load: a 1.x plugin (preprocessing as a dict) works, with DeprecationWarnings
COMPATIBLE_API_VERSIONS = ("1.0",)
ENTRY_POINT_GROUP = "zoo"
CORE_DISTRIBUTION = "zoo"
REGISTRATION_HOOKS = (
    "register_backbones",
    "register_datasets",
    "register_tasks",
    "register_path_formats",
    "register_export_formats",
)
SLOW_SECONDS = 2.0  # a plugin slower than this to import and register is reported


@dataclass
class PluginInfo:
    """What `zoo plugins` reports about one plugin."""

    name: str  # the entry-point name
    module: str
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"  # "ok", "failed" (quarantined), "blocked" or "not loaded"
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    backbones: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    path_formats: list[str] = field(default_factory=list)
    export_formats: list[str] = field(default_factory=list)
    load_seconds: float = 0.0  # import plus registration hooks
    builtin: bool = False
    requirement: str | None = None  # a pip requirement that reinstalls it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _env_names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def strict_mode() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


def _requirement(dist: importlib.metadata.Distribution | None, name: str | None, version: str | None) -> str | None:
    """A pip requirement that reinstalls ``dist`` (``name`` ``version``) as it is installed now (PEP 610 aware)."""
    if dist is None:
        return None
    direct = dist.read_text("direct_url.json")
    if direct:
        try:
            info = json.loads(direct)
        except ValueError:
            info = {}
        url = info.get("url", "")
        if info.get("dir_info", {}).get("editable") and url.startswith("file://"):
            return f"-e {url[len('file://') :]}"
        if url:
            return f"{name} @ {url}"
    return f"{name}=={version}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class PluginSet:
    """The loaded plugins: a pluggy manager, a `Registry` and a `PluginInfo` per plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.infos: dict[str, PluginInfo] = {}

    # -- loading ---------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Load every entry point of the ``zoo`` group, one at a time, built-ins first."""
        only, blocked = _env_names("ZOO_LOAD_PLUGINS"), _env_names("ZOO_BLOCK_PLUGINS") or set()
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        # Each access to dist.metadata parses the METADATA file again, and that file holds the
        # distribution's whole README: read name and version once per distribution.
        name_version: dict[Any, tuple[str | None, str | None]] = {None: (None, None)}
        dist_of = {}
        for ep in entry_points:
            dist = dist_of[ep] = getattr(ep, "dist", None)
            if dist is not None and dist not in name_version:
                metadata = dist.metadata
                name_version[dist] = (metadata["Name"], metadata["Version"])
        ordered = sorted(entry_points, key=lambda ep: (name_version[dist_of[ep]][0] != CORE_DISTRIBUTION, ep.name))
        for ep in ordered:
            dist = dist_of[ep]
            distribution, version = name_version[dist]
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=distribution,
                version=version,
                builtin=distribution == CORE_DISTRIBUTION,
                requirement=_requirement(dist, distribution, version),
            )
            keys = {ep.name.lower(), (info.distribution or "").lower()}
            if ep.name in self.infos:
                other = self.infos[ep.name]
                self._fail(info, f"plugin name {ep.name!r} is already taken by distribution {other.distribution!r}")
                self.infos[f"{ep.name} ({info.distribution})"] = info
                continue
            self.infos[ep.name] = info
            if keys & blocked:
                info.status, info.error = "blocked", "blocked by ZOO_BLOCK_PLUGINS"
            elif only is not None and not keys & only:
                info.status, info.error = "not loaded", "not in ZOO_LOAD_PLUGINS"
            else:
                self._load_guarded(ep, info)
        self.registry.close()

    def _load_guarded(self, ep: importlib.metadata.EntryPoint, info: PluginInfo) -> None:
        """Import and register one plugin under a time limit, undoing any patching of zoo it does."""
        objects, before = _guarded_objects(), self.registry.snapshot()
        started = time.perf_counter()
        try:
            module = _with_timeout(ep.load, "its import")
        except PluginTimeout as exc:
            self._fail(info, str(exc), exc)
        except BaseException as exc:  # noqa: BLE001 - any import-time failure quarantines the plugin
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._fail(info, f"import failed: {_first_line(exc)}", exc)
        else:
            self.add_plugin(module, info)
        info.load_seconds += time.perf_counter() - started
        patched = [
            f"{_dotted(owner)}.{name}"
            for (owner, name), value in objects.items()
            if (vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)) is not value
        ]
        for (owner, name), value in objects.items():
            setattr(owner, name, value)
        edited = [
            kind
            for kind, table in before[0].items()
            if sorted(self.registry.contents()[kind]) != sorted({*table, *getattr(info, kind + "s")})
        ]
        if patched or edited:
            self.registry.restore(before)  # none of its registrations land, as for any quarantined plugin
            info.backbones, info.datasets, info.tasks, info.path_formats, info.export_formats = [], [], [], [], []
            what = ", ".join(patched + [f"the registry's {kind} table" for kind in edited])
            self._fail(info, f"modified {what} while loading (undone); plugins register specs through hooks")
        elif info.status == "ok" and info.load_seconds > SLOW_SECONDS:
            warnings.warn(
                f"plugin {info.name!r} is slow to load: {info.load_seconds:.1f} s for its import and hooks "
                "(zoo plugins shows each plugin's time)",
                PluginWarning,
                stacklevel=2,
            )

    def add_plugin(self, module: Any, info: PluginInfo) -> None:
        """Check, register and collect the registrations of one plugin module (or object)."""
        api_range = getattr(module, "zoo_api", None)
        if api_range is not None:
            supported = _api_supported(api_range)
            if supported is None:
                return self._fail(info, f"declares zoo_api = {api_range!r}, which is not a version range like '>=1,<2'")
            if not supported:
                return self._fail(info, f"supports zoo API {api_range!r}, but this zoo provides API {API_VERSION}")
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:  # pluggy's validation: a hookimpl whose arguments do not match its spec
            return self._fail(info, "; ".join(line.strip() for line in str(exc).splitlines()), exc)
        unknown = [c.name for c in self.pm.get_hookcallers(module) or [] if not c.has_spec()]
        if unknown:
            known = ", ".join(REGISTRATION_HOOKS)
            return self._fail(info, f"implements unknown hook(s) {', '.join(unknown)}; zoo's hooks are: {known}")
        info.hooks = sorted(c.name for c in self.pm.get_hookcallers(module) or [])
        self._collect(module, info)

    def _collect(self, module: Any, info: PluginInfo) -> None:
        """Run this plugin's registration hooks; commit its specs only if all of them succeed."""
        staged: list[Any] = []
        for hook_name in REGISTRATION_HOOKS:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not module:
                    continue
                mine: list[Any] = []  # a hook that times out may still call register later: it lands here
                register = _Stager(mine, hook_name)
                try:
                    call = functools.partial(impl.function, **{arg: register for arg in impl.argnames})
                    _with_timeout(call, f"hook {hook_name}")
                except PluginTimeout as exc:
                    return self._fail(info, str(exc), exc)
                except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break the host
                    return self._fail(info, f"hook {hook_name} raised {_first_line(exc)}", exc)
                register.closed = True  # a register kept for later is refused
                staged.extend(mine)
        committed: list[Any] = []
        for spec in staged:
            try:
                committed.append(self.registry.add(spec, info.name))
            except Exception as exc:  # a clash with another plugin or a non-spec object
                for done in committed:
                    self.registry.remove(done)
                return self._fail(info, str(exc), exc)
        for spec in committed:
            getattr(info, SPEC_KINDS[type(spec)] + "s").append(spec.name)

    def _fail(self, info: PluginInfo, reason: str, exc: BaseException | None = None) -> None:
        info.status, info.error = "failed", reason
        if self.pm.get_plugin(info.name) is not None:
            self.pm.unregister(name=info.name)
        message = f"plugin {info.name!r}" + (f" ({info.distribution} {info.version})" if info.distribution else "")
        message += f" quarantined: {reason}"
        if strict_mode():
            raise PluginError(message + " [ZOO_STRICT_PLUGINS=1]") from exc
        warnings.warn(message, PluginWarning, stacklevel=2)


class PluginTimeout(Exception):
    """A plugin's import or hook did not return in time."""


def plugin_timeout() -> float:
    return float(os.environ.get("ZOO_PLUGIN_TIMEOUT") or 10)


def _with_timeout(function: Callable[[], Any], what: str) -> Any:
    """``function()`` in a daemon thread; PluginTimeout if it has not returned in time (it is then
    abandoned: a hung plugin costs the timeout, not the host)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"zoo plugin: {what}", daemon=True)
    thread.start()
    thread.join(plugin_timeout())
    if thread.is_alive():
        raise PluginTimeout(f"{what} did not return within {plugin_timeout():g} s (ZOO_PLUGIN_TIMEOUT)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


_GUARDED: list[tuple[Any, tuple[str, ...]]] = []


def guard(owner: Any, names: tuple[str, ...]) -> None:
    """Protect ``owner``'s ``names`` (zoo's public functions, from the modules above this one that define
    them) against a plugin that replaces them while it loads."""
    _GUARDED.append((owner, tuple(names)))


def _guarded_objects() -> dict[tuple[Any, str], Any]:
    """zoo's functions and classes' methods that a plugin must not replace, as they are now."""
    owners = [
        *_GUARDED,
        (Registry, tuple(n for n, v in vars(Registry).items() if callable(v) and not n.startswith("__"))),
        (PluginSet, tuple(n for n, v in vars(PluginSet).items() if callable(v) and not n.startswith("__"))),
    ]
    # classes are read through __dict__, so a restore puts back the very descriptor (a staticmethod stays one)
    return {
        (owner, name): (vars(owner)[name] if isinstance(owner, type) else getattr(owner, name))
        for owner, names in owners
        for name in names
        if isinstance(owner, type) or hasattr(owner, name)
    }


def _dotted(owner: Any) -> str:
    return owner.__name__ if isinstance(owner, type(os)) else f"{owner.__module__}.{owner.__qualname__}"


class _Stager:
    """The ``register`` a registration hook is given: it stages the specs of the hook's kind in ``staged``,
    and is refused once ``closed`` (after the hook returned)."""

    EXPECTED = {
        "register_backbones": "BackboneSpec",
        "register_datasets": "DatasetSpec",
        "register_tasks": "TaskSpec",
        "register_path_formats": "PathFormat",
        "register_export_formats": "ExportFormat",
    }

    def __init__(self, staged: list[Any], hook_name: str) -> None:
        self.staged = staged
        self.hook_name = hook_name
        self.closed = False

    def __call__(self, spec: Any) -> None:
        hook_name = self.hook_name
        if self.closed:
            raise PluginError(
                f"register() of {hook_name} was called after the hook returned; register specs inside the hook"
            )
        kind, expected = type(spec).__name__, self.EXPECTED[hook_name]
        if type(spec) not in SPEC_KINDS or kind != expected:
            raise TypeError(f"{hook_name} registered a {kind}; register() takes a zoo.{expected}")
        self.staged.append(spec)


def _api_supported(api_range: Any) -> bool | None:
    """Whether the specifier ``api_range`` admits this core's API version; None when it is malformed."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        admitted = SpecifierSet(str(api_range))
    except InvalidSpecifier:
        return None
    return any(admitted.contains(version) for version in (API_VERSION, *COMPATIBLE_API_VERSIONS))


def import_object(path: str, owner: str) -> Any:
    """Import ``"package.module:attr"``; raise FactoryError naming ``owner`` if that fails."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - reported as one line, with the cause chained
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FactoryError(f"{owner}: factory {path!r} does not import ({type(exc).__name__}: {reason})") from exc
    if not callable(obj):
        raise FactoryError(f"{owner}: factory {path!r} is not callable")
    return obj


_current: PluginSet | None = None


def get_plugin_set() -> PluginSet:
    """The process-wide plugin set, loaded on first use (never at import)."""
    global _current
    if _current is None:
        plugin_set = PluginSet()
        plugin_set.load_entry_points()
        _current = plugin_set
    return _current


def reset() -> None:
    """Forget the loaded plugins, so the next call reloads them (for tests and long-lived hosts)."""
    global _current
    _current = None
