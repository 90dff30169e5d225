"""``zoo protocols``: the published evaluation procedures a recipe or compare cell can select."""

from __future__ import annotations

import click

from zoo.cli.app import cli, echo_json, table


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def protocols(name: str | None, as_json: bool) -> None:
    """List the evaluation protocols; with NAME, describe one.

    A recipe (or compare cell) with `protocol: NAME` scores the frozen backbone exactly as that
    leaderboard does (MTEB, MIEB, CLIP_benchmark) instead of training, and its result records the
    protocol; compare keeps numbers of different protocols in different columns. Example:

        zoo run recipes/sst2-minilm-probe.yaml --set protocol=mteb-classification
    """
    from zoo.tasks.protocols import PROTOCOLS, get_protocol

    if name is None:
        if as_json:
            return echo_json(
                [
                    {**p.record(), "task": p.task, "mode": p.mode, "primary_metric": p.primary_metric}
                    for p in PROTOCOLS.values()
                ]
            )
        rows = ((p.name, p.task, p.primary_metric, p.source) for p in PROTOCOLS.values())
        click.echo(table(("name", "task", "headline", "source"), rows))
        return
    protocol = get_protocol(name)
    record = {
        **protocol.record(),
        "task": protocol.task,
        "mode": protocol.mode,
        "primary_metric": protocol.primary_metric,
        "description": protocol.description,
    }
    if as_json:
        return echo_json(record)
    for key, value in record.items():
        click.echo(f"{key + ':':15} {value}")
