"""``mode: pretrained-head``: EfficientNet-Lite0's own ImageNet classifier scored on real photos
(scikit-image's) in class folders named by WordNet ids, by ImageNet names, or mapped by ``class_map``."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.engine import run
from zoo.errors import ZooError
from zoo.recipes import load_recipe, validate
from zoo.tasks.pretrained_head import head_chance, head_metrics, head_predictions

from conftest import DATA_ROOT, REPO, run_zoo

skimage_data = pytest.importorskip("skimage.data")


def _variants(photo):
    """The photo, mirrored, and its top-left 85%: three real pictures of one thing."""
    from PIL import Image

    image = Image.fromarray(photo).convert("RGB")
    crop = image.crop((0, 0, int(image.width * 0.85), int(image.height * 0.85)))
    return [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), crop]


def _folder(root, classes):
    """``root/CLASS/i.png`` for each class and its photo's three variants."""
    for name, photo in classes.items():
        (root / name).mkdir(parents=True)
        for index, image in enumerate(_variants(photo)):
            image.save(root / name / f"{index}.png")
    return root


def _recipe(tmp_path, data, **extra):
    return validate(
        {
            "model": "vision/efficientnet-lite0",
            "task": "image-classification",
            "mode": "pretrained-head",
            "data": str(data),
            "data_options": {"test_fraction": 0, "validation_fraction": 0},
            "eval_split": "train",  # nothing trains: the whole folder is scored
            "output_dir": str(tmp_path / "runs"),
            "name": "head",
            **extra,
        },
        "test",
    )


@pytest.fixture(scope="module")
def lite0():
    return zoo.load("vision/efficientnet-lite0")


def test_lite0_declares_its_imagenet_head(lite0):
    classes = lite0.pretrained_classes
    assert classes.label_set == "ImageNet-1k" and len(classes) == 1000
    assert classes.ids[281] == "n02123045" and classes.names[281] == "tabby, tabby cat"
    pixels = lite0.pixels([_variants(skimage_data.coffee())[0]])
    with torch.no_grad():
        assert classes.names[lite0.classify_pixels(pixels).argmax()] == "espresso"
    assert zoo.load("vision/efficientnet-lite0", pretrained=False).pretrained_classes is None


def test_folders_named_by_wordnet_id_and_by_name(tmp_path, lite0):
    # tiger cat (n02123159) by id; "Espresso" and "space_shuttle" by name (case, "_" for space)
    photos = {"n02123159": skimage_data.chelsea(), "Espresso": skimage_data.coffee()}
    data = _folder(tmp_path / "photos", {**photos, "space_shuttle": skimage_data.rocket()})
    results = run(_recipe(tmp_path, data), backbone=lite0)
    metrics = results["metrics"]["train"]
    # measured: the cat's crop reads Egyptian cat, the rocket reads missile (space shuttle 4th of 5)
    assert metrics["accuracy"] == pytest.approx(5 / 9)
    assert metrics["top5_accuracy"] == 1.0 and metrics["mapped_accuracy"] == 1.0
    head = results["pretrained_head"]
    assert head["label_set"] == "ImageNet-1k" and head["classifier_classes"] == 1000
    assert head["class_map"] == {"Espresso": ["n07920052"], "n02123159": ["n02123159"], "space_shuttle": ["n04266014"]}
    assert results["chance"]["train"]["accuracy"] == pytest.approx(1 / 1000)
    assert results["mode"] == "pretrained-head" and "examples" in results


def test_class_map_many_to_one(tmp_path, lite0):
    data = _folder(tmp_path / "photos", {"cat": skimage_data.chelsea(), "coffee": skimage_data.coffee()})
    cats = ["n02123045", "tiger cat", "Egyptian_cat", "Persian cat", "siamese cat"]
    recipe = _recipe(tmp_path, data, task_options={"class_map": {"cat": cats, "coffee": ["espresso", "cup"]}})
    results = run(recipe, backbone=lite0)
    assert results["metrics"]["train"]["accuracy"] == 1.0
    assert len(results["pretrained_head"]["class_map"]["cat"]) == 5


def test_metrics_count_any_mapped_class():
    logits = torch.tensor([[0.0, 3.0, 2.0, 1.0], [3.0, 0.0, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    mapped = [[1, 2], [3]]  # label 0 is classes 1 or 2; label 1 is class 3
    metrics = head_metrics(logits, torch.tensor([0, 1, 0]), mapped)
    # top-1: 1 (right), 0 (wrong), 3 (wrong); mapped: label 0 (2 vs 1), label 1 (2 vs 3), label 0 (2 vs 3: wrong)
    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["mapped_accuracy"] == pytest.approx(2 / 3)
    assert metrics["top5_accuracy"] == 1.0
    assert head_predictions(logits, torch.tensor([0, 1, 0]), mapped).tolist() == [0, 2, 1]  # right, no data class, 1's
    assert head_chance([0, 1], mapped, 4)["accuracy"] == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_unmapped_and_ambiguous_classes_are_one_line_before_any_image_is_read(tmp_path, lite0):
    data = _folder(tmp_path / "photos", {"astronaut": skimage_data.astronaut(), "espresso": skimage_data.coffee()})
    with pytest.raises(ZooError, match=r"astronaut map onto none of .*1,000 ImageNet-1k classes; .*class_map"):
        run(_recipe(tmp_path, data), backbone=lite0)
    ambiguous = {"class_map": {"astronaut": ["crane"]}}  # the bird and the machine
    with pytest.raises(ZooError, match=r"'crane' names 2 ImageNet-1k classes: n02012849 .*n03126707"):
        run(_recipe(tmp_path, data, task_options=ambiguous), backbone=lite0)
    unknown = {"class_map": {"astronaut": ["spacewalker"]}}
    with pytest.raises(ZooError, match=r"astronaut: 'spacewalker' is no ImageNet-1k class"):
        run(_recipe(tmp_path, data, task_options=unknown), backbone=lite0)
    with pytest.raises(ZooError, match=r"class_map applies to mode pretrained-head, not linear-probe"):
        run(_recipe(tmp_path, data, mode="linear-probe", task_options={"class_map": {}}), backbone=lite0)
    assert not (tmp_path / "runs" / "head" / "results.json").exists()


def test_backbones_without_a_head_are_told_in_one_line(tmp_path):
    data = _folder(tmp_path / "photos", {"espresso": skimage_data.coffee(), "missile": skimage_data.rocket()})
    recipe = tmp_path / "head.yaml"
    recipe.write_text(
        f"model: vision/cnn-tiny\ntask: image-classification\nmode: pretrained-head\ndata: {data}\n"
        f"eval_split: train\ndata_options: {{test_fraction: 0, validation_fraction: 0}}\noutput_dir: {tmp_path}\n"
    )
    done = run_zoo("run", str(recipe))  # from scratch: told before it is built
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "vision/cnn-tiny with random weights has none" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with pytest.raises(ZooError, match=r"efficientnet-lite0 with random weights has none"):
        run(_recipe(tmp_path, data, pretrained=False))
    with pytest.raises(ZooError, match=r"needs an image or multimodal backbone; model text/minilm-l6 is a text"):
        run(_recipe(tmp_path, data, model="text/minilm-l6"))


def test_a_built_backbone_without_a_head_is_told_by_the_task(tmp_path):
    data = _folder(tmp_path / "photos", {"espresso": skimage_data.coffee(), "missile": skimage_data.rocket()})
    scratch = zoo.load("vision/cnn-tiny", pretrained=False)
    with pytest.raises(ZooError, match=r"vision/cnn-tiny has no pretrained classifier"):
        run(_recipe(tmp_path, data, model="vision/cnn-tiny"), backbone=scratch)


def test_info_shows_the_head(tmp_path, capsys):
    from zoo.cli.app import main

    def info(*args: str) -> str:  # in-process: the function the `zoo` script calls
        assert main(["info", *args]) == 0
        return capsys.readouterr().out

    assert "head:           ImageNet-1k, 1,000 classes" in info("vision/efficientnet-lite0")
    assert "head:           none" in info("vision/cnn-tiny")
    facts = json.loads(info("vision/efficientnet-lite0", "--json"))
    assert facts["head"] == {"label_set": "ImageNet-1k", "classes": 1000}
    assert facts["weights"][0]["head_classes"] == 1000
    assert json.loads(info("vision/cnn-tiny", "--json"))["head"] is None


def test_the_shipped_cifar10_recipe_maps_every_class(tmp_path, lite0):
    if not (DATA_ROOT / "images" / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not found under {DATA_ROOT} (set ZOO_DATA)")
    recipe = load_recipe(REPO / "recipes" / "cifar10-pretrained-head.yaml", ["eval_limit=20", f"output_dir={tmp_path}"])
    results = run(recipe, backbone=lite0)
    mapped = results["pretrained_head"]["class_map"]
    assert len(mapped["cat"]) == 5 and len(mapped["dog"]) == 118 and len(mapped["bird"]) == 59
    assert results["examples"]["test"] == 20 and results["train"]["steps"] == 0


def test_fine_tuning_the_backbone_drops_the_head_it_no_longer_fits(tmp_path):
    """After a fine-tune the ImageNet classifier reads features it was not trained on: the saved
    backbone declares no head, `zoo info` says none, and pretrained-head refuses it in one line."""
    data = _folder(tmp_path / "photos", {"espresso": skimage_data.coffee(), "missile": skimage_data.rocket()})
    tuned = zoo.load("vision/efficientnet-lite0")
    recipe = _recipe(tmp_path, data, mode="finetune", max_steps=1, batch_size=6, name="tuned")
    run(recipe, backbone=tuned)
    assert tuned.pretrained_classes is None
    saved = tmp_path / "runs" / "tuned" / "model" / "backbone"
    assert zoo.load(str(saved)).pretrained_classes is None
    assert "head:           none" in run_zoo("info", str(saved), check=True).stdout
    with pytest.raises(ZooError, match=r"has no pretrained classifier"):
        run(_recipe(tmp_path, data, model=str(saved), name="again"))
