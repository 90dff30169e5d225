"""`zoo compare`: backbones across tasks as a spec says, one table (`zoo.comparisons`)."""

from __future__ import annotations

import os
from typing import Any

import click

from zoo.cli.app import cli
from zoo.errors import ZooError


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
@click.option(
    "--allow-failures",
    is_flag=True,
    help="Exit 0 even when cells failed (they are still listed, and marked in the table).",
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
    allow_failures: bool,
) -> None:
    """Compare backbones across tasks as SPEC (YAML) says; write table.md/.csv/.json, plots and report.html.

    \b
    The spec, a YAML file (recipes/quickstart.yaml is a full one):
      name: my-compare             # titles table.md and report.html (default: the file's name)
      output_dir: results/mine     # tables, plots, report.html and cells/ (default: results)
      seeds: [0, 1, 2]             # each cell once per seed; "± std" is shown over 2+ seeds
      data_root: /data             # the named data sets' folder (else --data-root, ZOO_DATA)
      defaults: {epochs: 3, lr: 1.0e-3}  # recipe keys (as zoo run reads them) for every cell
      backbones:                   # every cell's, unless a cell names its own
        - text/bert-tiny           # a registered name (zoo list),
        - "vision/example-*"       # a pattern (quoted),
        - ./my-model               # a model folder zoo.load reads, relative to this file,
        - {trained: tuned}         # or what the cell with id 'tuned' trains (it runs first)
      cells:                       # one column each: task, data, mode, any recipe key
        - {task: image-classification, data: digits, mode: linear-probe}
        - id: tuned                # lets {trained: tuned} use what this cell trains
          label: digits tuned      # those rows read "BACKBONE + digits tuned" (needs id)
          backbones: [vision/example-convnet]  # one, to be a {trained: ...} parent
          task: image-classification
          data: digits
          mode: finetune
          task_options: {image_size: 96}       # checked against the task: zoo tasks NAME
          resources: {num_cpus: 2, num_gpus: 0}  # what a Ray task asks (--executor ray)
    Every cell's backbones, data sets, modes and options are checked before any runs,
    each cell as zoo run checks its recipe (data files, columns, labels, splits, model options);
    only a missing data root is left to fail its cells as rows.
    Paths in backbones and cells (model folders, data files) are relative to the spec file;
    output_dir and data_root to the current folder.
    Cells already computed with the same recipe and library versions are reused,
    so an interrupted compare continues, and a second run is quick.
    Exit status: 0 when every cell finished or was skipped (a backbone of another modality),
    1 when any failed (listed on stderr; --allow-failures: 0), 2 for a spec that is wrong.

    \b
    Examples:
      zoo compare recipes/quickstart.yaml
      zoo compare recipes/quickstart.yaml -j 2        two cells at a time
      zoo compare recipes/quickstart.yaml --executor ray --address auto
      zoo compare recipes/quickstart.yaml --shard 2/4  (then --merge the shards)
      zoo compare --merge results/laptop results/gpu-box -o results/all
    """
    from zoo.comparisons import merge
    from zoo.comparisons.table import failures, markdown

    if merge_dirs:
        if not output:
            raise click.UsageError("--merge needs --output DIR for the joined table")
        table, out = merge(list(spec), output), output
    else:
        if len(spec) != 1:
            raise click.UsageError("give one compare spec (or --merge with result directories)")
        table, out = _run_spec(spec[0], output, data_root, jobs, executor, address, shard)
    click.echo(markdown(table))
    click.echo(f"tables and plots: {out}/table.md, table.csv, table.json and the plots (*.png)", err=True)
    click.echo(f"report: {os.path.join(out, 'report.html')}")
    failed = failures(table)
    if failed:
        listing = "".join(f"\n  {line}" for line in failed)
        if not allow_failures:
            raise ZooError(f"{len(failed)} cell(s) failed; the table marks them (--allow-failures to exit 0):{listing}")
        click.echo(f"zoo: warning: {len(failed)} cell(s) failed; the table marks them:{listing}", err=True)


def _run_spec(
    spec: str,
    output: str | None,
    data_root: str | None,
    jobs: int,
    executor: str,
    address: str | None,
    shard: tuple[int, int] | None,
) -> tuple[Any, str]:
    """Run the compare spec in file ``spec``; its table and the folder it was written to."""
    from zoo.comparisons import load_spec, run_compare

    overrides = {k: v for k, v in (("output_dir", output), ("data_root", data_root)) if v}
    loaded = load_spec(spec, overrides)
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
    return table, out
