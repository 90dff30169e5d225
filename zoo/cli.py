"""The `zoo` command.

Errors a user can cause print one line (``zoo: error: ...``) and exit non-zero;
``--debug`` (or ``ZOO_DEBUG=1``) shows the traceback instead. Plugin problems are
warnings (``zoo: warning: ...``) and never stop a command.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import warnings
from typing import Any, Iterable, Sequence

import click

from zoo import api
from zoo.errors import PluginWarning, ZooError
from zoo.preprocessing import ImagePreprocessing
from zoo.specs import MODALITIES, MODALITY_ALIASES


def _human_count(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["-" if cell in (None, "") else str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _echo_json(data: Any) -> None:
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
        return _echo_json([spec.to_dict() for spec in specs])
    if not specs:
        click.echo(f"no backbone matches {pattern!r}" + (f" with modality {modality}" if modality else ""), err=True)
        return
    rows = [
        (s.name, s.modality, s.embed_dim, _human_count(s.params), ",".join(w.tag for w in s.weights) or "scratch",
         s.license, s.plugin)
        for s in specs
    ]
    click.echo(_table(("name", "modality", "dim", "params", "weights", "license", "plugin"), rows))


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
        return _info_path(name, as_json)
    spec = api.get_spec(name)
    if as_json:
        return _echo_json(spec.to_dict())
    lines = [
        ("name", spec.name), ("aliases", ", ".join(spec.aliases)), ("modality", spec.modality),
        ("embed dim", spec.embed_dim), ("parameters", f"{spec.params:,}" if spec.params else None),
        ("GFLOPs/sample", spec.gflops), ("license", spec.license), ("tasks", ", ".join(spec.tasks)),
        ("plugin", spec.plugin), ("factory", spec.factory), ("description", spec.description),
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


def _info_path(name: str, as_json: bool) -> None:
    """``zoo info PATH``: load the local model, then say how it loaded and what it carries."""
    model = api.load(name)
    facts = {"path": os.path.abspath(api.local_path(name)[0]), "loads as": f"{model.name} (plugin {model.spec.plugin})",
             "modality": model.modality, "embed dim": model.embed_dim, "parameters": f"{model.num_params():,}",
             "preprocessing": model.preprocessing}
    if as_json:
        return _echo_json(facts)
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
        return _echo_json([info.to_dict() for info in infos])
    rows = [
        (i.name, i.distribution, i.version, i.status, len(i.backbones), len(i.datasets), len(i.tasks),
         len(i.path_formats), f"{i.load_seconds * 1000:.0f}", ",".join(h.replace("register_", "") for h in i.hooks))
        for i in infos
    ]
    click.echo(_table(("plugin", "distribution", "version", "status", "backbones", "datasets", "tasks", "formats",
                       "ms", "hooks"), rows))
    for info in infos:
        if info.error and info.status == "failed":
            click.echo(f"{info.name}: {info.error}")


@cli.command()
@click.argument("name", required=False)
def datasets(name: str | None) -> None:
    """List registered data sets; with NAME, describe one and the data_options its reader takes."""
    if name is None:
        specs = api.list_datasets()
        click.echo(_table(("name", "kind", "license", "plugin", "description"),
                          ((s.name, s.kind, s.license, s.plugin, s.description) for s in specs)))
        return
    from zoo.data import dataset_reader
    from zoo.signatures import keyword_options

    spec, reader = dataset_reader(name)
    options = keyword_options(reader)
    _describe((("name", spec.name), ("kind", spec.kind), ("license", spec.license), ("plugin", spec.plugin),
               ("description", spec.description)), "data_options",
              None if options is None else {k: f"default {v!r}" for k, v in options.items()})
    if reader.__doc__:
        click.echo("\n" + inspect.cleandoc(reader.__doc__))


@cli.command()
@click.argument("name", required=False)
def tasks(name: str | None) -> None:
    """List registered tasks; with NAME, describe one: modes, metrics and its task_options."""
    if name is None:
        specs = api.list_tasks()
        click.echo(_table(("name", "modalities", "metrics", "plugin"),
                          ((s.name, ",".join(s.modalities), ",".join(s.metrics), s.plugin) for s in specs)))
        return
    from zoo.tasks import get_task

    spec, task = get_task(name)
    _describe((("name", spec.name), ("modes", ", ".join(task.modes) + f" (default {task.modes[0]})"),
               ("modalities", ", ".join(spec.modalities)), ("metrics", ", ".join(spec.metrics)),
               ("plugin", spec.plugin), ("description", spec.description)), "task_options", task.option_help)


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


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key (repeatable): --set lr=3e-5 --set data_options.seed=1")
@click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint.")
@click.option("--data-root", type=click.Path(file_okay=False), help="Folder of the named data sets (else ZOO_DATA).")
def run(recipe: str, overrides: tuple[str, ...], resume: bool, data_root: str | None) -> None:
    """Train and evaluate as RECIPE (a YAML file) says; results go to runs/NAME/.

    \b
    Examples:
      zoo run recipes/sst2-minilm-finetune.yaml
      zoo run recipes/sst2-minilm-finetune.yaml --set epochs=0.5 --set name=short
      torchrun --nproc_per_node=2 -m zoo run recipes/sst2-minilm-finetune.yaml
      zoo run recipes/bert-tiny-mlm-pretrain.yaml          # then --set model=runs/NAME/model/backbone

    \b
    Tasks and their modes (the first is the default; `zoo tasks` lists them):
      text-/image-classification  finetune | linear-probe
      retrieval                   zero-shot | contrastive
      zero-shot-classification    zero-shot
      pretraining                 pretrain (the backbone's objective: MLM, causal LM, SimCLR, InfoNCE)
    Every recipe key, its type and default: zoo/recipes.py (class Recipe).
    """
    from zoo.recipes import load_recipe

    extra = [*overrides, *([f"data_root={data_root}"] if data_root else [])]
    checked = load_recipe(recipe, extra)  # a bad recipe is reported before torch is imported
    from zoo.engine import run as run_recipe

    results = run_recipe(checked, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(json.dumps({"run_dir": results["run_dir"], "metrics": results["metrics"],
                               "train": results["train"]}, indent=2))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--split", help="Split to evaluate (default: the run's eval split), e.g. test.")
@click.option("--data-root", type=click.Path(file_okay=False), help="Folder of the named data sets (else ZOO_DATA).")
def evaluate(run_dir: str, split: str | None, data_root: str | None) -> None:
    """Evaluate the model a finished run saved in RUN_DIR."""
    from zoo.recipes import load_finished_run

    load_finished_run(run_dir)  # a folder that holds no finished run is reported before torch is imported
    from zoo.engine import evaluate_run

    _echo_json(evaluate_run(run_dir, split, data_root))


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise click.BadParameter(f"{value!r} is not I/N with 1 <= I <= N (e.g. 1/4)")
    return int(index), int(count)


@cli.command()
@click.argument("spec", nargs=-1, required=True)
@click.option("--merge", "merge_dirs", is_flag=True, help="SPEC... are result directories to join into one table.")
@click.option("--output", "-o", help="Results directory (default: the spec's output_dir; required with --merge).")
@click.option("--data-root", type=click.Path(file_okay=False), help="Folder of the named data sets (else ZOO_DATA).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cells to run at once here, each in its own process with an equal share of the CPU cores "
                   "and, with several GPUs, one GPU each.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where cells run: processes on this machine, or Ray tasks (pip install 'zoo[ray]'), each "
                   "asking for its cell's resources: {num_cpus, num_gpus}.")
@click.option("--address", metavar="ADDR", help="With --executor ray: the cluster to join (auto, or HOST:PORT of "
              "`ray start --head`); without it Ray starts on this machine.")
@click.option("--shard", metavar="I/N", callback=_shard, help="Run only shard I of N (whole rows) into "
              "OUTPUT/shard-I-of-N, e.g. one per Slurm array task; join them with --merge.")
def compare(spec: tuple[str, ...], merge_dirs: bool, output: str | None, data_root: str | None, jobs: int,
            executor: str, address: str | None, shard: tuple[int, int] | None) -> None:
    """Compare backbones across tasks as SPEC (YAML) says; write table.md/.csv/.json, plots and report.html.

    \b
    Cells already computed with the same recipe and library versions are reused,
    so an interrupted compare continues, and a second run is quick.
    Examples:
      zoo compare recipes/quickstart.yaml
      zoo compare recipes/quickstart.yaml -j 2        two cells at a time
      zoo compare recipes/quickstart.yaml --executor ray --address auto
      zoo compare recipes/quickstart.yaml --shard 2/4  (then --merge the shards)
      zoo compare --merge results/laptop results/gpu-box -o results/all
    """
    from zoo.comparisons import load_spec, merge, run_compare
    from zoo.comparisons.table import markdown

    if merge_dirs:
        if not output:
            raise click.UsageError("--merge needs --output DIR for the joined table")
        table = merge(list(spec), output)
        out = output
    else:
        if len(spec) != 1:
            raise click.UsageError("give one compare spec (or --merge with result directories)")
        overrides = {k: v for k, v in (("output_dir", output), ("data_root", data_root)) if v}
        loaded = load_spec(spec[0], overrides)
        table = run_compare(loaded, progress=lambda line: click.echo(line, err=True), jobs=jobs, bar=True,
                            executor=executor, address=address, shard_of=shard)
        out = os.path.join(loaded.output_dir, f"shard-{shard[0]}-of-{shard[1]}") if shard else loaded.output_dir
    click.echo(markdown(table))
    click.echo(f"tables and plots: {out}/table.md, table.csv, table.json, metric_vs_params.png, per_task.png",
               err=True)
    click.echo(f"report: {os.path.join(out, 'report.html')}")


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
        cli.main(args=args, prog_name="zoo", standalone_mode=False)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
