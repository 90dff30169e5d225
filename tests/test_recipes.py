"""Recipe files: validation with clear errors, overrides, hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.recipes import RecipeError, load_recipe, parse_overrides

from conftest import REPO

RECIPES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if "\ncells:" not in p.read_text())
COMPARE_SPECS = sorted(p for p in (REPO / "recipes").glob("*.yaml") if "\ncells:" in p.read_text())


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.model and recipe.task and recipe.data


@pytest.mark.parametrize("path", COMPARE_SPECS, ids=lambda p: p.name)
def test_every_shipped_compare_spec_plans(path):
    from zoo.comparisons import load_spec, plan

    cells = plan(load_spec(path))
    assert cells and any(not cell.skip for cell in cells)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


BASE = "model: text/minilm-l6\ntask: text-classification\ndata: sst2\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("lerning_rate: 0.1\n", "unknown key 'lerning_rate'; did you mean 'lr'?"),
        ("learning_rate: 0.1\n", "unknown key 'learning_rate'; did you mean 'lr'?"),
        ("num_epochs: 2\n", "unknown key 'num_epochs'; did you mean 'epochs'?"),
        ("bs: 8\n", "unknown key 'bs'; did you mean 'batch_size'?"),
        ("weight_decya: 0.1\n", "unknown key 'weight_decya'; did you mean 'weight_decay'?"),
        ("epoch: 2\n", "unknown key 'epoch'; did you mean 'epochs'?"),
        ("epochs: three\n", "epochs must be float, got 'three'"),
        ("batch_size: 3.5\n", "batch_size must be a whole number, auto or auto:N (N per step), got 3.5"),
        ("compile: maybe\n", "compile must be bool, got 'maybe'"),
        ("batch_size: 30\ngrad_accum: 4\n", "batch_size (30) must be a positive multiple of grad_accum (4)"),
        ("precision: fp8\n", "precision must be auto, fp32 or bf16"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, extra, message):
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, BASE + extra))
    assert str(caught.value).startswith(str(tmp_path / "r.yaml"))
    assert message in str(caught.value)


def test_a_misspelt_learning_rate_is_pointed_to_lr_by_the_loader_and_by_zoo_run(tmp_path):
    from conftest import run_zoo

    path = write(tmp_path, BASE + "lerning_rate: 0.1\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert str(caught.value) == f"{path}: unknown key 'lerning_rate'; did you mean 'lr'?"
    result = run_zoo("run", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"zoo: error: {path}: unknown key 'lerning_rate'; did you mean 'lr'?"


def test_missing_required_keys_and_files(tmp_path):
    with pytest.raises(RecipeError, match="missing required key.s. data"):
        load_recipe(write(tmp_path, "model: x\ntask: y\n"))
    with pytest.raises(RecipeError, match="recipe .*nope.yaml not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path, "model: [unclosed\n"))


def test_overrides_are_typed_and_nested(tmp_path):
    recipe = load_recipe(
        write(tmp_path, BASE + "lr: 1.0e-4\n"),
        ["lr=3e-5", "epochs=2", "data_options.seed=3", "test_split=null", "compile=true"],
    )
    assert recipe.lr == 3e-5 and recipe.epochs == 2 and recipe.data_options == {"seed": 3}
    assert recipe.test_split is None and recipe.compile is True
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
    with pytest.raises(RecipeError, match="expected key=value"):
        parse_overrides(["lr"])
    with pytest.raises(RecipeError, match="unknown key 'lrr'"):
        load_recipe(write(tmp_path, BASE), ["lrr=1"])


def test_hash_ignores_names_and_paths_but_not_settings(tmp_path):
    path = write(tmp_path, BASE)
    base = load_recipe(path).hash()
    assert load_recipe(path, ["name=other", "output_dir=/x", "log_every=3"]).hash() == base
    assert load_recipe(path, ["lr=1e-3"]).hash() != base


def test_an_unknown_task_option_is_named_with_the_nearest_and_zoo_tasks_lists_them(tmp_path):
    import subprocess
    import sys

    from zoo.engine import prepare

    recipe = load_recipe(
        REPO / "recipes" / "cifar10-lite0-probe.yaml",
        ["model=vision/example-convnet", "data=digits", "task_options.flip_feature=true", f"output_dir={tmp_path}"],
    )
    with pytest.raises(
        RecipeError,
        match=r"task_options: 'image-classification' has no option 'flip_feature'; "
        r"did you mean 'flip_features'\?",
    ):
        prepare(recipe)
    shown = subprocess.run(
        [sys.executable, "-m", "zoo", "tasks", "image-classification"], capture_output=True, text=True, check=True
    ).stdout
    assert "modes:        finetune, linear-probe" in shown and "  flip_features " in shown


def test_paths_are_relative_to_the_recipe_file_and_set_paths_to_the_current_folder(tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (tmp_path / "model").mkdir()
    path = folder / "r.yaml"
    path.write_text(
        "model: ../model\ntask: text-classification\ndata: ../data/train.csv\noutput_dir: out\n"
        "data_options: {test_file: held.csv, seed: 1}\ntask_options: {extra_data: [sst2, more.txt]}\n"
    )
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(path)
    assert recipe.model == str(tmp_path / "model") and recipe.data == str(tmp_path / "data" / "train.csv")
    assert recipe.output_dir == str(folder / "out") and recipe.data_options == {
        "test_file": str(folder / "held.csv"),
        "seed": 1,
    }
    assert recipe.task_options["extra_data"] == ["sst2", str(folder / "more.txt")]
    named = load_recipe(write(tmp_path, BASE))  # registered names stay names; the default output_dir is here
    assert (named.model, named.data, named.output_dir) == ("text/minilm-l6", "sst2", str(tmp_path / "runs"))
    given = load_recipe(path, ["data=mine.csv", "data_options.test_file=t.csv", "data_root=d"])
    assert given.data == str(tmp_path / "mine.csv") and given.data_options["test_file"] == str(tmp_path / "t.csv")
    assert given.data_root == str(tmp_path / "d")


def test_a_yaml_mistake_is_named_with_line_and_column(tmp_path):
    path = write(tmp_path, BASE + "lr: 1e-3\ntask_options: {dropout: 0.1\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert str(caught.value).startswith(f"{path}: not valid YAML (line 6, column 1: ")


def test_a_linear_probe_without_lr_learns_at_a_heads_rate(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: text/minilm-l6\ntask: text-classification\ndata: sst2\n")
    assert load_recipe(path).lr == 5e-5  # fine-tuning: the whole backbone moves
    assert load_recipe(path, ["mode=linear-probe"]).lr == 1e-3  # only a fresh head trains
    assert load_recipe(path, ["mode=linear-probe", "lr=3e-4"]).lr == 3e-4
