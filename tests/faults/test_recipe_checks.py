"""Recipes checked before work: each mistake is one line and exit 2 before a backbone is built or a step
trained (no run folder appears), and a run's paths are stored absolute so it evaluates from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import run_zoo

DIGITS = """\
model: vision/example-convnet
task: image-classification
data: digits
mode: linear-probe
epochs: 1
output_dir: runs
"""
TEXT = """\
model: text/bert-tiny
task: text-classification
data: reviews.csv
output_dir: runs
"""
REVIEWS = "text,label\n" + "".join(f"a {'good' if i % 2 else 'bad'} film number {i},{i % 2}\n" for i in range(40))
NO_CUDA = not torch.cuda.is_available()


def recipe_in(tmp_path: Path, text: str) -> Path:
    (tmp_path / "reviews.csv").write_text(REVIEWS)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


# (name, recipe, --set overrides, what the one line must say)
CASES = [
    ("lr negative", DIGITS, ["lr=-0.1"], "--set lr=-0.1: lr must be >= 0, got -0.1"),
    ("epochs negative", DIGITS, ["epochs=-1"], "--set epochs=-1: epochs must be > 0, got -1"),
    ("epochs zero", DIGITS, ["epochs=0"], "--set epochs=0: epochs must be > 0, got 0"),
    ("warmup as steps", DIGITS, ["warmup=5"], "--set warmup=5: warmup must be >= 0 and < 1, got 5"),
    ("warmup negative", DIGITS, ["warmup=-0.1"], "warmup must be >= 0 and < 1, got -0.1"),
    ("eval_every zero", DIGITS, ["eval_every=0"], "--set eval_every=0: eval_every must be >= 1, got 0"),
    ("batch_size zero", DIGITS, ["batch_size=0"], "batch_size must be >= 1, got 0"),
    ("eval_batch_size zero", DIGITS, ["eval_batch_size=0"], "eval_batch_size must be >= 1, got 0"),
    ("grad_accum zero", DIGITS, ["grad_accum=0"], "grad_accum must be >= 1, got 0"),
    ("train_limit zero", DIGITS, ["train_limit=0"], "train_limit must be >= 1, got 0"),
    ("eval_limit negative", DIGITS, ["eval_limit=-5"], "eval_limit must be >= 1, got -5"),
    ("max_steps zero", DIGITS, ["max_steps=0"], "max_steps must be >= 1, got 0"),
    ("head_lr zero", DIGITS, ["head_lr=0"], "head_lr must be > 0, got 0"),
    ("clip_grad zero", DIGITS, ["clip_grad=0"], "clip_grad must be > 0, got 0"),
    ("weight_decay negative", DIGITS, ["weight_decay=-1"], "weight_decay must be >= 0, got -1"),
    ("patience zero", DIGITS, ["early_stopping_patience=0"], "early_stopping_patience must be >= 1, got 0"),
    ("checkpoint_every zero", DIGITS, ["checkpoint_every=0"], "checkpoint_every must be >= 1, got 0"),
    ("log_every zero", DIGITS, ["log_every=0"], "log_every must be >= 1, got 0"),
    ("num_workers negative", DIGITS, ["num_workers=-1"], "num_workers must be >= 0, got -1"),
    ("seed negative", DIGITS, ["seed=-1"], "seed must be >= 0, got -1"),
    ("value of the wrong type", DIGITS, ["lr=abc"], "--set lr=abc: lr must be float, got 'abc'"),
    ("value that is not YAML", DIGITS, ["task_options=[1"], "--set task_options=[1: the value is not valid YAML"),
    ("dotted key of a plain key", DIGITS, ["lr.x=1"], "--set lr.x=1: lr is not a mapping"),
    ("device gpu", DIGITS, ["device=gpu"], "device must be auto, cpu, cuda, cuda:N or mps, got 'gpu' (a GPU is cuda)"),
    ("device tpu", DIGITS, ["device=tpu"], "device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    pytest.param(
        DIGITS,
        ["device=cuda"],
        "device=cuda: this machine has no CUDA GPU torch can use; use device=cpu or auto",
        id="device cuda without a GPU",
        marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU"),
    ),
    pytest.param(
        DIGITS,
        ["device=cuda:64"],
        "device=cuda:64: this machine has",
        id="device cuda:N beyond the GPUs",
        marks=pytest.mark.skipif(torch.cuda.device_count() > 64, reason="64 GPUs"),
    ),
    pytest.param(
        DIGITS,
        ["device=mps"],
        "device=mps: Apple's MPS is not available on this machine",
        id="device mps where there is none",
        marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is here"),
    ),
    (
        "missing test split",
        TEXT,
        ["data_options.test_fraction=0", "test_split=test"],
        "test_split: data 'reviews' has no 'test' split (it has: train, validation); "
        "data_options.test_fraction or data_options.test_file would create one",
    ),
    (
        "eval split no option creates",
        DIGITS,
        ["eval_split=valid"],
        "eval_split: data 'digits' has no 'valid' split (it has: train, test, validation); no data option "
        "creates one; set eval_split to one of its splits",
    ),
    (
        "image option on a text task: crop_pct",
        TEXT,
        ["task_options.crop_pct=0.9"],
        "task_options: 'text-classification' has no option 'crop_pct'",
    ),
    ("image option on a text task: augment", TEXT, ["task_options.augment=trivial"], "has no option 'augment'"),
    ("image option on a text task: image_size", TEXT, ["task_options.image_size=64"], "has no option 'image_size'"),
    (
        "image option on text pretraining",
        TEXT,
        ["task=pretraining", "task_options.on_bad_image=fail"],
        "task_options: 'pretraining' has no option 'on_bad_image'",
    ),
    (
        "text option on image pretraining",
        DIGITS,
        ["task=pretraining", "mode=pretrain", "task_options.nsp=true"],
        "task_options: 'pretraining' has no option 'nsp'",
    ),
    ("mode of another task", DIGITS, ["mode=zero-shot"], "mode: task 'image-classification' has no mode 'zero-shot'"),
    (
        "backbone of another modality",
        DIGITS,
        ["model=text/bert-tiny"],
        "task: 'image-classification' needs an image or multimodal backbone; model text/bert-tiny is a text backbone",
    ),
    (
        "text task on image data",
        TEXT,
        ["data=digits"],
        "data: task 'text-classification' needs a text-classification data set; 'digits' is image-classification",
    ),
    (
        "unknown key",
        DIGITS,
        ["lerning_rate=0.1"],
        "--set lerning_rate=0.1: unknown key 'lerning_rate'; did you mean 'lr'?",
    ),
    ("missing data file", TEXT, ["data=nowhere.csv"], "data file {cwd}/nowhere.csv not found"),
    (
        "missing test_file",
        TEXT,
        ["data_options.test_file=nowhere.csv"],
        "data_options.test_file: {cwd}/nowhere.csv not found",
    ),
    ("YAML error with line and column", DIGITS + "lr: [1e-3\n", [], "{recipe}: not valid YAML (line 8, column 1: "),
]


@pytest.mark.parametrize(
    ("recipe", "overrides", "message"),
    [pytest.param(*case[1:], id=case[0]) if type(case) is tuple else case for case in CASES],
)
def test_a_bad_recipe_is_one_line_and_exit_2_before_any_work(tmp_path, monkeypatch, capsys, recipe, overrides, message):
    # in-process through zoo.cli.app.main, the function the `zoo` script calls (test_cli.py runs the
    # script itself in a subprocess): 42 cases in seconds instead of minutes
    from zoo.cli.app import main

    path = recipe_in(tmp_path, recipe)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(["run", str(path), *(a for o in overrides for a in ("--set", o))])
    stderr = capsys.readouterr().err
    expected = message.format(cwd=work, recipe=path)
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("zoo: error: ") and expected in stderr, stderr
    assert not (tmp_path / "runs").exists() and not (work / "runs").exists()  # nothing was built or trained


def test_the_python_api_gets_the_checks_too(tmp_path):
    from zoo.engine import run
    from zoo.recipes import Recipe, RecipeError

    recipe = Recipe(
        model="vision/example-convnet", task="image-classification", data="digits", output_dir=str(tmp_path)
    )
    recipe.warmup = 5.0  # set on the object: validate never saw it
    with pytest.raises(RecipeError, match=r"^recipe: warmup must be >= 0 and < 1, got 5.0$"):
        run(recipe)
    recipe.warmup, recipe.test_split = 0.0, "holdout"
    with pytest.raises(RecipeError, match="test_split: data 'digits' has no 'holdout' split"):
        run(recipe)
    assert list(tmp_path.iterdir()) == []


def test_zoo_tasks_text_classification_lists_only_text_options():
    shown = run_zoo("tasks", "text-classification", check=True).stdout
    assert "dropout" in shown and "label_smoothing" in shown
    for image_only in ("crop_pct", "augment", "image_size", "on_bad_image", "flip_features"):
        assert image_only not in shown


def test_run_help_lists_every_recipe_key_with_type_and_default_never_the_source():
    from zoo.recipes import recipe_keys

    shown = run_zoo("run", "--help", check=True).stdout
    assert "zoo/recipes.py" not in shown and "class Recipe" not in shown
    for row in recipe_keys():
        line = next(line for line in shown.splitlines() if line.split()[:1] == [row["key"]])
        assert row["type"] in line and row["help"] in line
    assert "warmup" in shown and ">= 0 and < 1" in shown
    listed = json.loads(run_zoo("recipe", "keys", "--json", check=True).stdout)
    assert [row["key"] for row in listed] == [row["key"] for row in recipe_keys()]


def test_set_replaces_a_mapping_and_a_dotted_key_merges_into_it(tmp_path):
    from zoo.recipes import load_recipe

    path = recipe_in(tmp_path, DIGITS + "task_options: {flip_features: true, dropout: 0.2}\n")
    assert load_recipe(path, ["task_options={}"]).task_options == {}
    assert load_recipe(path, ["task_options.dropout=0.3"]).task_options == {"flip_features": True, "dropout": 0.3}


def test_a_run_started_in_one_folder_is_evaluated_from_another(tmp_path):
    """Paths in a recipe file are relative to it, those given by --set to the current folder; the run's
    recipe.yaml holds them absolute, so `zoo evaluate` from elsewhere finds the data."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        if target < 2 and index < 200:
            folder = tmp_path / "project" / "data" / "pictures" / str(target)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 255 / 16).astype("uint8")).save(folder / f"{index}.png")
    recipes = tmp_path / "project" / "recipes"
    recipes.mkdir()
    (recipes / "probe.yaml").write_text(
        "model: vision/example-convnet\ntask: image-classification\ndata: ../data/pictures\n"
        "mode: linear-probe\nepochs: 2\nbatch_size: 16\nlr: 1.0e-2\nwarmup: 0.0\noutput_dir: ../runs\n"
    )
    started, elsewhere = tmp_path / "started-here", tmp_path / "elsewhere"
    started.mkdir()
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    zoo = [sys.executable, "-m", "zoo"]
    trained = subprocess.run(
        [*zoo, "run", "../project/recipes/probe.yaml", "--json"], cwd=started, capture_output=True, text=True, env=env
    )
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / "project" / "runs" / "probe"  # the recipe's output_dir, from its own folder
    stored = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert stored["data"] == str(tmp_path / "project" / "data" / "pictures")
    assert stored["output_dir"] == str(tmp_path / "project" / "runs")
    scored = subprocess.run([*zoo, "evaluate", str(run_dir)], cwd=elsewhere, capture_output=True, text=True, env=env)
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads(scored.stdout)
    validation = json.loads((run_dir / "results.json").read_text())["metrics"]["validation"]
    assert metrics["accuracy"] == validation["accuracy"]
    # a path given by --set is taken from the current folder
    again = subprocess.run(
        [*zoo, "run", str(recipes / "probe.yaml"), "--set", "output_dir=mine", "--set", "name=again"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    assert (elsewhere / "mine" / "again" / "results.json").is_file()
