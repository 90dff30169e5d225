"""Where an export may be written, and what its folder holds: `zoo export` never touches a file it
did not write, and `zoo-export.json` says which files it wrote.

An export goes to a new folder or an empty one. A folder that exists and holds anything but a zoo
export is refused whatever the options; so are the current folder, the folders above it, the home
folder and the filesystem root. A zoo export there is replaced only with ``force``, and then only
the files its manifest records (each still exactly as zoo wrote it, by its SHA-256) are removed:
every other file stays where it is, as ``rsync`` without ``--delete`` leaves extra files. A file
that a loader could read (anything but a hidden file or a document: `INERT_SUFFIXES`) would change
what the folder loads as, so such a folder is refused naming that file, as is one where a recorded
file was edited since (a model card a user rewrote is theirs now).

The manifest records every other file's SHA-256 and size. It cannot hold its own hash, so it holds
a *seal*: the SHA-256 of its own canonical JSON (sorted keys, no spaces) without the seal. The seal
covers the file hashes, and they cover every other file, so one value stands for the whole export:
`check_files` (the first step of ``zoo export DIR --verify``) finds any edit made by hand or any
corruption, the tolerance (``atol``) and the sample texts included. A forger could recompute a seal
as easily as rewrite any file: no value kept inside a folder proves where the folder came from.
`zoo export` prints the seal, and comparing it with the one ``--verify`` prints on the receiving
side is how a recipient knows the export is the one that was made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.errors import ZooError
from zoo.files import NEW_DIRECTORY_MODE
from zoo.saving import sha256
from zoo.validation import read_json_file

MANIFEST = "zoo-export.json"
# files no model loader reads: documents, tables and pictures that people keep beside a model
INERT_SUFFIXES = frozenset({".md", ".rst", ".pdf", ".csv", ".tsv", ".html", ".png", ".jpg", ".jpeg", ".gif", ".svg"})
DIGEST = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
FILES_SCHEMA = {
    "type": "object",
    "maxProperties": 100_000,
    "propertyNames": {"maxLength": 1000},
    "additionalProperties": {
        "type": "object",
        "required": ["sha256", "size"],
        "additionalProperties": False,
        "properties": {"sha256": DIGEST, "size": {"type": "integer", "minimum": 0}},
    },
}
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["format", "backbone", "parts", "texts", "atol"],
    "properties": {
        "format": {"type": "string", "maxLength": 100},
        "backbone": {"type": "string", "maxLength": 200},
        "parts": {"type": "array", "items": {"enum": ["image", "text"]}},
        "texts": {"type": "array", "items": {"type": "string", "maxLength": 1000}, "maxItems": 64},
        "atol": {"type": "number", "exclusiveMinimum": 0},
        "files": FILES_SCHEMA,
        "seal": DIGEST,
    },
}


class ExportError(ZooError):
    """An export that cannot be written, or whose outputs differ from zoo's own (parity)."""


class ExportTargetError(ExportError):
    """An output folder `zoo export` may not write into: it would replace or mix with files it did not write."""

    exit_code = 2


@dataclass
class Target:
    """Where an export goes: ``path`` (resolved); for a zoo export there that ``force`` replaces, the
    files it recorded (``replaced``) and the other files that stay (``kept``)."""

    path: Path
    replaced: list[str] | None = None
    kept: list[str] = field(default_factory=list)


def inert(relative: str) -> bool:
    """True for a file no loader reads: a hidden one (or one in a hidden folder) or a document."""
    parts = PurePosixPath(relative).parts
    return any(part.startswith(".") for part in parts) or PurePosixPath(relative).suffix.lower() in INERT_SUFFIXES


def listing(directory: Path) -> list[str]:
    """Every file under ``directory`` as a relative POSIX path, sorted; a link (to a file or a folder)
    counts as a file and is not followed."""
    found = []
    for root, folders, files in os.walk(directory, followlinks=False):
        here = Path(root)
        links = [name for name in folders if (here / name).is_symlink()]
        for name in [*files, *links]:
            found.append((here / name).relative_to(directory).as_posix())
    return sorted(found)


def _parts(relative: str, where: Path) -> tuple[str, ...]:
    """The parts of a relative path a manifest records; ExportError for one that could leave the folder."""
    parts = PurePosixPath(relative).parts
    odd = PurePosixPath(relative).as_posix() != relative or "\\" in relative
    if odd or not parts or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ExportError(f"{where / MANIFEST}: it records {relative!r}, which is not a path inside the export")
    return parts


def _regular_file(directory: Path, relative: str) -> Path | None:
    """``directory/relative`` when it is a regular file reached through no link; None when absent."""
    parts = _parts(relative, directory)
    path = directory.joinpath(*parts)
    for depth in range(1, len(parts) + 1):
        step = directory.joinpath(*parts[:depth])
        if step.is_symlink():
            raise ExportError(f"{step}: a link where the export has a file or folder (zoo writes no links)")
    if not path.exists():
        return None
    if not path.is_file():
        raise ExportError(f"{path}: not a file, where the export has one")
    return path


def record_files(directory: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "size"}}`` for every file under ``directory`` but the manifest."""
    record = {}
    for relative in listing(directory):
        path = directory / relative
        if relative == MANIFEST:
            continue
        if path.is_symlink():
            raise ExportError(f"{path}: the export format wrote a link; an export holds files only")
        record[relative] = {"sha256": sha256(path), "size": path.stat().st_size}
    return record


def seal_of(manifest: dict[str, Any]) -> str:
    """The SHA-256 of ``manifest``'s canonical JSON without its ``seal`` (see the module's docstring)."""
    body = {key: value for key, value in manifest.items() if key != "seal"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)  # an edited NaN: a mismatch
    return hashlib.sha256(text.encode()).hexdigest()


def sealed(manifest: dict[str, Any], directory: Path) -> dict[str, Any]:
    """``manifest`` as JSON will give it back (tuples as lists, other values as strings), with the
    record of every file in ``directory`` and the seal over both."""
    body = json.loads(json.dumps({**manifest, "files": record_files(directory)}, default=str))
    body.pop("seal", None)
    return {**body, "seal": seal_of(body)}


def check_files(directory: Path, manifest: dict[str, Any]) -> None:
    """That ``directory`` holds the export its manifest describes: the seal matches the manifest, every
    recorded file is there with its size and SHA-256, and no file a loader could read was added. The
    first difference is an ExportError of one line."""
    recorded, seal = manifest.get("files"), manifest.get("seal")
    if recorded is None or seal is None:
        raise ExportError(
            f"{directory / MANIFEST} records no file hashes (an export by an older zoo): export it again to verify it"
        )
    if seal_of(manifest) != seal:
        raise ExportError(
            f"{directory / MANIFEST} was edited after the export: its seal does not match its contents "
            "(the tolerance, the samples or a recorded hash changed)"
        )
    for relative, entry in recorded.items():
        path = _regular_file(directory, relative)
        if path is None:
            raise ExportError(f"{directory / relative}: missing ({MANIFEST} records it)")
        if path.stat().st_size != entry["size"] or sha256(path) != entry["sha256"]:
            raise ExportError(f"{path}: changed since the export (its SHA-256 is not the one {MANIFEST} records)")
    for relative in listing(directory):
        if relative != MANIFEST and relative not in recorded and not inert(relative):
            raise ExportError(
                f"{directory / relative}: not part of the export ({MANIFEST} does not record it) and a loader could "
                "read it; remove it, or export again"
            )


def _protected(target: Path) -> str | None:
    """What ``target`` is, when it is a folder no export may replace: the root, home, the current
    folder or one above it."""
    if target == Path(target.anchor):
        return "the filesystem root"
    try:
        if target == Path.home().resolve():
            return "your home folder"
    except (OSError, RuntimeError):  # no home folder: nothing to protect there
        pass
    try:
        here = Path.cwd().resolve()
    except OSError:  # the current folder was deleted
        return None
    if target == here:
        return "the current folder"
    if target in here.parents:
        return "a folder above the current one"
    return None


def _old_export(target: Path) -> dict[str, Any] | None:
    """The manifest of the zoo export in ``target``, or None when there is none that zoo wrote."""
    if not (target / MANIFEST).is_file() or (target / MANIFEST).is_symlink():
        return None
    try:
        return dict(read_json_file(target / MANIFEST, MANIFEST_SCHEMA, "an export's zoo-export.json"))
    except ZooError:
        return None


def check_target(output: str | os.PathLike, force: bool) -> Target:
    """Where an export to ``output`` goes and what it may replace there; ExportTargetError (one line,
    exit 2) for a folder it may not write (see the module's docstring)."""
    target = Path(output).resolve()
    what = _protected(target)
    if what:
        raise ExportTargetError(f"{target} is {what}: an export gets a folder of its own, e.g. -o {target / 'export'}")
    if not target.exists():
        return Target(target)
    if not target.is_dir():
        raise ExportTargetError(f"{target} is a file: give a new folder to export into")
    entries = listing(target)
    if not entries and not any(target.iterdir()):
        return Target(target)
    manifest = _old_export(target)
    if manifest is None:
        first = next(iter(entries), None) or next(iter(sorted(p.name for p in target.iterdir())))
        raise ExportTargetError(
            f"{target} exists and is not a zoo export (it holds {first}): export into a new or empty folder; "
            "zoo export never writes into a folder it did not make"
        )
    if not force:
        raise ExportTargetError(f"{target} holds a zoo export: pass --force (force=True) to replace it")
    recorded = manifest.get("files")
    if recorded is None:
        raise ExportTargetError(
            f"{target} holds an export by an older zoo, which did not record its files, so zoo cannot tell them "
            "from yours: delete it yourself or export elsewhere"
        )
    _check_replaceable(target, recorded)
    kept = [name for name in entries if name != MANIFEST and name not in recorded]
    loadable = [name for name in kept if not inert(name)]
    if loadable:
        raise ExportTargetError(
            f"{target / loadable[0]} is not part of the zoo export there and a loader could read it: move it out "
            "of the folder and run again (--force replaces only the files the export recorded)"
        )
    return Target(target, replaced=sorted(recorded), kept=kept)


def _check_replaceable(target: Path, recorded: dict[str, Any]) -> None:
    """Each file the old export recorded is absent or exactly as zoo wrote it: an edited one is the user's."""
    for relative, entry in recorded.items():
        try:
            path = _regular_file(target, relative)
        except ExportError as exc:
            raise ExportTargetError(str(exc)) from None
        if path is not None and (path.stat().st_size != entry["size"] or sha256(path) != entry["sha256"]):
            raise ExportTargetError(
                f"{path} was changed since zoo exported it: move it out of the folder (it is yours now) and run "
                "again; --force replaces only files exactly as zoo wrote them"
            )


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A new hidden folder beside ``target`` (on its file system) to write the export into; removed
    at the end, whatever happens (`publish` moves what it holds into place)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise ExportTargetError(f"{target}: cannot write beside it ({exc.strerror or exc})") from None
    try:
        os.chmod(staging, NEW_DIRECTORY_MODE)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, target: Path, force: bool, files: Iterable[str]) -> None:
    """Move the export in ``staging`` (its ``files`` and the manifest) to ``target``, checking the
    target again (it may have changed while the export was written). A new or empty folder is
    replaced by one rename; an old export's recorded files are removed, then the new manifest and
    files moved in: a crash between leaves a folder that ``--verify`` refuses and ``--force`` replaces."""
    plan = check_target(target, force)
    files = list(files)
    if plan.replaced is None:
        try:
            if target.exists():
                target.rmdir()  # empty: rmdir refuses a folder someone has written into since
            os.replace(staging, target)
        except OSError as exc:
            raise ExportTargetError(f"{target}: cannot put the export there ({exc.strerror or exc})") from None
        return
    for name in files:
        clash = next((k for k in plan.kept if k == name or name.startswith(k + "/") or k.startswith(name + "/")), None)
        if clash:
            raise ExportTargetError(
                f"{target / clash} is not part of the zoo export there and the new export writes {name}: "
                "move it out of the folder and run again"
            )
    try:
        _replace(staging, target, plan.replaced, files)
    except OSError as exc:
        raise ExportError(
            f"{target}: replacing the export failed ({exc.strerror or exc}); its files are partly replaced: "
            "export again with --force"
        ) from None


def _replace(staging: Path, target: Path, replaced: list[str], files: list[str]) -> None:
    """Remove the old export's ``replaced`` files (and the folders they leave empty), then move the new
    manifest and ``files`` from ``staging`` into ``target``."""
    for name in replaced:
        (target / name).unlink(missing_ok=True)
    parents = {p for name in replaced for p in PurePosixPath(name).parents}
    for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        path = target / folder
        if str(folder) != "." and path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
    os.replace(staging / MANIFEST, target / MANIFEST)  # first: a crash from here on leaves files it records
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, target / name)
