"""What a function takes, and "did you mean" for a name it does not: the checks of options given to a
plugin's factory, a data set's reader or a recipe, each answered with one line."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any


def nearest_key_hint(key: str, known: Iterable[str], otherwise: str, aliases: Mapping[str, str] | None = None) -> str:
    """'did you mean ...?' for a misspelt key, else ``otherwise`` (say, the keys there are).

    ``aliases`` maps other names for a known key to it; the key is matched against those names
    too, and a close alias suggests the known key it stands for."""
    names = {name: name for name in known}
    for alias, target in (aliases or {}).items():
        if target in names:
            names.setdefault(alias, target)
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.5)
    return f"did you mean {names[close[0]]!r}?" if close else otherwise


def keyword_options(function: Any, skip: int = 1) -> dict[str, Any] | None:
    """``function``'s keyword parameters after its first ``skip``, with their defaults; None if it takes **kwargs."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name: p.default for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_keywords(
    function: Any, given: Mapping[str, Any], what: str, kind: str, error: type[Exception], skip: int = 1
) -> None:
    """A keyword that ``function`` does not take raises ``error``, naming it, the nearest and those it takes.

    A function that takes ``**kwargs`` checks its own (a plugin's factory or reader may).
    """
    known = keyword_options(function, skip)
    if known is None:
        return
    for key in given:
        if key not in known:
            hint = nearest_key_hint(key, known, "")
            raise error(
                f"{what} has no {kind} {key!r} (its {kind}s: {', '.join(known) or 'none'})"
                + (f"; {hint}" if hint else "")
            )
