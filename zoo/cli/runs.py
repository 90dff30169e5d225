"""`zoo run` and `zoo evaluate`: a recipe handed to the engine, a finished run scored again."""

from __future__ import annotations

import json
import os

import click

from zoo.cli.app import cli, echo_json
from zoo.cli.recipe import RunCommand


@cli.command(cls=RunCommand)
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
@click.option("--json", "as_json", is_flag=True, help="Print the run dir, metrics and training summary as JSON.")
def run(recipe: str, overrides: tuple[str, ...], resume: bool, data_root: str | None, as_json: bool) -> None:
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
      semantic-similarity         zero-shot (text pairs with gold scores: Spearman of cosine)
      pretraining                 pretrain (the backbone's objective: MLM, causal LM, SimCLR, InfoNCE)
    protocol: NAME scores the frozen backbone as a leaderboard does (`zoo protocols`):
      zoo run recipes/sst2-minilm-probe.yaml --set protocol=mteb-classification
    Paths in RECIPE are relative to its folder, those given by --set to the current one.
    """
    from zoo.recipes import load_recipe

    extra = [*overrides, *([f"data_root={data_root}"] if data_root else [])]
    checked = load_recipe(recipe, extra)  # a bad recipe is reported before torch is imported
    from zoo.engine import run as run_recipe

    try:
        results = run_recipe(checked, resume=resume)
    except KeyboardInterrupt:
        from zoo.errors import Interrupted

        given = [*(f"--set {pair}" for pair in overrides), *([f"--data-root {data_root}"] if data_root else [])]
        again = " ".join(["zoo run", recipe, *given, "--resume"])
        raise Interrupted(
            f"interrupted; {checked.output_dir}/{checked.name} keeps its last checkpoint: continue with: {again}"
        ) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if as_json:
        click.echo(
            json.dumps(
                {"run_dir": results["run_dir"], "metrics": results["metrics"], "train": results["train"]}, indent=2
            )
        )
    else:
        from zoo.engine.report import closing_line

        click.echo(closing_line(results))


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
