"""Which local folders the PyTorch Hub plugin loads: a folder holding ``hubconf.py``.

The file is parsed, never run, to list its entry points; running it is the caller's choice
(``trust_repo=True``) when the model is built.
"""

from __future__ import annotations

import ast
from pathlib import Path

import zoo
from zoo import FileError

HUBCONF = "hubconf.py"


def entry_points(repo_dir: Path) -> list[str]:
    """The public functions ``hubconf.py`` defines at its top level (its hub entry points), read by parsing."""
    source = repo_dir / HUBCONF
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (SyntaxError, ValueError, OSError) as exc:
        raise FileError(f"{source}: not a readable Python file ({exc})") from None
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")]


def claim_folder(path: Path) -> zoo.PathClaim | None:
    if not path.is_dir() or not (path / HUBCONF).is_file():
        return None
    entries = entry_points(path)
    if not entries:
        raise FileError(f"{path / HUBCONF} defines no entry point (a public top-level function)")
    options = {"repo_dir": str(path.resolve())}
    if len(entries) == 1:
        options["entry"] = entries[0]
    return zoo.PathClaim(backbone="vision/torchhub", options=options)
