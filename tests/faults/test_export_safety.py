"""`zoo export` never loses a user's file, and `--verify` is an integrity check.

An export goes to a new or empty folder; anything else (a folder of the user's, the current folder and
those above it, home, /) is refused in one line with every file left as it was. A zoo export is
replaced only with --force, and then only the files it recorded: the user's files stay. The manifest
records every file's SHA-256 and seals itself, so an edited weight, tokenizer setting or tolerance
fails verification, naming what changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.exporting import ExportError, ExportTargetError, verify
from zoo.exporting.folders import sealed

from conftest import REPO
from tiny_models import hf_folder


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its contents: what a refusal must leave as it was."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def zoo_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A tiny BERT (mean pooling, normalised) saved as a Hugging Face folder: exports in about 2 s."""
    return hf_folder(tmp_path_factory.mktemp("tiny"), "bert")


@pytest.fixture(scope="module")
def exported(bert, tmp_path_factory) -> Path:
    """One --to hf export of the tiny BERT, which each test copies before changing it."""
    out = tmp_path_factory.mktemp("exported") / "bert-hf"
    zoo.export(str(bert), "hf", out)
    return out


@pytest.fixture
def copy(exported, tmp_path) -> Path:
    shutil.copytree(exported, tmp_path / "copy")
    return tmp_path / "copy"


def test_a_folder_of_the_user_s_is_refused_in_one_line_and_keeps_every_file(bert, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.md").write_text("my notes\n")
    (folder / "reviews.csv").write_text("text,label\ngood,pos\n")
    before = files(folder)
    for force in ([], ["--force"]):
        done = zoo_cli("export", str(bert), "--to", "hf", "-o", str(folder), *force, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert f"{folder} exists and is not a zoo export (it holds notes.md)" in line
        assert "export into a new or empty folder" in line
        assert files(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging left


def test_the_current_folder_and_the_folders_above_it_home_and_root_are_refused_even_with_force(
    bert, tmp_path, monkeypatch
):
    work = tmp_path / "home" / "work"
    work.mkdir(parents=True)
    (work / "notes.md").write_text("my notes\n")
    done = zoo_cli("export", str(bert), "--to", "hf", "-o", ".", "--force", cwd=work)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"{work} is the current folder: an export gets a folder of its own, e.g. -o {work / 'export'}" in line
    assert files(work) == {"notes.md": b"my notes\n"}
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for output, what in [("..", "your home folder"), (tmp_path, "a folder above the current one"), ("/", "root")]:
        with pytest.raises(ExportTargetError, match=what):
            zoo.export(str(bert), "hf", output, force=True)
    assert files(tmp_path) == {"home/work/notes.md": b"my notes\n"}


def test_an_empty_folder_is_used_and_an_export_is_replaced_only_with_force(bert, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    zoo.export(str(bert), "hf", out)  # an empty folder is taken as is
    first = json.loads((out / "zoo-export.json").read_text())
    done = zoo_cli("export", str(bert), "--to", "pt2", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"{out} holds a zoo export: pass --force (force=True) to replace it" in line
    assert json.loads((out / "zoo-export.json").read_text()) == first
    # the user adds a document and a hidden file; --force replaces the export's own files and keeps theirs
    (out / "notes.md").write_text("how we use it\n")
    (out / ".sync").mkdir()
    (out / ".sync" / "state").write_text("x\n")
    done = zoo_cli("export", str(bert), "--to", "pt2", "-o", str(out), "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    second = json.loads((out / "zoo-export.json").read_text())
    assert second["format"] == "pt2" and f"seal {second['seal']}" in done.stderr
    assert set(files(out)) == {"zoo-export.json", "notes.md", ".sync/state", *second["files"]}
    assert not set(first["files"]) - set(second["files"]) & set(files(out))  # the hf files are gone
    assert not (out / "1_Pooling").exists()  # and the folders only they were in
    assert (out / "notes.md").read_text() == "how we use it\n" and (out / ".sync" / "state").read_text() == "x\n"
    assert verify(out)  # documents and hidden files beside an export do not change what it loads as


def test_force_refuses_a_file_a_loader_could_read_and_an_edited_file_of_the_export(copy, bert):
    (copy / "pytorch_model.bin").write_bytes(b"weights of the user's")
    before = files(copy)
    with pytest.raises(ExportTargetError, match="pytorch_model.bin is not part of the zoo export there") as caught:
        zoo.export(str(bert), "hf", copy, force=True)
    assert "\n" not in str(caught.value) and files(copy) == before
    (copy / "pytorch_model.bin").unlink()
    (copy / "README.md").write_text("# our model card, rewritten by hand\n")
    before = files(copy)
    with pytest.raises(ExportTargetError, match="README.md was changed since zoo exported it"):
        zoo.export(str(bert), "hf", copy, force=True)
    assert files(copy) == before


def test_a_manifest_cannot_make_force_remove_a_file_outside_the_export(copy, bert):
    # zoo-export.json is data: a crafted one listing ../victim.txt with its true hash removes nothing
    victim = copy.parent / "victim.txt"
    victim.write_text("not zoo's\n")
    manifest = json.loads((copy / "zoo-export.json").read_text())
    manifest["files"]["../victim.txt"] = {"sha256": hashlib.sha256(b"not zoo's\n").hexdigest(), "size": 10}
    (copy / "zoo-export.json").write_text(json.dumps(manifest))
    before = files(copy)
    with pytest.raises(ExportTargetError, match="records '../victim.txt', which is not a path inside the export"):
        zoo.export(str(bert), "hf", copy, force=True)
    assert victim.read_text() == "not zoo's\n" and files(copy) == before


def test_an_untouched_export_verifies_and_prints_its_seal(copy):
    manifest = json.loads((copy / "zoo-export.json").read_text())
    assert set(manifest["files"]) == set(files(copy)) - {"zoo-export.json"}
    for relative, entry in manifest["files"].items():
        assert entry["size"] == (copy / relative).stat().st_size and len(entry["sha256"]) == 64
    done = zoo_cli("export", str(copy), "--verify", cwd=copy.parent)
    assert done.returncode == 0, done.stderr
    assert f"seal {manifest['seal']}" in done.stderr and "every file as recorded, parity passed" in done.stdout


def _set_word_row(folder: Path) -> None:
    """One word's embedding row set to 5.0: sentences without that word embed as before."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[key][len(state[key]) - 1] = 5.0
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _raise_max_length(folder: Path) -> None:
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_max_length"] = 512
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def _raise_atol(folder: Path) -> None:
    manifest = json.loads((folder / "zoo-export.json").read_text())
    manifest["atol"] = 1e9
    (folder / "zoo-export.json").write_text(json.dumps(manifest, indent=2))


def _add_weights(folder: Path) -> None:
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_word_row, "model.safetensors: changed since the export"),
        (_raise_max_length, "tokenizer_config.json: changed since the export"),
        (_raise_atol, "zoo-export.json was edited after the export: its seal does not match its contents"),
        (_add_weights, "pytorch_model.bin: not part of the export (zoo-export.json does not record it)"),
        (lambda folder: (folder / "tokenizer.json").unlink(), "tokenizer.json: missing (zoo-export.json records it)"),
    ],
    ids=["embedding-row", "max-length", "atol", "added-weights", "deleted-tokenizer"],
)
def test_a_changed_export_fails_verification_naming_what_changed(copy, change, message):
    change(copy)
    done = zoo_cli("export", str(copy), "--verify", cwd=copy.parent)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert message in line


def test_parity_still_catches_what_a_resealed_manifest_hides(copy):
    # a forger rewrites the hashes and the seal: a changed weight the samples use still fails parity
    from safetensors.torch import load_file, save_file

    state = load_file(str(copy / "model.safetensors"))
    key = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[key] = -state[key]
    save_file(state, str(copy / "model.safetensors"), metadata={"format": "pt"})
    manifest = json.loads((copy / "zoo-export.json").read_text())
    (copy / "zoo-export.json").write_text(json.dumps(sealed(manifest, copy)))
    with pytest.raises(ExportError, match="the hf export fails parity: its text embedding"):
        verify(copy)
