"""`zoo export` and `zoo predict`: what a run trained, taken back out to other runtimes and new inputs."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import click

from zoo.cli.app import cli


class _ExportCommand(click.Command):
    """Lists the registered formats (each plugin's) in the help, where a static docstring cannot."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from zoo.exporting import export_formats

        with formatter.section("Formats (from the installed plugins)"):
            formatter.write_dl([(fmt.name, f"{fmt.description} (plugin {fmt.plugin})") for fmt in export_formats()])


@cli.command(cls=_ExportCommand)
@click.argument("source")
@click.option("--to", "fmt", metavar="FORMAT", help="The format to write (see below).")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    help="The folder to write: new, empty, or a zoo export (--force).",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-4,
    show_default=True,
    help="Largest difference from zoo's own outputs that passes the parity check.",
)
@click.option("--no-head", is_flag=True, help="Leave a classification run's head out: the backbone alone.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace the zoo export in the -o folder: only the files it recorded; your other files stay.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="SOURCE is an export folder: check every file's SHA-256 against zoo-export.json, then its parity.",
)
def export(
    source: str, fmt: str | None, output: str | None, atol: float, no_head: bool, force: bool, verify: bool
) -> None:
    """Write SOURCE for another runtime; the folder is kept only if that runtime reproduces zoo.

    SOURCE is a run folder (its trained backbone and, for classification, its head), a saved
    backbone folder, a registry name (text/minilm-l6) or a local model folder. The export loads
    back in the target library, runs sample inputs (batches of 7 and 1, two text lengths) and
    must match zoo's encode_text / encode_image (and the head's logits) within --atol; a failure
    leaves no folder behind. Every export holds a model card (README.md) and zoo-export.json,
    which records every file's SHA-256 and is sealed by its own digest (printed at the end).

    -o takes a new or empty folder. A folder holding anything else is refused, and so are the
    current folder, any folder above it, your home folder and /. A zoo export there is replaced
    only with --force, and then only the files it recorded, each as zoo wrote it: files you added
    (documents, hidden files) stay, as rsync without --delete leaves them; an added file a loader
    could read, or a recorded file you edited, is refused by name.

    \b
    Examples:
      zoo export runs/sst2-minilm-finetune --to hf -o exported/sst2-minilm
      zoo export text/minilm-l6 --to onnx -o exported/minilm-onnx
      zoo export runs/cifar10-lite0 --to timm -o exported/lite0-cifar10 --force
      zoo export exported/minilm-onnx --verify
    """
    from zoo.exporting import MANIFEST
    from zoo.exporting import export as export_model
    from zoo.exporting import verify as verify_export

    if verify:
        if fmt or output or force:
            raise click.UsageError("--verify checks an existing export: give only its folder")
        report = verify_export(source)
        seal = json.loads((Path(source) / MANIFEST).read_text())["seal"]  # verified: the manifest checks out
    else:
        if not fmt or not output:
            raise click.UsageError(
                "give the format and the folder: --to FORMAT -o DIR (zoo export --help lists formats)"
            )
        manifest = export_model(source, fmt, output, atol=atol, with_head=not no_head, force=force)
        report, seal = manifest["parity"], manifest["seal"]
    worst = max(report.values(), default=0.0)
    for key, value in report.items():
        click.echo(f"  parity {key:<24} max |diff| {value:.2e}", err=True)
    click.echo(f"  seal {seal} (the SHA-256 of zoo-export.json's contents; --verify prints it too)", err=True)
    where = source if verify else os.path.abspath(str(output))
    click.echo(f"{where}: every file as recorded, parity passed (max |diff| {worst:.2e})")


PREDICTION_FORMATS = (".csv", ".tsv", ".jsonl")


def _write_predictions(rows: list[dict[str, Any]], output: str | None) -> None:
    """CSV (or TSV, JSONL by the suffix) to ``output``, or TSV to stdout."""
    suffix = Path(output).suffix if output else ".tsv"
    if suffix == ".jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter="," if suffix == ".csv" else "\t")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if not output:
        click.echo(text, nl=False)
        return
    from zoo.files import atomic_write

    atomic_write(Path(output), lambda handle: handle.write(text.encode()))
    click.echo(f"{len(rows)} predictions: {output}", err=True)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--output", "-o", help="Write the predictions here (.csv, .tsv or .jsonl); default: TSV on stdout.")
@click.option("--column", help="The text column of a CSV/TSV/JSONL file (default: text, or the only column).")
@click.option(
    "--top-k", type=click.IntRange(min=1), default=1, show_default=True, help="Also list the K most likely classes."
)
def predict(run_dir: str, inputs: tuple[str, ...], output: str | None, column: str | None, top_k: int) -> None:
    """Classify INPUTS with the model a classification run in RUN_DIR trained.

    INPUTS: a text file (one text per line), a CSV/TSV/JSONL file (--column), or image files and
    folders of images. Each input gets a row: the input, the predicted label and its probability
    (and the top K with --top-k).

    \b
    Examples:
      zoo predict runs/sst2-minilm-finetune reviews.txt
      zoo predict runs/sst2-minilm-finetune reviews.csv --column review -o predictions.csv
      zoo predict runs/cifar10-lite0 photos/ --top-k 3 -o predictions.jsonl
    """
    from zoo.data.readers import unlabelled_inputs
    from zoo.recipes import load_finished_run
    from zoo.runs import check_input_kind, load_run

    if output and Path(output).suffix not in PREDICTION_FORMATS:
        raise click.BadParameter(
            f"{output}: predictions are written as {', '.join(PREDICTION_FORMATS)}; name the file so", param_hint="-o"
        )
    recipe = load_finished_run(run_dir)  # not a run: said before the inputs are read
    kind, items = unlabelled_inputs([Path(p) for p in inputs], column)
    check_input_kind(run_dir, kind, " ".join(inputs), recipe.to_dict())  # before the model is built
    run = load_run(run_dir)
    from tqdm.auto import tqdm

    with tqdm(total=len(items), desc="predict", unit=kind, disable=None) as bar:
        predictions = run.predict([str(i) for i in items] if kind == "image" else items, top_k, bar.update)
    rows = []
    for item, prediction in zip(items, predictions, strict=True):
        row: dict[str, Any] = {"input": str(item), "label": prediction["label"]}
        row["probability"] = round(prediction["probability"], 6)
        if top_k > 1:
            row["top"] = " ".join(f"{label}:{p:.4f}" for label, p in prediction["top"])
        rows.append(row)
    _write_predictions(rows, output)
