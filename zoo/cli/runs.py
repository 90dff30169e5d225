"""`zoo run`, `evaluate` and `compare`: the work, handed to the engine and the comparisons."""

from __future__ import annotations

import json
import os

import click

from zoo.cli.app import cli, echo_json


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe key (repeatable): --set lr=3e-5 --set data_options.seed=1",
)
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
        click.echo(
            json.dumps(
                {"run_dir": results["run_dir"], "metrics": results["metrics"], "train": results["train"]}, indent=2
            )
        )


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--split", help="Split to evaluate (default: the run's eval split; with --data: test, else validation).")
@click.option(
    "--data",
    metavar="FILE_OR_NAME",
    help="Score new labelled data instead: a file or image folder (every row) or a named data set.",
)
@click.option("--data-root", type=click.Path(file_okay=False), help="Folder of the named data sets (else ZOO_DATA).")
def evaluate(run_dir: str, split: str | None, data: str | None, data_root: str | None) -> None:
    """Evaluate the model a finished run saved in RUN_DIR.

    \b
    Examples:
      zoo evaluate runs/sst2-minilm-finetune                  the run's own eval split again
      zoo evaluate runs/sst2-minilm-finetune --split test
      zoo evaluate runs/sst2-minilm-finetune --data new-reviews.csv
    """
    from zoo.recipes import load_finished_run

    load_finished_run(run_dir)  # a folder that holds no finished run is reported before torch is imported
    if data:
        from zoo.runs import load_run, score_data

        echo_json(score_data(load_run(run_dir), data, split, data_root))
        return
    from zoo.engine import evaluate_run

    echo_json(evaluate_run(run_dir, split, data_root))


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
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cells to run at once here, each in its own process with an equal share of the CPU cores "
    "and, with several GPUs, one GPU each.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where cells run: processes on this machine, or Ray tasks (pip install 'zoo[ray]'), each "
    "asking for its cell's resources: {num_cpus, num_gpus}.",
)
@click.option(
    "--address",
    metavar="ADDR",
    help="With --executor ray: the cluster to join (auto, or HOST:PORT of "
    "`ray start --head`); without it Ray starts on this machine.",
)
@click.option(
    "--shard",
    metavar="I/N",
    callback=_shard,
    help="Run only shard I of N (whole rows) into "
    "OUTPUT/shard-I-of-N, e.g. one per Slurm array task; join them with --merge.",
)
def compare(
    spec: tuple[str, ...],
    merge_dirs: bool,
    output: str | None,
    data_root: str | None,
    jobs: int,
    executor: str,
    address: str | None,
    shard: tuple[int, int] | None,
) -> None:
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
        table = run_compare(
            loaded,
            progress=lambda line: click.echo(line, err=True),
            jobs=jobs,
            bar=True,
            executor=executor,
            address=address,
            shard_of=shard,
        )
        out = os.path.join(loaded.output_dir, f"shard-{shard[0]}-of-{shard[1]}") if shard else loaded.output_dir
    click.echo(markdown(table))
    click.echo(f"tables and plots: {out}/table.md, table.csv, table.json, metric_vs_params.png, per_task.png", err=True)
    click.echo(f"report: {os.path.join(out, 'report.html')}")
