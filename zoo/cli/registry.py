"""`zoo list`, `info`, `plugins`, `datasets` and `tasks`: what is registered, read from specs."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from typing import Any

import click

from zoo import api
from zoo.cli.app import MODALITY_CHOICE, cli, echo_json, human_count, table
from zoo.preprocessing import ImagePreprocessing


@cli.command("list")
@click.argument("pattern", default="*")
@click.option("--modality", "-m", type=MODALITY_CHOICE, help="Only backbones of this modality.")
@click.option("--task", "-t", help="Only backbones that support this task, e.g. text-classification.")
@click.option("--pretrained/--scratch", default=None, help="Only backbones with (or without) pretrained weights.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(pattern: str, modality: str | None, task: str | None, pretrained: bool | None, as_json: bool) -> None:
    """List registered backbones whose name matches PATTERN (shell wildcards, e.g. 'vision/*lite*')."""
    specs = api.list_backbones(pattern, modality, task, pretrained, specs=True)
    if as_json:
        return echo_json([spec.to_dict() for spec in specs])
    if not specs:
        click.echo(f"no backbone matches {pattern!r}" + (f" with modality {modality}" if modality else ""), err=True)
        return
    rows = [
        (
            s.name,
            s.modality,
            s.embed_dim,
            human_count(s.params),
            ",".join(w.tag for w in s.weights) or "scratch",
            s.license,
            s.plugin,
        )
        for s in specs
    ]
    click.echo(table(("name", "modality", "dim", "params", "weights", "license", "plugin"), rows))


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(name: str, as_json: bool) -> None:
    """Describe backbone NAME: modality, size, license, weights, preprocessing, tasks.

    NAME may be a local file or folder (a saved backbone, a Hugging Face, timm, open_clip or
    hubconf.py folder): it is loaded, and how it loads and its preprocessing are shown.
    """
    local = api.local_path(name)
    if local is not None:
        return _info_path(name, local[0], as_json)
    spec = api.get_spec(name)
    if as_json:
        return echo_json(spec.to_dict())
    lines = [
        ("name", spec.name),
        ("aliases", ", ".join(spec.aliases)),
        ("modality", spec.modality),
        ("embed dim", spec.embed_dim),
        ("parameters", f"{spec.params:,}" if spec.params else None),
        ("GFLOPs/sample", spec.gflops),
        ("license", spec.license),
        ("tasks", ", ".join(spec.tasks)),
        ("plugin", spec.plugin),
        ("factory", spec.factory),
        ("description", spec.description),
    ]
    for key, value in lines:
        if value not in (None, ""):
            click.echo(f"{key + ':':15} {value}")
    if not spec.weights:
        click.echo(f"{'weights:':15} none: trained from scratch (zoo.load(..., pretrained=False))")
    for index, weights in enumerate(spec.weights):
        default = " (default)" if index == 0 else ""
        click.echo(f"weights {weights.tag}{default}:")
        click.echo(f"  source:        {weights.source}")
        if weights.license:
            click.echo(f"  license:       {weights.license}")
        if weights.requires:
            click.echo(f"  install:       pip install {' '.join(weights.requires)}")
        if weights.preprocessing is not None:
            kind = "image" if isinstance(weights.preprocessing, ImagePreprocessing) else "text"
            click.echo(f"  preprocessing: {kind}")
            for key, value in weights.preprocessing.to_dict().items():
                if value is not None:
                    click.echo(f"    {key + ':':14} {value}")


def _info_path(name: str, path: str, as_json: bool) -> None:
    """``zoo info PATH`` (``name``, the local ``path`` it names): load the local model, then say how it
    loaded and what it carries."""
    model = api.load(name)
    facts = {
        "path": os.path.abspath(path),
        "loads as": f"{model.name} (plugin {model.spec.plugin})",
        "modality": model.modality,
        "embed dim": model.embed_dim,
        "parameters": f"{model.num_params():,}",
        "preprocessing": model.preprocessing,
    }
    if as_json:
        return echo_json(facts)
    for key, value in facts.items():
        if key != "preprocessing":
            click.echo(f"{key + ':':15} {value}")
    for part, fields in model.preprocessing.items():
        click.echo(f"{part} preprocessing:")
        for key, value in fields.items():
            if value is not None:
                click.echo(f"  {key + ':':14} {value}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--requirements", is_flag=True, help="Print pip requirements that reinstall this plugin set.")
def plugins(as_json: bool, requirements: bool) -> None:
    """List plugins: name, distribution, version, status, hooks, backbones, errors."""
    infos = api.plugins()
    if requirements:
        lines = dict.fromkeys(info.requirement for info in infos if info.requirement)
        return click.echo("\n".join(lines))
    if as_json:
        return echo_json([info.to_dict() for info in infos])
    rows = [
        (
            i.name,
            i.distribution,
            i.version,
            i.status,
            len(i.backbones),
            len(i.datasets),
            len(i.tasks),
            len(i.path_formats),
            len(i.export_formats),
            f"{i.load_seconds * 1000:.0f}",
            ",".join(h.replace("register_", "") for h in i.hooks),
        )
        for i in infos
    ]
    click.echo(
        table(
            (
                "plugin",
                "distribution",
                "version",
                "status",
                "backbones",
                "datasets",
                "tasks",
                "paths",
                "exports",
                "ms",
                "hooks",
            ),
            rows,
        )
    )
    for info in infos:
        if info.error and info.status == "failed":
            click.echo(f"{info.name}: {info.error}")


@cli.command()
@click.argument("name", required=False)
def datasets(name: str | None) -> None:
    """List registered data sets; with NAME, describe one and the data_options its reader takes."""
    if name is None:
        specs = api.list_datasets()
        click.echo(
            table(
                ("name", "kind", "license", "plugin", "description"),
                ((s.name, s.kind, s.license, s.plugin, s.description) for s in specs),
            )
        )
        return
    from zoo.data import dataset_reader
    from zoo.signatures import keyword_options

    spec, reader = dataset_reader(name)
    options = keyword_options(reader)
    _describe(
        (
            ("name", spec.name),
            ("kind", spec.kind),
            ("license", spec.license),
            ("plugin", spec.plugin),
            ("description", spec.description),
        ),
        "data_options",
        None if options is None else {k: f"default {v!r}" for k, v in options.items()},
    )
    if reader.__doc__:
        click.echo("\n" + inspect.cleandoc(reader.__doc__))


@cli.command()
@click.argument("name", required=False)
def tasks(name: str | None) -> None:
    """List registered tasks; with NAME, describe one: modes, metrics and its task_options."""
    if name is None:
        specs = api.list_tasks()
        click.echo(
            table(
                ("name", "modalities", "metrics", "plugin"),
                ((s.name, ",".join(s.modalities), ",".join(s.metrics), s.plugin) for s in specs),
            )
        )
        return
    from zoo.tasks import get_task

    spec, task = get_task(name)
    _describe(
        (
            ("name", spec.name),
            ("modes", ", ".join(task.modes) + f" (default {task.modes[0]})"),
            ("modalities", ", ".join(spec.modalities)),
            ("metrics", ", ".join(spec.metrics)),
            ("plugin", spec.plugin),
            ("description", spec.description),
        ),
        "task_options",
        task.option_help,
    )


def _describe(fields: Iterable[tuple[str, Any]], kind: str, options: dict[str, str] | None) -> None:
    """``zoo tasks NAME`` and ``zoo datasets NAME``: the spec's fields, then the options a recipe may set."""
    for key, value in fields:
        if value:
            click.echo(f"{key + ':':13} {value}")
    if options is None:
        click.echo(f"{kind}: not declared by the plugin (any key is passed on)")
        return
    click.echo(f"{kind}:" + ("" if options else " none"))
    for option, text in options.items():
        click.echo(f"  {option:19} {text}")
