"""`zoo list`, `info`, `plugins`, `datasets` and `tasks`: what is registered, read from specs."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Iterable
from typing import Any

import click

from zoo import api
from zoo.cli.app import MODALITY_CHOICE, cli, echo_json, human_count, table
from zoo.hub import distribution_installed, offline_status, weights_offline
from zoo.preprocessing import ImagePreprocessing
from zoo.specs import BackboneSpec, Weights


def _offline_mark(offline: bool | None) -> str:
    return {True: "yes", False: "no", None: "-"}[offline]


def _spec_json(spec: BackboneSpec) -> dict[str, Any]:
    """A backbone spec for --json: its fields, and whether each set of weights (and the default) is offline."""
    out = spec.to_dict()
    for weights, entry in zip(spec.weights, out["weights"], strict=True):
        entry["offline"] = weights_offline(weights)
    out["offline"] = offline_status(spec)
    default = spec.weights[0] if spec.weights else None
    out["head"] = _head(default.head_labels, default.head_classes) if default else None
    return out


def _head(label_set: str, classes: int | None) -> dict[str, Any] | None:
    """The pretrained classifier ``mode: pretrained-head`` scores, for --json (None: there is none)."""
    return None if classes is None else {"label_set": label_set or None, "classes": classes}


def _head_text(head: dict[str, Any] | None) -> str:
    if head is None:
        return "none (no pretrained classifier: mode pretrained-head does not apply)"
    return f"{head['label_set'] or 'own labels'}, {head['classes']:,} classes (mode pretrained-head scores it)"


@cli.command("list")
@click.argument("pattern", default="*")
@click.option("--modality", "-m", type=MODALITY_CHOICE, help="Only backbones of this modality.")
@click.option("--task", "-t", help="Only backbones that support this task (see `zoo tasks`), e.g. text-classification.")
@click.option("--pretrained/--scratch", default=None, help="Only backbones with (or without) pretrained weights.")
@click.option(
    "--offline", is_flag=True, help="Only backbones that load here without a download (weights installed, or scratch)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(
    pattern: str, modality: str | None, task: str | None, pretrained: bool | None, offline: bool, as_json: bool
) -> None:
    """List registered backbones whose name matches PATTERN (shell wildcards, e.g. 'vision/*lite*').

    OFFLINE says whether a backbone's default weights are installed here (a pip weight package,
    or local files), "no" when loading it downloads them (`zoo info NAME` says from where), and
    "-" for one trained from scratch.

    \b
    Exit status (like grep): 0 when something matches, 1 when nothing does
    (one line on stderr), 2 for an unknown task or modality or a bad pattern.
    """
    specs = api.list_backbones(pattern, modality, task, pretrained, specs=True)
    if offline:
        specs = [spec for spec in specs if offline_status(spec) is not False]
    if as_json:
        echo_json([_spec_json(spec) for spec in specs])
    elif specs:
        rows = [
            (
                s.name,
                s.modality,
                s.embed_dim,
                human_count(s.params),
                ",".join(w.tag for w in s.weights) or "scratch",
                _offline_mark(offline_status(s)),
                s.license,
                s.plugin,
            )
            for s in specs
        ]
        click.echo(table(("name", "modality", "dim", "params", "weights", "offline", "license", "plugin"), rows))
    if not specs:
        filters = [f"{key} {value}" for key, value in (("modality", modality), ("task", task)) if value]
        filters += [] if pretrained is None else ["pretrained" if pretrained else "scratch"]
        filters += ["offline"] if offline else []
        where = f" with {', '.join(filters)}" if filters else ""
        click.echo(f"zoo: no backbone matches {pattern!r}{where}; run 'zoo list' to see them all", err=True)
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (snake_case keys, numbers as numbers).")
def info(name: str, as_json: bool) -> None:
    """Describe backbone NAME: modality, size, license, weights (and whether they are installed here),
    preprocessing, tasks.

    NAME may be a local file or folder (a saved backbone, a Hugging Face, timm, open_clip or
    hubconf.py folder): it is loaded, and how it loads and its preprocessing are shown.
    """
    local = api.local_path(name)
    if local is not None:
        return _info_path(name, local[0], as_json)
    spec = api.get_spec(name)
    facts = _spec_json(spec)
    if as_json:
        return echo_json(facts)
    lines = [
        ("name", spec.name),
        ("aliases", ", ".join(spec.aliases)),
        ("modality", spec.modality),
        ("embed dim", spec.embed_dim),
        ("parameters", f"{spec.params:,}" if spec.params else None),
        ("GFLOPs/sample", spec.gflops),
        ("license", spec.license),
        ("tasks", ", ".join(spec.tasks)),
        ("head", _head_text(facts["head"])),
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
        click.echo(f"  offline:       {_offline_text(weights)}")
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


def _offline_text(weights: Weights) -> str:
    """``zoo info``'s line on whether ``weights`` are installed here, and what to do if not."""
    if weights_offline(weights):
        return "yes: installed here"
    missing = [r for r in weights.requires if not distribution_installed(r)]
    if missing:
        return f"no: pip install {' '.join(missing)}"
    if weights.files:
        return "no: missing " + ", ".join(weights.files)
    return "no: downloaded on first load (needs the network)"


def _adapter(adapter: Any) -> dict[str, Any] | None:
    """What ``zoo info`` says of the adapter a saved model carries (a `zoo.adapters.Adapter`), if any."""
    if adapter is None:
        return None
    settings = adapter.settings
    return {
        "method": settings["method"],
        "r": settings["r"],
        "alpha": settings["alpha"],
        "layers": len(adapter.targets),
        "towers": adapter.towers,
        "base": adapter.base["name"],
        "base_sha256": adapter.base["sha256"],
    }


def _info_path(name: str, path: str, as_json: bool) -> None:
    """``zoo info PATH`` (``name``, the local ``path`` it names): load the local model, then say how it
    loaded and what it carries."""
    model = api.load(name)
    classes = model.pretrained_classes
    head = None if classes is None else _head(classes.label_set, len(classes))
    adapter = _adapter(model.adapter)
    if as_json:
        return echo_json(
            {
                "path": os.path.abspath(path),
                "backbone": model.name,
                "plugin": model.spec.plugin,
                "modality": model.modality,
                "embed_dim": model.embed_dim,
                "parameters": model.num_params(),
                "preprocessing": model.preprocessing,
                "head": head,
                "adapter": adapter,
            }
        )
    facts = {
        "path": os.path.abspath(path),
        "loads as": f"{model.name} (plugin {model.spec.plugin})",
        "modality": model.modality,
        "embed dim": model.embed_dim,
        "parameters": f"{model.num_params():,}",
        "head": _head_text(head),
    }
    if adapter is not None:
        towers = ", ".join(f"{t} {mode}" for t, mode in (adapter["towers"] or {}).items())
        facts["adapter"] = (
            f"{adapter['method']} rank {adapter['r']}, alpha {adapter['alpha']}, on {adapter['layers']} layers"
            f"{f' ({towers})' if towers else ''}; base {adapter['base']} (weights {adapter['base_sha256'][:12]})"
        )
    for key, value in facts.items():
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
@click.option(
    "--option",
    "-o",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="With FILE: read it with this data option (repeatable), e.g. -o test_fraction=0.2 -o delimiter=';'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def datasets(name: str | None, options: tuple[str, ...], as_json: bool) -> None:
    """List registered data sets; with NAME, describe one and the data_options its reader takes.

    NAME may also be your own file or folder (FILE): a .csv/.tsv/.jsonl table of texts and labels
    (or of images and captions), a .txt corpus, or a folder of class folders. It is read as a recipe
    would read it, and zoo shows the columns found and which are text and label, the delimiter, the
    rows, the classes with their counts, the splits it would get, warnings, and the data_options
    your files take: text_column, label_column, delimiter, test_fraction, validation_fraction,
    test_file, validation_file, seed (with their types and defaults).

    \b
    Examples:
      zoo datasets                                  the registered data sets
      zoo datasets sst2                             one of them and its data_options
      zoo datasets reviews.csv -o test_fraction=0.2 what a recipe with data: reviews.csv gets
    """
    from pathlib import Path

    from zoo.data import DATA_SUFFIXES

    if name is not None and (os.path.exists(name) or os.sep in name or Path(name).suffix in DATA_SUFFIXES):
        from zoo.cli.data_file import describe_file, format_description, parse_options

        facts = describe_file(Path(name), parse_options(options))
        return echo_json(facts) if as_json else click.echo(format_description(facts))
    if options:
        raise click.UsageError("-o/--option applies to a file or folder (zoo datasets FILE -o KEY=VALUE)")
    if name is None:
        specs = api.list_datasets()
        if as_json:
            return echo_json([dataclasses.asdict(spec) for spec in specs])
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
    reader_options = keyword_options(reader)
    if as_json:
        doc = inspect.cleandoc(reader.__doc__) if reader.__doc__ else None
        return echo_json({**dataclasses.asdict(spec), "data_options": reader_options, "reader_doc": doc})
    _describe(
        (
            ("name", spec.name),
            ("kind", spec.kind),
            ("license", spec.license),
            ("plugin", spec.plugin),
            ("description", spec.description),
        ),
        "data_options",
        None if reader_options is None else {k: f"default {v!r}" for k, v in reader_options.items()},
    )
    if reader.__doc__:
        click.echo("\n" + inspect.cleandoc(reader.__doc__))


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tasks(name: str | None, as_json: bool) -> None:
    """List registered tasks; with NAME, describe one: modes, metrics and its task_options."""
    if name is None:
        specs = api.list_tasks()
        if as_json:
            return echo_json([dataclasses.asdict(spec) for spec in specs])
        click.echo(
            table(
                ("name", "modalities", "metrics", "plugin"),
                ((s.name, ",".join(s.modalities), ",".join(s.metrics), s.plugin) for s in specs),
            )
        )
        return
    from zoo.tasks import get_task

    spec, task = get_task(name)
    if as_json:
        modes = {"modes": list(task.modes), "default_mode": task.modes[0]}
        return echo_json({**dataclasses.asdict(spec), **modes, "task_options": task.option_help})
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
