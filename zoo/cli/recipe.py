"""`zoo recipe keys` and the key table that ends `zoo run --help`: every recipe key with its type,
default, range and one line of help, read from the `zoo.recipes.Recipe` dataclass."""

from __future__ import annotations

import json

import click

from zoo.cli.app import cli, echo_json


def keys_table() -> str:
    """The recipe keys as aligned text: key, type, default (or "required"), then help and range."""
    from zoo.recipes import recipe_keys

    shown = [
        (
            row["key"],
            row["type"],
            "required" if row["required"] else json.dumps(row["default"]),
            row["help"] + (f" ({row['range']})" if row["range"] else ""),
        )
        for row in recipe_keys()
    ]
    widths = [max(len(cells[i]) for cells in shown) for i in range(3)]
    return "\n".join(f"{k:{widths[0]}}  {t:{widths[1]}}  {d:{widths[2]}}  {h}".rstrip() for k, t, d, h in shown)


class RunCommand(click.Command):
    """`zoo run`: its help ends with every recipe key (generated, so it cannot go stale)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        with formatter.section("Recipe keys (a YAML file's keys, or --set KEY=VALUE; type, default, meaning)"):
            for line in keys_table().splitlines():
                formatter.write(" " * formatter.current_indent + line + "\n")


@cli.group()
def recipe() -> None:
    """What a recipe file may say."""


@recipe.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys(as_json: bool) -> None:
    """Every recipe key: type, default, allowed values and what it does.

    \b
    Paths in a recipe file are relative to its folder; paths given by --set
    to the current directory. The run's recipe.yaml stores them absolute.
    """
    from zoo.recipes import recipe_keys

    if as_json:
        echo_json(recipe_keys())
    else:
        click.echo(keys_table())
