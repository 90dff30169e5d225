"""Files a user is handed (a saved folder, a checkpoint, a results table, a cache entry) are data:
none of them makes zoo import or run code, each is checked before use, and a refusal leaves
every file as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.comparisons.report import merge
from zoo.comparisons.table import markdown
from zoo.data.cache import cached
from zoo.engine.checkpoint import MAGIC, CheckpointError, load_checkpoint, rng_state, save_checkpoint
from zoo.errors import OptionError
from zoo.files import save_checksummed
from zoo.plugins import reset as reset_plugins
from zoo.recipes import RecipeError, validate
from zoo.validation import MAX_JSON_BYTES, FileError

from conftest import run_zoo

EXAMPLE = "vision/example-convnet"  # the example plugin's tiny CNN: saves in milliseconds


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time: what a refusal must leave as it was."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def saved(tmp_path) -> Path:
    return zoo.load(EXAMPLE).save(tmp_path / "handed" / "model")


def edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "zoo.json").read_text())
    edit(config)
    (folder / "zoo.json").write_text(json.dumps(config))


def refused(folder: Path, match: str, error: type[Exception] = FileError, **kwargs) -> None:
    before = files(folder.parent)
    with pytest.raises(error, match=match):
        zoo.load(folder, **kwargs)
    assert files(folder.parent) == before, "a refused load changed or left files"


# -- saved folders: the factory comes from the registry --------------------------------------------
SENTINEL_MODULE = """
from pathlib import Path
Path({sentinel!r}).write_text("imported")
def build(*args, **kwargs):
    Path({sentinel!r}).write_text("called")
"""


@pytest.mark.parametrize("name", [EXAMPLE, "vision/example-evil"], ids=["registered-name", "unregistered-name"])
def test_a_factory_named_in_zoo_json_is_never_imported(saved, tmp_path, name):
    """The attack of issue 22, in a fresh process: zoo.json names an importable module as the factory."""
    sentinel, site = tmp_path / "sentinel", tmp_path / "site"
    site.mkdir()
    (site / "zoo_sentinel.py").write_text(SENTINEL_MODULE.format(sentinel=str(sentinel)))
    edit_config(saved, lambda c: c["spec"].update(name=name, factory="zoo_sentinel:build"))
    before = files(saved.parent)
    code = "import sys, zoo\ntry:\n    zoo.load(sys.argv[1])\nexcept zoo.ZooError as e:\n    print(e); sys.exit(2)\n"
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(saved)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2, result.stderr
    expected = "spec.factory 'zoo_sentinel:build' differs" if name == EXAMPLE else "is not registered"
    assert expected in result.stdout, result.stdout
    assert not sentinel.exists(), "the module named in zoo.json was imported"
    assert files(saved.parent) == before


def test_os_system_as_the_factory_is_refused(saved):
    edit_config(saved, lambda c: c["spec"].update(factory="os:system"))
    refused(saved, r"spec.factory 'os:system' differs from what plugin 'example' registers")


def test_a_saved_spec_that_disagrees_with_the_registration_is_refused_naming_the_field(saved):
    edit_config(saved, lambda c: c["spec"].update(modality="text"))
    refused(saved, r"spec.modality 'text' differs")
    edit_config(saved, lambda c: c["spec"].update(modality="image", options={"width": 4096}))
    refused(saved, r"spec.options \{'width': 4096\} differs")


def test_an_unregistered_backbone_names_the_pip_requirement(saved, monkeypatch):
    monkeypatch.setenv("ZOO_BLOCK_PLUGINS", "example")
    reset_plugins()
    refused(
        saved,
        r"'vision/example-convnet' is not registered by any installed plugin; it was saved with plugin "
        r"'example': pip install 'zoo-example-plugin==0.1.0'",
    )


def test_options_from_zoo_json_are_checked_before_any_call(saved):
    edit_config(saved, lambda c: c["options"].update(evil=1))
    refused(saved, r"has no model option 'evil' \(its model options: width, saved_dir\)")
    for key in ("trust_remote_code", "trust_repo", "saved_dir"):
        edit_config(saved, lambda c, key=key: (c["options"].pop("evil", None), c["options"].update({key: True})))
        refused(saved, rf"zoo.json sets '{key}'; that is the caller's choice alone")
        edit_config(saved, lambda c, key=key: c["options"].pop(key))
    with pytest.raises(OptionError, match="has no model option 'evil'"):  # the caller's own options: as zoo.load
        zoo.load(saved, evil=1)
    assert zoo.load(saved).spec.name == EXAMPLE  # edited back: loads


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.update(extra=1), r"zoo.json: the top level: Additional properties are not allowed \('extra'"),
        (lambda c: c["spec"].update(embed_dim="64"), r"spec.embed_dim: '64' is not of type 'integer', 'null'"),
        (lambda c: c["spec"].update(plugin_code="x"), r"spec: Additional properties are not allowed"),
        (lambda c: c.update(sha256="not a digest"), r"sha256: 'not a digest' does not match"),
        (lambda c: c["options"].update({"a.b": 1}), r"options: 'a.b' does not match"),
        (lambda c: c.update(plugin={"distribution": "x; rm -rf /"}), r"plugin.distribution: .* does not match"),
        (lambda c: c.pop("spec"), r"the top level: 'spec' is a required property"),
    ],
    ids=["unknown-key", "wrong-type", "unknown-spec-key", "digest", "option-name", "distribution", "missing"],
)
def test_zoo_json_is_checked_against_its_schema(saved, edit, match):
    edit_config(saved, edit)
    refused(saved, match)


def test_an_oversized_or_deeply_nested_zoo_json_is_refused(saved):
    config = saved / "zoo.json"
    config.write_text('{"zoo_format": 1, "pad": "' + "x" * MAX_JSON_BYTES + '"}')
    refused(saved, r"bytes is too large for a saved backbone's zoo.json")
    config.write_text("[" * 100_000 + "]" * 100_000)
    refused(saved, r"zoo.json is nested too deeply|is not valid JSON")
    config.write_text("{not json")
    refused(saved, r"zoo.json is not valid JSON")


def test_links_and_paths_out_of_a_saved_folder_are_refused(saved, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (saved / "labels.txt").symlink_to(secret)
    refused(saved, r"labels.txt is a link to .*secret.txt, outside")
    (saved / "labels.txt").unlink()
    (saved / "inside.txt").write_text("mine")
    (saved / "alias.txt").symlink_to(saved / "inside.txt")  # a link inside the folder is fine
    assert zoo.load(saved).spec.name == EXAMPLE
    for name in ("../../secret.txt", "/etc/passwd"):
        (saved / "tokenizer_config.json").write_text(json.dumps({"vocab_file": name}))
        refused(saved, rf"tokenizer_config.json: vocab_file = '{name}' points outside its folder")


def test_a_genuine_save_still_round_trips(saved):
    config = json.loads((saved / "zoo.json").read_text())
    assert config["plugin"] == {"name": "example", "distribution": "zoo-example-plugin", "version": "0.1.0"}
    model, again = zoo.load(EXAMPLE), zoo.load(saved)
    model.load_state_dict(again.state_dict())
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(model.eval().encode_image(images), again.eval().encode_image(images))


# -- checkpoints -------------------------------------------------------------------------------------
def good_state() -> dict:
    return {
        "model": {"w": torch.zeros(2)},
        "optimizer": {},
        "scheduler": {},
        "ema": None,
        "recipe_hash": "h",
        "backbone": "b",
        "progress": {"step": 3, "epoch": 0, "position": 3, "best": None, "bad_evals": 0, "best_step": 0},
    }


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda s: s["progress"].update(step="3"), "progress"),
        (lambda s: s["progress"].update(step=-1), "progress"),
        (lambda s: s["progress"].update(best="0.9"), "progress"),
        (lambda s: s["rng"].update(python=["1"] * 625), "rng"),
        (lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.float32)), "rng"),
        (lambda s: s["rng"]["numpy"].__setitem__(2, "624"), "rng"),
        (lambda s: s.update(model={"w": [1.0, 2.0]}), "model"),
        (lambda s: s.update(backbone=7), "backbone"),
    ],
    ids=[
        "step-string",
        "step-negative",
        "best-string",
        "python-rng",
        "torch-rng",
        "numpy-position",
        "model",
        "backbone",
    ],
)
def test_a_checkpoint_with_a_field_of_the_wrong_type_is_refused(tmp_path, edit, field):
    """Crafted with a valid checksum (anyone can recompute it): the types are checked too."""
    path = tmp_path / "last.pt"
    state = {**good_state(), "rng": rng_state()}
    edit(state)
    save_checksummed(state, path, MAGIC)
    before = files(tmp_path)
    with pytest.raises(CheckpointError, match=rf"checkpoint .*last.pt: {field} must be"):
        load_checkpoint(path, "h", "b")
    assert files(tmp_path) == before


def test_a_genuine_checkpoint_loads_and_an_incomplete_one_is_refused(tmp_path):
    save_checkpoint(tmp_path / "last.pt", good_state())
    assert load_checkpoint(tmp_path / "last.pt", "h", "b")["progress"]["step"] == 3
    save_checkpoint(tmp_path / "best.pt", {"model": {"w": torch.ones(2)}, "recipe_hash": "h", "backbone": "b"})
    assert load_checkpoint(tmp_path / "best.pt", "h", "b", needs=("model",))["model"]["w"].sum() == 2
    with pytest.raises(CheckpointError, match="lacks optimizer, scheduler, progress"):
        load_checkpoint(tmp_path / "best.pt", "h", "b")


# -- cache entries -----------------------------------------------------------------------------------
def test_a_tampered_truncated_or_swapped_cache_entry_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    calls = []

    def compute(value):
        calls.append(value)
        return {"x": torch.full((4,), float(value))}

    assert cached("t", "a", lambda: compute(1))["x"][0] == 1
    assert cached("t", "a", lambda: compute(9))["x"][0] == 1 and calls == [1]  # a whole entry is reused
    entry = tmp_path / "t" / "a.pt"
    data = bytearray(entry.read_bytes())
    data[-20] ^= 0xFF
    entry.write_bytes(bytes(data))
    assert cached("t", "a", lambda: compute(2))["x"][0] == 2  # a flipped byte: recomputed
    entry.write_bytes(entry.read_bytes()[:50])
    assert cached("t", "a", lambda: compute(3))["x"][0] == 3  # truncated: recomputed
    (tmp_path / "t" / "b.pt").write_bytes(entry.read_bytes())  # a valid entry of another key
    assert cached("t", "b", lambda: compute(4))["x"][0] == 4
    torch.save({"x": torch.zeros(4)}, entry)  # no checksum header at all
    assert cached("t", "a", lambda: compute(5))["x"][0] == 5
    assert calls == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["a.pt", "b.pt"]  # no temporaries left


# -- results tables ----------------------------------------------------------------------------------
ROW = {
    "backbone": "text/bert-tiny",
    "family": "transformers",
    "modality": "text",
    "params": 10,
    "task": "t",
    "data": "d",
    "mode": "m",
    "seeds": [0],
    "license": "mit",
    "status": "ok",
    "error": None,
    "metric": "acc",
    "mean": 0.5,
    "std": 0.0,
}


def write_table(folder: Path, **row) -> Path:
    folder.mkdir(parents=True)
    (folder / "table.json").write_text(json.dumps({"schema": 1, "name": "x", "rows": [{**ROW, **row}]}))
    return folder


@pytest.mark.parametrize(
    "row, match",
    [
        ({"mean": "<img src=x onerror=alert(1)>"}, r"rows\[0\].mean: '<img .*' is not of type 'number'"),
        ({"seeds": ["0"]}, r"rows\[0\].seeds\[0\]: '0' is not of type 'integer'"),
        ({"status": "owned"}, r"rows\[0\].status: 'owned' is not one of"),
        ({"mean": None}, r"rows\[0\].mean: None is not of type 'number'"),
    ],
    ids=["string-mean", "string-seed", "status", "missing-mean"],
)
def test_merge_refuses_a_table_whose_values_are_not_what_they_claim(tmp_path, row, match):
    folder = write_table(tmp_path / "handed", **row)
    before = files(tmp_path)
    with pytest.raises(FileError, match=match):
        merge([folder], tmp_path / "merged")
    assert files(tmp_path) == before and not (tmp_path / "merged").exists()
    result = run_zoo("compare", "--merge", str(folder), "--output", str(tmp_path / "merged"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_report_shows_strings_from_a_file_and_never_runs_them(tmp_path):
    attack = "<script>alert('zoo')</script>"
    folder = write_table(tmp_path / "handed", backbone=attack, data="a|b\nc", license=attack)
    merged = merge([folder], tmp_path / "merged")
    text = (tmp_path / "merged" / "table.md").read_text()
    assert "<script>" not in text and "&lt;script>alert('zoo')&lt;/script>" in text
    assert r"| backbone | t / a\|b c / m: acc |" in text and text == markdown(merged)  # one column, one line


# -- recipes and run folders -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_a_run_name_cannot_climb_out_of_the_output_folder(name):
    with pytest.raises(RecipeError, match="must be a plain name"):
        validate({"model": EXAMPLE, "task": "image-classification", "data": "digits", "name": name}, "recipe")


def test_a_run_folder_cannot_grant_trust_to_remote_code(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "recipe.yaml").write_text(
        "model: text/hf-hub:someone/model\ntask: text-classification\ndata: sst2\n"
        "model_options: {trust_remote_code: true}\n"
    )
    result = run_zoo("evaluate", str(run))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sets model_options.trust_remote_code: a run folder cannot grant trust" in result.stderr
