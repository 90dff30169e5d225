"""The engine on tiny versions of every shipped recipe, plus resume, NaN, bad data and the Python API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import zoo
from zoo.engine import evaluate_run, run
from zoo.engine.checkpoint import CheckpointError, read_checkpoint
from zoo.engine.loop import TrainingError
from zoo.recipes import load_recipe
from zoo.tasks.metrics import classification_metrics

from conftest import REPO, run_zoo

# the classification recipes that train; retrieval and zero-shot ones are exercised in test_retrieval.py,
# pretrained-head ones (nothing trains) in test_pretrained_head.py, protocol ones in test_protocols.py
RECIPES = sorted(
    p
    for p in (REPO / "recipes").glob("*.yaml")
    if "\ncells:" not in p.read_text()
    and ("task: text-classification" in p.read_text() or "task: image-classification" in p.read_text())
    and "mode: pretrained-head" not in p.read_text()
    and "\nprotocol:" not in p.read_text()
)
TINY = ["train_limit=24", "eval_limit=24", "batch_size=8", "epochs=3", "log_every=1", "eval_batch_size=24"]


def tiny(path: Path, tmp_path: Path, *extra: str):
    recipe = load_recipe(path, [*TINY, f"output_dir={tmp_path}", *extra])
    if recipe.test_split:
        recipe.test_split = None  # the full TREC_10 is evaluated by the real recipe, not here
    if recipe.task_options.get("image_size"):
        recipe.task_options["image_size"] = 64
    if recipe.model_options.get("max_length"):
        recipe.model_options["max_length"] = 32
    return recipe


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["split"] == "train"]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_tiny_version_of_every_recipe_learns_and_reports_true_metrics(path, tmp_path):
    recipe = tiny(path, tmp_path, "lr=1e-3" if "probe" not in path.name else "lr=1e-2")
    results = run(recipe)
    run_dir = Path(results["run_dir"])
    curve = losses(run_dir)
    assert len(curve) == results["train"]["steps"] >= 9
    assert sum(curve[-3:]) / 3 < sum(curve[:3]) / 3, f"training loss did not fall: {curve}"
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["metrics"] == results["metrics"]
    assert saved["provenance"]["recipe_hash"] == recipe.hash() and saved["provenance"]["versions"]["torch"]
    # metrics recomputed from the saved model agree with scikit-learn on the same predictions
    again = evaluate_run(run_dir)
    assert again["accuracy"] == pytest.approx(results["metrics"][recipe.eval_split]["accuracy"])
    assert {p.name for p in (run_dir / "model").iterdir()} >= {"head.json", "head.safetensors"}
    assert not list(run_dir.rglob(".*.tmp")) and not list(run_dir.rglob(".last.pt.*"))


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    generator = torch.Generator().manual_seed(0)
    for classes in (2, 4, 7):
        targets = torch.randint(0, classes, (500,), generator=generator)
        preds = torch.where(
            torch.rand(500, generator=generator) < 0.6, targets, torch.randint(0, classes, (500,), generator=generator)
        )
        preds[preds == classes - 1] = 0  # a class that is never predicted
        ours = classification_metrics(preds, targets, classes)
        assert ours["accuracy"] == pytest.approx(accuracy_score(targets, preds))
        assert ours["macro_f1"] == pytest.approx(f1_score(targets, preds, average="macro"))


def test_resume_after_kill_finishes_exactly_like_an_uninterrupted_run(tmp_path):
    base = [
        "model=text/bert-tiny",
        "train_limit=96",
        "eval_limit=40",
        "batch_size=8",
        "epochs=2",
        "log_every=1",
        "checkpoint_every=3",
        "lr=1e-3",
        "model_options.max_length=32",
        "group_by_length=true",
        "ema_decay=0.9",
    ]  # the evaluated weights are the moving average, so it must resume exactly too
    recipe = REPO / "recipes" / "sst2-minilm-finetune.yaml"
    straight = run(load_recipe(recipe, [*base, f"output_dir={tmp_path / 'a'}", "name=r"]))
    command = [
        sys.executable,
        "-m",
        "zoo",
        "run",
        str(recipe),
        *[f"--set={o}" for o in base],
        f"--set=output_dir={tmp_path / 'b'}",
        "--set=name=r",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "b" / "r" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill -9 mid-epoch, after the checkpoint at step 9 is written
        if log.exists() and any(json.loads(row)["step"] >= 10 for row in log.read_text().splitlines() if row.strip()):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be interrupted"
    resumed = run(load_recipe(recipe, [*base, f"output_dir={tmp_path / 'b'}", "name=r"]), resume=True)
    assert resumed["metrics"] == straight["metrics"]
    assert losses(tmp_path / "b" / "r") == losses(tmp_path / "a" / "r")
    made_by_open = tmp_path / "made-by-open"
    made_by_open.touch()
    for name in ("recipe.yaml", "metrics.jsonl", "results.json"):  # written atomically, with open()'s permissions
        assert (tmp_path / "b" / "r" / name).stat().st_mode & 0o777 == made_by_open.stat().st_mode & 0o777, name


def test_resume_refuses_another_recipe_or_backbone(tmp_path):
    recipe = REPO / "recipes" / "sst2-minilm-probe.yaml"
    options = ["train_limit=40", "eval_limit=20", "epochs=1", f"output_dir={tmp_path}", "name=r"]
    run(load_recipe(recipe, options))
    with pytest.raises(zoo.ZooError, match="holds an earlier run: pass --resume"):
        run(load_recipe(recipe, options))
    with pytest.raises(CheckpointError, match="written by a different recipe"):
        run(load_recipe(recipe, [*options, "lr=0.5"]), resume=True)
    with pytest.raises(CheckpointError, match="written for backbone 'text/minilm-l6', not 'text/bert-tiny'"):
        run(load_recipe(recipe, [*options, "model=text/bert-tiny"]), resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from zoo.tasks.classification import Classification

    original, calls = Classification.step, []

    def step_that_diverges(self, model, batch):  # fault injection: the 7th training batch gives a NaN loss
        loss, outputs = original(self, model, batch)
        calls.append(model.training)
        return (loss * float("nan") if sum(calls) == 7 else loss), outputs

    monkeypatch.setattr(Classification, "step", step_that_diverges)
    recipe = load_recipe(
        REPO / "recipes" / "sst2-minilm-probe.yaml",
        [
            "train_limit=200",
            "eval_limit=20",
            "epochs=5",
            "batch_size=20",
            "checkpoint_every=2",
            f"output_dir={tmp_path}",
        ],
    )
    with pytest.raises(
        TrainingError,
        match=r"loss is nan at step 7 \(epoch 0\); the last good checkpoint is "
        r".*last.pt. Lower lr or check the data",
    ):
        run(recipe)
    checkpoint = read_checkpoint(tmp_path / recipe.name / "checkpoints" / "last.pt")
    assert checkpoint["progress"]["step"] == 6
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())


def test_python_api_finetune_and_evaluate(tmp_path):
    # reviews that BERT-tiny (random weights here) tells apart within a few steps: a run that does not train,
    # or scores against the wrong labels, stays at chance, 0.5
    reviews = tmp_path / "reviews.tsv"
    reviews.write_text(
        "".join(
            f"{'a wonderful, delightful film' if i % 2 else 'a dreadful, boring film'} number {i}"
            f"\t{'pos' if i % 2 else 'neg'}\n"
            for i in range(80)
        )
    )
    torch.manual_seed(0)  # the backbone's initial weights
    backbone = zoo.load("text/bert-tiny")
    results = backbone.finetune(
        "text-classification",
        data=str(reviews),
        epochs=6,
        lr=3e-3,
        train_limit=32,
        eval_limit=16,
        batch_size=16,
        output_dir=str(tmp_path),
    )
    assert results["train"]["steps"] == 12 and results["chance"]["validation"]["accuracy"] == 0.5
    assert results["metrics"]["validation"]["accuracy"] >= 0.9  # seen: 1.0 from each of five initial weights
    metrics = backbone.evaluate(
        "text-classification", str(reviews), train_limit=64, eval_limit=32, output_dir=str(tmp_path)
    )  # a probe of the finetuned backbone
    assert set(metrics["validation"]) == {"accuracy", "macro_f1", "loss"}
    assert metrics["validation"]["accuracy"] >= 0.9 and metrics["validation"]["loss"] < 0.3  # seen: 1.0, <= 0.008
    with pytest.raises(
        zoo.ZooError,
        match="needs an image or multimodal backbone; model text/bert-tiny is a text backbone",
    ):
        backbone.finetune("image-classification", data="cifar10", output_dir=str(tmp_path))


def test_cli_run_and_evaluate(tmp_path, capsys):
    recipe = REPO / "recipes" / "sst2-minilm-probe.yaml"
    result = run_zoo(
        "run",
        str(recipe),
        "--set",
        "train_limit=400",
        "--set",
        "eval_limit=100",
        "--set",
        "test_split=null",
        "--set",
        f"output_dir={tmp_path}",
        "--json",
        check=True,
    )
    out = json.loads(result.stdout)
    # MiniLM's pretrained features carry sentiment: seen 0.72 (0.69-0.72 over seeds 0-2) against chance 0.56
    saved = json.loads((Path(out["run_dir"]) / "results.json").read_text())
    assert saved["chance"]["validation"]["accuracy"] == pytest.approx(0.56)
    assert out["metrics"]["validation"]["accuracy"] >= 0.63 and out["metrics"]["validation"]["loss"] < 0.65
    again = json.loads(run_zoo("evaluate", out["run_dir"], check=True).stdout)
    assert again["accuracy"] == pytest.approx(out["metrics"]["validation"]["accuracy"])
    from zoo.cli.app import main  # in-process: the function the `zoo` script calls

    capsys.readouterr()
    assert main(["run", str(recipe), "--set", "epoch=2"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'epoch'; did you mean 'epochs'?" in err and "Traceback" not in err


def test_autocast_follows_the_recipe_precision():
    import warnings

    from zoo.engine.loop import autocast_for

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    context, name = autocast_for("bf16", cpu)
    assert name == "bf16" and isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    with context:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    for precision in ("fp32", "auto"):
        context, name = autocast_for(precision, cpu)
        assert name == "fp32" and not isinstance(context, torch.autocast)
        with context:
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with warnings.catch_warnings():  # torch warns that CUDA is not available on a machine without it
        warnings.simplefilter("ignore")
        assert autocast_for("auto", cuda)[1] == autocast_for("bf16", cuda)[1] == "bf16"
    assert autocast_for("fp32", cuda)[1] == "fp32"


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_evaluate_run_evaluates_in_the_precision_the_run_trained_in(tmp_path, precision):
    from zoo.recipes import validate

    values = {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "mode": "linear-probe",
        "train_limit": 64,
        "eval_limit": 64,
        "epochs": 2,
        "batch_size": 16,
        "precision": precision,
        "output_dir": str(tmp_path),
        "name": precision,
    }
    results = run(validate(values, "test"))
    assert results["train"]["precision"] == results["provenance"]["precision"] == precision
    # bf16 and fp32 give losses about 2e-4 apart (relative); evaluated in the other precision, this fails
    again = evaluate_run(results["run_dir"])
    assert again["loss"] == pytest.approx(results["metrics"]["validation"]["loss"], rel=1e-5, abs=0)
    assert again["accuracy"] == results["metrics"]["validation"]["accuracy"]


def test_flip_features_double_the_probe_training_set_and_average_at_evaluation(tmp_path):
    from zoo.engine import prepare
    from zoo.recipes import validate

    values = {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "mode": "linear-probe",
        "output_dir": str(tmp_path),
    }
    plain = prepare(validate(values, "test"))
    flipped = prepare(validate({**values, "task_options": {"flip_features": True}}, "test"))
    (train, labels), (both, doubled) = plain.splits["train"], flipped.splits["train"]
    assert len(both) == 2 * len(train) and torch.equal(doubled, torch.cat([labels, labels]))
    assert torch.equal(both[: len(train)], train) and not torch.equal(both[len(train) :], train)
    validation, mirrored = plain.splits["validation"][0], flipped.splits["validation"][0]
    mirror_only = 2 * mirrored - validation  # the mean of the two encodings, undone
    assert not torch.allclose(mirror_only, validation)


def test_flip_features_in_finetuning_average_each_image_with_its_mirror_at_evaluation(tmp_path):
    import torch.nn.functional as F

    from zoo.engine import prepare
    from zoo.recipes import validate

    task = prepare(
        validate(
            {
                "model": "vision/example-convnet",
                "task": "image-classification",
                "data": "digits",
                "task_options": {"flip_features": True},
                "output_dir": str(tmp_path),
            },
            "test",
        )
    )
    model = task.model().eval()
    examples = task.examples("validation", train=False)
    images, labels = task.collate([examples[i] for i in range(16)])
    with torch.no_grad():
        loss, _ = task.step(model, (images, labels))
        averaged = (model(images) + model(images.flip(-1))) / 2
        assert torch.allclose(loss, F.cross_entropy(averaged, labels))
        assert not torch.allclose(loss, F.cross_entropy(model(images), labels))
        model.train()
        torch.manual_seed(0)
        loss, _ = task.step(model, (images, labels))
        torch.manual_seed(0)
        assert torch.allclose(loss, F.cross_entropy(model(images), labels))  # training sees one copy


def test_trivial_augment_changes_training_images_only_and_a_bad_name_is_one_clear_error(tmp_path):
    from zoo.data import DataError
    from zoo.engine import prepare
    from zoo.recipes import validate

    values = {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "output_dir": str(tmp_path),
    }
    light = prepare(validate(values, "test"))
    trivial = prepare(validate({**values, "task_options": {"augment": "trivial"}}, "test"))

    def images(task, split, train, seed=0):
        torch.manual_seed(seed)
        examples = task.examples(split, train=train)
        return torch.stack([examples[i][0] for i in range(32)])

    assert torch.equal(images(light, "validation", False), images(trivial, "validation", False))
    assert torch.equal(images(trivial, "train", True), images(trivial, "train", True))  # seeded
    assert not torch.equal(images(light, "train", True), images(trivial, "train", True))
    with pytest.raises(DataError, match="augment must be one of light, trivial; got 'heavy'"):
        prepare(validate({**values, "task_options": {"augment": "heavy"}}, "test")).examples("train", train=True)


def test_ema_weights_are_the_ones_evaluated_and_kept(tmp_path):
    from zoo.engine import prepare
    from zoo.engine.distributed import Context
    from zoo.engine.loop import train
    from zoo.recipes import RecipeError, validate

    values = {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "train_limit": 64,
        "eval_limit": 32,
        "batch_size": 16,
        "epochs": 2,
        "lr": 1e-2,
        "keep_best": False,
        "ema_decay": 0.8,
        "output_dir": str(tmp_path),
    }
    recipe = validate(values, "test")
    trained = train(prepare(recipe), recipe, tmp_path, Context())
    saved = read_checkpoint(tmp_path / "checkpoints" / "last.pt")
    average = {k.removeprefix("module."): v for k, v in saved["ema"].items() if k.startswith("module.")}
    final = trained["model"].state_dict()
    assert int(saved["ema"]["n_averaged"]) == trained["summary"]["steps"] == 8
    assert all(torch.equal(final[k], average[k]) for k in final)  # the run ends with the average ...
    assert not all(torch.equal(saved["model"][k], average[k]) for k in average)  # ... not the last step's weights
    with pytest.raises(RecipeError, match="ema_decay must be"):
        validate({**values, "ema_decay": 1.5}, "test")


def test_group_by_length_sorts_each_shuffled_run_and_keeps_every_example():
    from zoo.engine.loop import epoch_order

    lengths = torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(1))
    order = epoch_order(0, 3, 1000, lengths, group=128)
    assert sorted(order.tolist()) == list(range(1000))
    assert torch.equal(order, epoch_order(0, 3, 1000, lengths, group=128))
    assert not torch.equal(order, epoch_order(0, 4, 1000, lengths, group=128))
    for group in order.split(128):
        assert torch.equal(lengths[group], lengths[group].sort(descending=True).values)
    assert set(order[:128].tolist()) == set(epoch_order(0, 3, 1000)[:128].tolist())  # the shuffle's own runs
    # a batch of 16 pads to its longest member: grouping cuts the padded tokens
    padded = lambda o: sum(int(lengths[b].max()) * len(b) for b in o.split(16))
    assert padded(order) < 0.8 * padded(epoch_order(0, 3, 1000))
