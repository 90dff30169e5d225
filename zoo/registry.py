"""The registry: every spec the plugins registered, name resolution and wildcards.

Names are ``namespace/name`` (``vision/efficientnet-lite0``), optionally with a
weights tag (``vision/efficientnet-lite0:in1k``). A name also resolves by its
short form (``efficientnet-lite0``) when that is unambiguous, and by aliases.
Unknown names get a did-you-mean. Matching is case-insensitive.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TypeVar, cast

from zoo.errors import InvalidPatternError, SpecError, UnknownNameError
from zoo.specs import BackboneSpec, DatasetSpec, ExportFormat, PathFormat, TaskSpec, normalize_modality

Spec = TypeVar("Spec", BackboneSpec, DatasetSpec, TaskSpec, PathFormat, ExportFormat)
AnySpec = BackboneSpec | DatasetSpec | TaskSpec | PathFormat | ExportFormat
SPEC_KINDS = {
    BackboneSpec: "backbone",
    DatasetSpec: "dataset",
    TaskSpec: "task",
    PathFormat: "path_format",
    ExportFormat: "export_format",
}

_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9._+\-/:*?\[\]!]+$")


def check_pattern(pattern: str) -> str:
    """Return ``pattern`` lower-cased if it is a valid wildcard pattern, else raise InvalidPatternError."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidPatternError("empty pattern: give a name or wildcards, e.g. 'vision/*lite*'")
    if not _PATTERN_CHARS.match(pattern):
        bad = sorted({c for c in pattern if not _PATTERN_CHARS.match(c)})
        raise InvalidPatternError(
            f"invalid pattern {pattern!r}: character(s) {''.join(bad)!r} cannot occur in names; "
            "use shell wildcards, e.g. 'vision/*lite*'"
        )
    depth = 0
    for char in pattern:
        depth += char == "["
        depth -= char == "]" and depth > 0
        if depth > 1:
            raise InvalidPatternError(f"invalid pattern {pattern!r}: nested '['")
    if depth:
        raise InvalidPatternError(f"invalid pattern {pattern!r}: '[' is never closed; write '[[]' for a literal '['")
    return pattern.lower()


def _did_you_mean(suggestions: list[str]) -> str:
    """The hint for ``suggestions`` (did you mean 'a', 'b' or 'c'?), or an empty string without any."""
    if not suggestions:
        return ""
    quoted = [repr(s) for s in suggestions]
    return "did you mean " + (", ".join(quoted[:-1]) + " or " if len(quoted) > 1 else "") + quoted[-1] + "?"


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class Registry:
    """Specs by kind and name, with the plugin that registered each one."""

    def __init__(self) -> None:
        # dicts while plugins register; read-only views once closed
        self._specs: dict[str, Mapping[str, AnySpec]] = {kind: {} for kind in SPEC_KINDS.values()}
        self._aliases: Mapping[str, str] = {}
        self.closed = False

    def close(self) -> None:
        """Make the registry read-only: once plugins have loaded, nothing adds, removes or edits specs."""
        self._specs = {kind: MappingProxyType(dict(table)) for kind, table in self._specs.items()}
        self._aliases = MappingProxyType(dict(self._aliases))
        self.closed = True

    def contents(self) -> dict[str, list[str]]:
        """The registered names of each kind."""
        return {kind: sorted(table) for kind, table in self._specs.items()}

    def snapshot(self) -> tuple[dict[str, dict[str, AnySpec]], dict[str, str]]:
        """Copies of the tables, for `restore` (when a plugin that edited them is quarantined)."""
        return {kind: dict(table) for kind, table in self._specs.items()}, dict(self._aliases)

    def restore(self, snapshot: tuple[dict[str, dict[str, AnySpec]], dict[str, str]]) -> None:
        self._check_open()
        self._specs = {kind: dict(table) for kind, table in snapshot[0].items()}
        self._aliases = dict(snapshot[1])

    def _check_open(self) -> None:
        if self.closed:
            raise SpecError("the registry is closed once plugins have loaded: register specs from a register_* hook")

    def _editable(self, kind: str) -> tuple[dict[str, AnySpec], dict[str, str]]:
        """``kind``'s table and the aliases, to edit; raises SpecError once the registry is closed."""
        self._check_open()
        # an open registry's tables are the dicts __init__ and restore made; only close makes read-only views
        return cast("dict[str, AnySpec]", self._specs[kind]), cast("dict[str, str]", self._aliases)

    # -- building -------------------------------------------------------------------
    def owner_of(self, spec: AnySpec) -> str | None:
        """The plugin that already holds ``spec``'s name (or one of its aliases), if any."""
        kind = SPEC_KINDS[type(spec)]
        table = self._specs[kind]
        for name in (spec.name, *getattr(spec, "aliases", ())):
            canonical = self._aliases.get(name, name) if kind == "backbone" else name
            if canonical in table:
                return table[canonical].plugin
        return None

    def add(self, spec: Spec, plugin: str) -> Spec:
        """Store ``spec`` as registered by ``plugin``; raise SpecError on a clash."""
        self._check_open()
        if type(spec) not in SPEC_KINDS:
            raise SpecError(
                "register() takes zoo.BackboneSpec, zoo.DatasetSpec, zoo.TaskSpec, zoo.PathFormat or zoo.ExportFormat, "
                f"got {type(spec).__name__}"
            )
        owner = self.owner_of(spec)
        if owner is not None:
            kind = SPEC_KINDS[type(spec)]
            raise SpecError(f"{kind} {spec.name!r} is registered by both plugin {owner!r} and plugin {plugin!r}")
        spec = replace(spec, plugin=plugin)
        table, aliases = self._editable(SPEC_KINDS[type(spec)])
        table[spec.name] = spec
        for alias in getattr(spec, "aliases", ()):
            aliases[alias] = spec.name
        return spec

    def remove(self, spec: Spec) -> None:
        """Take ``spec`` (and its aliases) out again, e.g. when its plugin is quarantined."""
        table, aliases = self._editable(SPEC_KINDS[type(spec)])
        table.pop(spec.name, None)
        for alias in getattr(spec, "aliases", ()):
            aliases.pop(alias, None)

    # -- lookup ---------------------------------------------------------------------
    def _sorted(self, kind: str, cls: type[Spec]) -> list[Spec]:
        """The specs of ``kind`` (each a ``cls``: `add` files a spec under its type's kind), sorted by name."""
        table = self._specs[kind]
        return [spec for name in sorted(table) if isinstance(spec := table[name], cls)]

    def backbones(self) -> list[BackboneSpec]:
        """Every backbone spec, sorted by name."""
        return self._sorted("backbone", BackboneSpec)

    def datasets(self) -> list[DatasetSpec]:
        return self._sorted("dataset", DatasetSpec)

    def tasks(self) -> list[TaskSpec]:
        return self._sorted("task", TaskSpec)

    def path_formats(self) -> list[PathFormat]:
        """Every path format, in registration order (plugins load built-ins first, then by name)."""
        return [spec for spec in self._specs["path_format"].values() if isinstance(spec, PathFormat)]

    def export_formats(self) -> list[ExportFormat]:
        """Every export format, sorted by name."""
        return self._sorted("export_format", ExportFormat)

    def list_backbones(
        self,
        pattern: str = "*",
        modality: str | None = None,
        task: str | None = None,
        pretrained: bool | None = None,
        exclude: Iterable[str] = (),
    ) -> list[BackboneSpec]:
        """Backbones whose name (or short name) matches ``pattern``, filtered; sorted by name."""
        pattern = check_pattern(pattern)
        excludes = [check_pattern(p) for p in exclude]
        if modality is not None:
            try:
                modality = normalize_modality(modality)
            except SpecError as exc:
                raise InvalidPatternError(str(exc)) from None
        if task is not None:
            task = self._known_task(task)

        def matches(spec: BackboneSpec, pat: str) -> bool:
            return fnmatch.fnmatchcase(spec.name, pat) or fnmatch.fnmatchcase(_short(spec.name), pat)

        return [
            spec
            for spec in self.backbones()
            if matches(spec, pattern)
            and not any(matches(spec, ex) for ex in excludes)
            and (modality is None or spec.modality == modality)
            and (task is None or task in spec.tasks)
            and (pretrained is None or spec.pretrained == pretrained)
        ]

    def _known_task(self, task: str) -> str:
        """``task`` lower-cased if a plugin registered it or a backbone names it; else UnknownNameError."""
        known = {spec.name for spec in self.tasks()} | {name for spec in self.backbones() for name in spec.tasks}
        name = task.strip().lower()
        if name in known:
            return name
        hint = _did_you_mean(difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6))
        raise UnknownNameError(f"unknown task {task!r}: {hint + ' ' if hint else ''}run 'zoo tasks' to see them")

    def resolve_backbone(self, name: str) -> tuple[BackboneSpec, str | None]:
        """Return ``(spec, tag)`` for ``name[:tag]``; raise UnknownNameError with suggestions."""
        if not isinstance(name, str) or not name.strip():
            raise UnknownNameError("empty backbone name: run 'zoo list' to see the registered backbones")
        base, _, tag = name.strip().partition(":")
        spec = self._lookup("backbone", base.lower())
        if spec.id_option:  # "text/hf-hub:Org/Model": the id keeps its case
            return spec, (tag or None)
        if tag:
            spec.get_weights(tag.lower())  # raises with the known tags
        return spec, (tag.lower() or None)

    def get(self, kind: str, name: str):
        """The spec of ``kind`` ('backbone', 'dataset' or 'task') named ``name``."""
        return self._lookup(kind, name.strip().lower())

    def _lookup(self, kind: str, name: str):
        table = self._specs[kind]
        if name in table:
            return table[name]
        if kind == "backbone" and name in self._aliases:
            return table[self._aliases[name]]
        by_short = [spec for full, spec in table.items() if _short(full) == name]
        if len(by_short) == 1:
            return by_short[0]
        if len(by_short) > 1:
            options = ", ".join(sorted(spec.name for spec in by_short))
            raise UnknownNameError(f"{kind} name {name!r} is ambiguous: it could be {options}; give the full name")
        raise UnknownNameError(self._unknown_message(kind, name))

    def _unknown_message(self, kind: str, name: str) -> str:
        table = self._specs[kind]
        candidates = {full: full for full in table}
        candidates.update({_short(full): full for full in table})
        if kind == "backbone":
            candidates.update(self._aliases)
        close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
        close += [c for c in sorted(candidates) if name in c and name != c]  # 'lite0' -> 'vision/efficientnet-lite0'
        hint = _did_you_mean(sorted(dict.fromkeys(candidates[c] for c in close))[:3])
        listing = {"backbone": "zoo list", "dataset": "zoo datasets", "task": "zoo tasks"}[kind]
        return f"unknown {kind} {name!r}: {hint + ' ' if hint else ''}run '{listing}' to see what is registered"
