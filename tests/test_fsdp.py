"""FSDP (`strategy: fsdp`) with two processes on the CPU (gloo): sharded, killed with kill -9 and resumed
exactly; DDP's evaluation counts each example once; gradient checkpointing trains as without it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.engine import evaluate_run, run
from zoo.errors import RecipeError
from zoo.recipes import load_recipe

from conftest import REPO, TINY_CONTRASTIVE

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
needs_torchrun = pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="")
FINETUNE = REPO / "recipes" / "sst2-minilm-finetune.yaml"
OPTIONS = [
    "model=text/bert-tiny",
    "train_limit=96",
    "eval_limit=41",  # not a multiple of the two processes
    "test_split=null",
    "batch_size=8",
    "epochs=2",
    "log_every=1",
    "checkpoint_every=3",
    "eval_every=6",
    "lr=1e-3",
    "model_options.max_length=32",
    "strategy=fsdp",
    "name=r",
]


def torchrun(recipe: Path, options: list[str], port: int) -> list[str]:
    return [
        TORCHRUN,
        "--nproc_per_node=2",
        f"--master_port={port}",
        "-m",
        "zoo",
        "run",
        str(recipe),
        *[f"--set={o}" for o in options],
    ]


def train_losses(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(row["step"], row["loss"]) for row in rows if row["split"] == "train"]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def launched(command: list[str]) -> subprocess.CompletedProcess:
    """Run a torchrun command to its end (one thread a process) and require that it succeeded."""
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@needs_torchrun
def test_fsdp_shards_in_half_and_resumes_after_kill_exactly(tmp_path):
    launched(torchrun(FINETUNE, [*OPTIONS, f"output_dir={tmp_path / 'a'}"], 29541))
    straight = json.loads((tmp_path / "a" / "r" / "results.json").read_text())
    sharding = straight["train"]["sharding"]
    total, local = sharding["parameters"], sharding["local_parameters"]
    assert sharding["strategy"] == "fsdp" and sharding["units"] == 3  # bert-tiny's two layers, then the root
    assert len(local) == 2 and all(abs(n - total / 2) < 0.01 * total for n in local), (total, local)
    assert straight["evaluated"]["validation"] == straight["examples"]["validation"] == 41

    # the same run killed (kill -9, every process) after its checkpoint at step 9, then resumed
    killed = subprocess.Popen(
        torchrun(FINETUNE, [*OPTIONS, f"output_dir={tmp_path / 'b'}"], 29542),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        start_new_session=True,
    )
    log, deadline = tmp_path / "b" / "r" / "metrics.jsonl", time.time() + 300
    while time.time() < deadline and killed.poll() is None:
        if log.exists() and any(step >= 10 for step, _ in train_losses(tmp_path / "b" / "r")):
            break
        time.sleep(0.01)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be interrupted"
    assert not (tmp_path / "b" / "r" / "results.json").exists()
    shards = [p.name for p in (tmp_path / "b" / "r" / "checkpoints").glob("last-*.dcp")]
    assert shards, "the sharded checkpoint is a folder of shards beside last.pt"
    launched([*torchrun(FINETUNE, [*OPTIONS, f"output_dir={tmp_path / 'b'}"], 29543), "--resume"])
    again = json.loads((tmp_path / "b" / "r" / "results.json").read_text())
    assert again["metrics"] == straight["metrics"]
    assert train_losses(tmp_path / "b" / "r") == train_losses(tmp_path / "a" / "r")
    assert [p.name for p in (tmp_path / "b" / "r" / "checkpoints").glob("last-*.dcp")] == ["last-24.dcp"]
    # the saved model holds the full weights: one process re-evaluating it finds the same accuracy
    assert evaluate_run(tmp_path / "a" / "r")["accuracy"] == pytest.approx(
        straight["metrics"]["validation"]["accuracy"]
    )


@needs_torchrun
def test_ddp_evaluation_scores_each_example_once(tmp_path):
    options = [
        "model=text/bert-tiny",
        "train_limit=64",
        "eval_limit=63",  # odd: a padded shard would count an example twice
        "batch_size=16",
        "eval_batch_size=8",
        "epochs=1",
        "name=p",
    ]
    probe = REPO / "recipes" / "sst2-minilm-probe.yaml"
    single = run(load_recipe(probe, [*options, f"output_dir={tmp_path / 'one'}"]))
    launched(torchrun(probe, [*options, f"output_dir={tmp_path / 'two'}"], 29544))
    two = json.loads((tmp_path / "two" / "p" / "results.json").read_text())
    assert two["provenance"]["world_size"] == 2
    assert two["evaluated"]["validation"] == single["evaluated"]["validation"] == 63
    for name, value in single["metrics"]["validation"].items():
        assert two["metrics"]["validation"][name] == pytest.approx(value, rel=1e-4, abs=1e-5)


def test_gradient_checkpointing_trains_as_without_it(tmp_path):
    options = [
        "model=text/bert-tiny",
        "train_limit=48",
        "eval_limit=16",
        "batch_size=16",
        "max_steps=3",
        "log_every=1",
        "lr=1e-3",
        "model_options.max_length=32",
    ]
    plain = run(load_recipe(FINETUNE, [*options, f"output_dir={tmp_path}", "name=plain"]))
    checkpointed = run(
        load_recipe(FINETUNE, [*options, f"output_dir={tmp_path}", "name=ckpt", "gradient_checkpointing=true"])
    )
    a, b = train_losses(tmp_path / "plain"), train_losses(tmp_path / "ckpt")
    assert [step for step, _ in a] == [step for step, _ in b] == [1, 2, 3]
    # step 1's loss, and the later ones (which follow the gradients), as without recomputation
    assert [loss for _, loss in b] == pytest.approx([loss for _, loss in a], rel=1e-5)
    assert (
        checkpointed["recipe"]["gradient_checkpointing"] is True and plain["recipe"]["gradient_checkpointing"] is None
    )


def test_gradient_checkpointing_on_a_backbone_without_it_is_refused(tmp_path):
    import zoo

    backbone = zoo.load("vision/tv-mobilenet-v3-small", pretrained=False)
    assert backbone.set_gradient_checkpointing(True) is False
    with pytest.raises(RecipeError, match="gradient_checkpointing: backbone vision/tv-mobilenet-v3-small has none"):
        backbone.finetune(
            "image-classification",
            "digits",
            max_steps=1,
            gradient_checkpointing=True,
            output_dir=str(tmp_path),
        )


@needs_torchrun
@pytest.mark.skipif(
    not (REPO.parent / "shared" / "data" / "image_text").is_dir() and "ZOO_DATA" not in os.environ,
    reason="needs ../shared/data",
)
def test_contrastive_retrieval_under_fsdp_scores_as_under_ddp(tmp_path):
    # its whole-split evaluation calls the backbone's encoders, not the model: the root unit is gathered
    options = [
        *TINY_CONTRASTIVE,
        f"output_dir={tmp_path}",
    ]
    recipe = REPO / "recipes" / "flickr8k-minilm-text2text.yaml"
    metrics = {}
    for strategy, port in (("ddp", 29545), ("fsdp", 29546)):
        launched(torchrun(recipe, [*options, f"strategy={strategy}", f"name={strategy}"], port))
        metrics[strategy] = json.loads((tmp_path / strategy / "results.json").read_text())["metrics"]["test"]
    for name, value in metrics["ddp"].items():
        if isinstance(value, float):
            assert metrics["fsdp"][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


def test_a_sharded_checkpoint_whose_metadata_names_code_is_refused(tmp_path):
    import pickle

    from zoo.engine.checkpoint import CheckpointError, _reader

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    folder = tmp_path / "last-3.dcp"
    folder.mkdir()
    (folder / ".metadata").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match=r"names posix.system, which a checkpoint never holds"):
        _reader(folder).read_metadata()


def test_sharded_checkpoint_round_trip_and_a_model_it_does_not_fit(tmp_path):
    import torch

    from zoo.engine.checkpoint import CheckpointError, load_sharded, save_sharded

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    name = save_sharded(tmp_path, 1, model, optimizer, lambda value: value)  # one process: no process group
    again = torch.nn.Linear(4, 3)
    again_optimizer = torch.optim.AdamW(again.parameters(), lr=0.1)
    load_sharded(tmp_path / name, again, again_optimizer)
    assert torch.equal(again.weight, model.weight)
    assert torch.equal(again_optimizer.state[again.weight]["exp_avg"], optimizer.state[model.weight]["exp_avg"])
    wider = torch.nn.Linear(5, 3)
    with pytest.raises(CheckpointError, match="does not fit this run"):
        load_sharded(tmp_path / name, wider, torch.optim.AdamW(wider.parameters(), lr=0.1))
