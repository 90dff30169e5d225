"""A new user's mistakes with their own files, each answered before any work: exit 2, one line on
stderr that says what is wrong and where, and nothing written. The CLI runs in-process through
`zoo.cli.app.main`, the function the ``zoo`` console script calls, so each case costs milliseconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from zoo.cli.app import main

REVIEWS = "text,label\n" + "".join(f"a {'good' if i % 2 else 'bad'} film number {i},{i % 2}\n" for i in range(40))
TEXT = {"model": "text/bert-tiny", "task": "text-classification", "data": "reviews.csv", "output_dir": "runs"}
IMAGES = {
    "model": "vision/example-convnet",
    "task": "image-classification",
    "data": "pictures",
    "mode": "linear-probe",
    "output_dir": "runs",
}
CAPTIONS = {"model": "clip/openclip-tiny", "task": "retrieval", "data": "captions.csv", "output_dir": "runs"}
MTEB = {**TEXT, "protocol": "mteb-classification"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder: a reviews table, a folder of class folders, captioned pictures."""
    (tmp_path / "reviews.csv").write_text(REVIEWS)
    for label, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        (tmp_path / "pictures" / label).mkdir(parents=True)
        for index in range(6):
            Image.new("RGB", (10, 10), colour).save(tmp_path / "pictures" / label / f"{index}.png")
    rows = ["image,caption"]
    for index in range(8):
        Image.new("RGB", (10, 10), (index * 30, 0, 0)).save(tmp_path / f"{index}.png")
        rows.append(f"{index}.png,picture number {index}")
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("zoo: error: ") and "Traceback" not in err, err
    assert expected in err, err


# (id, recipe, --set pairs, what the line must say)
RUN_CASES: list[tuple[str, dict[str, Any], list[str], str]] = [
    ("test_fraction above 1", TEXT, ["data_options.test_fraction=1.5"], "test_fraction must be a share"),
    ("test_fraction negative", TEXT, ["data_options.test_fraction=-0.2"], "got -0.2"),
    ("validation_fraction of 1", TEXT, ["data_options.validation_fraction=1.0"], "validation_fraction must be"),
    ("fraction as a word", TEXT, ["data_options.test_fraction=half"], "got 'half'"),
    ("data seed negative", TEXT, ["data_options.seed=-3"], "data_options.seed must be a whole number >= 0"),
    ("data seed fractional", TEXT, ["data_options.seed=1.5"], "data_options.seed must be a whole number"),
    ("image folder fractions", IMAGES, ["data_options.test_fraction=2"], "test_fraction must be a share"),
    ("no test images", CAPTIONS, ["data_options.test_images=0"], "test_images must be a whole number of images >= 1"),
    ("no train images", CAPTIONS, ["data_options.train_images=0"], "train_images must be a whole number"),
    ("negative validation images", CAPTIONS, ["data_options.validation_images=-1"], "validation_images must be"),
    ("label smoothing above 1", TEXT, ["task_options.label_smoothing=1.5"], "label_smoothing must be a number >= 0"),
    ("label smoothing negative", TEXT, ["task_options.label_smoothing=-0.1"], "label_smoothing must be"),
    ("dropout of 1", TEXT, ["task_options.dropout=1"], "task_options.dropout must be a number >= 0 and < 1"),
    ("feature batch size zero", TEXT, ["task_options.feature_batch_size=0"], "feature_batch_size must be a whole"),
    ("feature batch size fractional", IMAGES, ["task_options.feature_batch_size=2.5"], "feature_batch_size"),
    ("task image size zero", IMAGES, ["task_options.image_size=0"], "task_options.image_size must be a whole"),
    ("crop_pct zero", IMAGES, ["task_options.crop_pct=0"], "task_options.crop_pct must be a number > 0 and <= 1"),
    ("crop_pct above 1", IMAGES, ["task_options.crop_pct=1.5"], "crop_pct must be a number > 0 and <= 1"),
    ("on_bad_image unknown", IMAGES, ["task_options.on_bad_image=ignore"], "on_bad_image must be one of skip, fail"),
    ("flip_features as a word", IMAGES, ["task_options.flip_features=maybe"], "flip_features must be one of True"),
    ("model max_length zero", TEXT, ["model_options.max_length=0"], "model_options.max_length must be a whole"),
    ("model max_length negative", TEXT, ["model_options.max_length=-8"], "got -8"),
    ("model image size zero", IMAGES, ["model_options.image_size=0"], "model_options.image_size must be a whole"),
    ("missing model folder", TEXT, ["model=runs/old/model/backbone"], "model: folder or file"),
    ("missing relative model", TEXT, ["model=./my-model"], "my-model not found"),
    ("missing data file named plainly", TEXT, ["data=missing.csv"], "data file"),
    ("missing tsv named plainly", TEXT, ["data=missing.tsv"], "missing.tsv not found"),
    ("missing jsonl named plainly", TEXT, ["data=missing.jsonl"], "missing.jsonl not found"),
    ("protocol with a validation share", MTEB, ["data_options.validation_fraction=0.1"], "would change what it"),
    ("protocol with a validation file", MTEB, ["data_options.validation_file=reviews.csv"], "validation_file"),
    ("protocol with train_limit", MTEB, ["train_limit=10"], "train_limit: protocol mteb-classification"),
    ("protocol with eval_limit", MTEB, ["eval_limit=10"], "eval_limit: protocol mteb-classification"),
    ("mask probability zero", {**TEXT, "task": "pretraining"}, ["task_options.mask_probability=0"], "> 0 and < 1"),
    ("mask probability one", {**TEXT, "task": "pretraining"}, ["task_options.mask_probability=1"], "mask_probability"),
    ("nsp as a word", {**TEXT, "task": "pretraining"}, ["task_options.nsp=sometimes"], "nsp must be one of"),
    ("a two-character delimiter", TEXT, ["data_options.delimiter=;;"], "delimiter must be one character"),
    ("a missing text column", TEXT, ["data_options.text_column=review"], "no column 'review'"),
    ("a missing label column", TEXT, ["data_options.label_column=sentiment"], "no column 'sentiment'"),
    ("adapter on a linear probe", {**TEXT, "mode": "linear-probe"}, ["adapter.method=lora"], "adapter: a linear probe"),
    ("towers on a text backbone", TEXT, ["towers.text=lora"], "towers: model text/bert-tiny is a text backbone"),
    ("adapter rank zero", TEXT, ["adapter.r=0"], "adapter.r (the rank) must be an integer >= 1"),
    ("unfreeze on a linear probe", IMAGES, ["unfreeze=1"], "unfreeze: mode linear-probe trains no backbone block"),
    ("a run folder path that is not there", TEXT, ["model=runs/old"], "runs/old not found"),
    ("the training file as its test file", TEXT, ["data_options.test_file=reviews.csv"], "is the training data itself"),
    (
        "the training folder as its validation",
        IMAGES,
        ["data_options.validation_file=pictures"],
        "training data itself",
    ),
    ("a label column of row ids", TEXT, ["data_options.label_column=text"], "every training example has a class"),
]


@pytest.mark.parametrize(("recipe", "pairs", "expected"), [pytest.param(*c[1:], id=c[0]) for c in RUN_CASES])
def test_zoo_run_refuses_bad_input_before_any_work(project, capsys, recipe, pairs, expected):
    path = project / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    one_line_exit_2(capsys, ["run", str(path), *(a for pair in pairs for a in ("--set", pair))], expected)
    assert not (project / "runs").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "model: text/bert-tiny\ntask: text-classification\ndata: reviews.csv\nlr: 0.1\nlr: 0.2\n",
            "'lr' is given twice",
        ),
        ("model: text/bert-tiny\ntask: text-classification\ndata: reviews.csv\ndata: other.csv\n", "'data' is given"),
        (
            "model: text/bert-tiny\ntask: text-classification\ndata: reviews.csv\n"
            "task_options: {dropout: 0.1, dropout: 0.2}\n",
            "'dropout' is given twice",
        ),
    ],
    ids=["key twice", "data twice", "nested key twice"],
)
def test_a_recipe_that_gives_a_key_twice_is_refused(project, capsys, text, expected):
    path = project / "recipe.yaml"
    path.write_text(text)
    one_line_exit_2(capsys, ["run", str(path)], expected)


def test_a_yaml_merge_may_override_a_merged_key(project):
    from zoo.recipe_overrides import load_yaml

    assert load_yaml("base: &b {lr: 1, epochs: 2}\nrun:\n  <<: *b\n  lr: 3\n")["run"] == {"lr": 3, "epochs": 2}


def test_a_class_whose_images_sit_one_folder_down_is_refused(project, capsys):
    nested = project / "pictures" / "green" / "raw"
    nested.mkdir(parents=True)
    Image.new("RGB", (10, 10), (0, 200, 0)).save(nested / "0.png")
    path = project / "recipe.yaml"
    path.write_text(yaml.safe_dump(IMAGES))
    one_line_exit_2(capsys, ["run", str(path)], "its images are one folder down, in raw/")
    one_line_exit_2(capsys, ["datasets", "pictures"], "one folder down")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("test_fraction=1.5", "test_fraction must be a share"),
        ("validation_fraction=-1", "validation_fraction must be a share"),
        ("seed=-1", "seed must be a whole number >= 0"),
        ("text_column=title", "no column 'title'"),
        ("delimiter=';'", "delimiter must be one character"),
        ("delimiter=;", "looks ','-separated"),
    ],
    ids=["test share", "validation share", "seed", "missing column", "quoted delimiter", "wrong delimiter"],
)
def test_zoo_datasets_refuses_bad_options_in_one_line(project, capsys, option, expected):
    one_line_exit_2(capsys, ["datasets", "reviews.csv", "-o", option], expected)


def test_zoo_evaluate_names_a_missing_run_and_data(project, capsys):
    one_line_exit_2(capsys, ["evaluate", "runs/never"], "runs/never")
    assert not (project / "runs").exists()


def test_a_run_at_or_below_chance_says_so_in_its_closing_line():
    from zoo.engine.report import closing_line

    results = {
        "metrics": {"test": {"accuracy": 0.5}},
        "chance": {"test": {"accuracy": 0.5}},
        "primary_metric": "accuracy",
        "run_dir": "runs/x",
        "train": {"steps": 10},
    }
    assert "AT OR BELOW CHANCE" in closing_line(results)
    results["metrics"]["test"]["accuracy"] = 0.75
    assert "CHANCE" not in closing_line(results) and "(chance 0.5)" in closing_line(results)


def test_ctrl_c_on_zoo_run_says_how_to_resume(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    recipe = tmp_path / "long.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": "vision/example-convnet",
                "task": "image-classification",
                "data": "digits",
                "epochs": 50.0,
                "batch_size": 8,
                "checkpoint_every": 5,
                "output_dir": str(tmp_path / "runs"),
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    process = subprocess.Popen(
        [sys.executable, "-m", "zoo", "run", str(recipe), "--set", "lr=1e-3"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    checkpoint = tmp_path / "runs" / "long" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), "the run never checkpointed"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("zoo: error: interrupted; ") and "Traceback" not in err, err
    assert f"continue with: zoo run {recipe} --set lr=1e-3 --resume" in last, last


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished text run and a finished image run (linear probes: seconds), and inputs of each kind."""
    from zoo.engine import run as run_recipe
    from zoo.recipes import validate

    root = tmp_path_factory.mktemp("runs")
    (root / "reviews.csv").write_text(REVIEWS)
    (root / "reviews.txt").write_text("a lovely film\na dreadful film\n")
    for label, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        (root / "pictures" / label).mkdir(parents=True)
        for index in range(6):
            Image.new("RGB", (10, 10), colour).save(root / "pictures" / label / f"{index}.png")
    common = {"mode": "linear-probe", "epochs": 1.0, "output_dir": str(root / "runs")}
    text = run_recipe(validate({**TEXT, **common, "data": str(root / "reviews.csv"), "name": "text"}, "test"))
    image = run_recipe(validate({**IMAGES, **common, "data": str(root / "pictures"), "name": "image"}, "test"))
    (root / "photos" / ".hidden").mkdir(parents=True)
    Image.new("RGB", (10, 10), (200, 0, 0)).save(root / "photos" / "0.png")
    (root / "photos" / "1.png").write_bytes(b"not a picture at all")
    return {"root": root, "text": Path(text["run_dir"]), "image": Path(image["run_dir"])}


@pytest.mark.parametrize(
    ("run", "inputs", "options", "expected"),
    [
        ("text", ["pictures/red/0.png"], [], "classifies texts, but pictures/red/0.png holds images"),
        ("text", ["pictures"], [], "classifies texts, but pictures holds images"),
        ("image", ["reviews.txt"], [], "classifies images, but reviews.txt holds texts: give image files"),
        ("image", ["reviews.csv"], [], "classifies images, but reviews.csv holds texts"),
        ("text", ["reviews.txt"], ["-o", "predictions.xlsx"], "predictions are written as .csv, .tsv, .jsonl"),
        ("text", ["reviews.txt"], ["-o", "predictions"], "predictions are written as"),
        ("image", ["photos"], [], "photos/1.png: not a readable image"),
        ("text", ["reviews.csv"], ["--column", "review"], "no column 'review'"),
        ("text", ["reviews.csv"], ["--top-k", "0"], "0"),
    ],
    ids=[
        "text run on an image",
        "text run on an image folder",
        "image run on a text file",
        "image run on a table",
        "unknown output format",
        "output without a suffix",
        "a corrupt picture",
        "a missing column",
        "top-k zero",
    ],
)
def test_zoo_predict_refuses_inputs_the_run_cannot_take(runs, capsys, monkeypatch, run, inputs, options, expected):
    monkeypatch.chdir(runs["root"])
    code = main(["predict", str(runs[run]), *inputs, *options])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert expected in err, err
    assert not any(runs["root"].glob("predictions*"))


def test_zoo_predict_reads_a_folder_given_through_a_parent_path(runs, capsys, monkeypatch):
    monkeypatch.chdir(runs["root"] / "pictures" / "red")
    assert main(["predict", str(runs["image"]), "../blue"]) == 0  # '..' is no hidden folder
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 6 and all(row.startswith("../blue/") for row in rows)


@pytest.mark.parametrize(
    ("run", "data", "expected"),
    [
        ("text", "pictures", "pictures is image-classification data; the run classifies texts"),
        ("image", "reviews.csv", "reviews.csv is text-classification data; the run classifies images"),
        ("text", "missing.csv", "missing.csv not found"),
        ("text", "pictures/", "pictures/ is image-classification data; the run classifies texts"),
    ],
    ids=["text run on image data", "image run on a table", "missing data file", "a folder given with a slash"],
)
def test_zoo_evaluate_refuses_data_of_another_kind(runs, capsys, monkeypatch, run, data, expected):
    monkeypatch.chdir(runs["root"])
    one_line_exit_2(capsys, ["evaluate", str(runs[run]), "--data", data], expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backbones: [text/bert-tiny]\nbackbones: [text/minilm-l6]\n", "key 'backbones' is given twice"),
        ("backbones: [text/bert-tiny\n", "not valid YAML (line 2, column 1"),
        ("- text/bert-tiny\n- text/minilm-l6\n", "a compare spec is a mapping of keys"),
    ],
    ids=["key twice", "not YAML", "a list"],
)
def test_a_compare_spec_that_is_not_one_mapping_is_refused(project, capsys, text, expected):
    path = project / "spec.yaml"
    path.write_text(text)
    one_line_exit_2(capsys, ["compare", str(path), "-o", str(project / "results")], expected)
    assert not (project / "results").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["export", "text/bert-tiny", "--to", "onnxx", "-o", "out"], "no export format 'onnxx'; did you mean 'onnx'?"),
        (["export", "runs/none", "--to", "hf", "-o", "out"], "runs/none not found"),
        (["export", "vision/efficientnet-lite9", "--to", "timm", "-o", "out"], "did you mean"),
        (["datasets", "sst3"], "unknown dataset 'sst3': did you mean 'sst2'?"),
        (["datasets", "missing.csv"], "data file missing.csv not found"),
        (["datasets", "reviews.csv", "-o", "nonsense=1"], "has no data option 'nonsense'"),
        (["datasets", "reviews.csv", "-o", "test_file=missing.csv"], "missing.csv not found"),
        (["info", "runs/none"], "runs/none not found"),
    ],
    ids=[
        "export format misspelt",
        "export of a missing run",
        "export of an unknown backbone",
        "data set misspelt",
        "data file missing",
        "unknown data option",
        "missing test file",
        "info of a missing folder",
    ],
)
def test_export_and_datasets_name_what_is_not_there(project, capsys, args, expected):
    one_line_exit_2(capsys, args, expected)
    assert not (project / "out").exists()


def test_verify_names_a_missing_export_folder(project, capsys):
    code = main(["export", "nowhere", "--verify"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "export folder nowhere not found" in err, err


def test_exporting_random_weights_warns_that_they_are_random(tmp_path):
    import zoo
    from zoo.errors import WeightsWarning

    with pytest.warns(WeightsWarning, match="weights drawn at random, different each time"):
        zoo.export("vision/example-convnet", to="onnx", output=tmp_path / "random")
