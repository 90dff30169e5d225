"""The export contract, whatever the format: a third-party format plugs in through
``register_export_formats``, an export is kept only when its runtime reproduces zoo's outputs, a
failed or corrupted one is one line, and every export carries a manifest and a model card."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

import zoo
from zoo.exporting import ExportError, verify

from conftest import REPO, run_zoo

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
    card = (tmp_path / "out" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "text/bert-tiny" and "zoo-folder" in front["tags"]
    assert "## How to load it" in card and "zoo.load(DIR + '/saved')" in card
    assert verify(tmp_path / "out")["text/7/embedding"] == 0.0  # again, later, from the stored samples


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
    assert "the zoo-folder export does not load" in line and "checksum does not match" in line


def test_the_cli_names_formats_and_says_what_to_install(tmp_path):
    unknown = run_zoo("export", "text/bert-tiny", "--to", "onxx", "-o", str(tmp_path / "x"))
    assert unknown.returncode != 0 and "no export format 'onxx'; did you mean 'onnx'?" in unknown.stderr
    assert "onnx " in run_zoo("export", "--help", check=True).stdout
    # onnx absent (import fails as it does on a machine without zoo[export]): one line naming what to install
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnxscript'] = None; from zoo.cli import main; "
        f"sys.exit(main(['export', 'text/bert-tiny', '--to', 'onnx', '-o', {str(tmp_path / 'y')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--to onnx needs onnx, which is not installed: pip install onnx onnxruntime onnxscript" in done.stderr
    assert not (tmp_path / "y").exists()
