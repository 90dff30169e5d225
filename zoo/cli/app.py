"""The `zoo` command group, its table and JSON output, and `main`: one line per error."""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import click

from zoo.errors import PluginWarning, ZooError
from zoo.specs import MODALITIES, MODALITY_ALIASES


def human_count(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["-" if cell in (None, "") else str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    return "\n".join(lines)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


MODALITY_CHOICE = click.Choice(sorted({*MODALITIES, *MODALITY_ALIASES}), case_sensitive=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zoo", prog_name="zoo")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """zoo: one registry of text, vision and CLIP-style backbones from plugins.

    \b
    Examples:
      zoo list 'vision/*lite*'        backbones matching a wildcard
      zoo info text/minilm-l6         what a backbone is and where its weights come from
      zoo plugins                     installed plugins, their status and errors

    Environment: ZOO_STRICT_PLUGINS=1 makes plugin failures errors;
    ZOO_LOAD_PLUGINS / ZOO_BLOCK_PLUGINS (comma-separated) choose plugins.
    """


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, PluginWarning):
        click.echo(f"zoo: warning: {message}", err=True)
    else:
        click.echo(f"zoo: warning: {category.__name__}: {message}", err=True)


def _exit_with_parent() -> None:
    """End this process when its parent dies (Linux): a compare cell whose Ray worker was killed."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `zoo` console script; returns the exit code."""
    if os.environ.pop("ZOO_EXIT_WITH_PARENT", None):  # set by zoo compare for its cells' processes
        _exit_with_parent()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("ZOO_DEBUG", "") not in ("", "0")
    warnings.showwarning = _show_warning
    try:
        # a command's `raise click.exceptions.Exit(1)` comes back as its code (zoo list matching nothing)
        code = cli.main(args=args, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("zoo: aborted", err=True)
        return 130
    except ZooError as exc:
        if debug:
            raise
        click.echo(f"zoo: error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug: one line unless --debug
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"zoo: error: {type(exc).__name__}: {first} (run with --debug for the traceback)", err=True)
        return 1
    return code if isinstance(code, int) and not isinstance(code, bool) else 0
