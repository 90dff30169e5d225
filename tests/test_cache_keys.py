"""Every cache key and data fingerprint is the core's, derived from the whole description of what was
computed: each reader's every option, each task option that changes features, each model option; and
training-only options leave the key alone. The tables below must name every option a reader or task
accepts, so a new option fails here until someone says whether it changes what is computed."""

from __future__ import annotations

import inspect
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import zoo
from zoo.data import load_dataset
from zoo.data.__init__ import dataset_reader
from zoo.data.readers import read_caption_file, read_image_folder, read_pairs_file, read_plain_text, read_text_file

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
# another value for each option a reader takes (by name): reading with it must give another fingerprint
VARIANTS: dict[str, Any] = {
    "text_column": "title",
    "label_column": "topic",
    "validation_fraction": 0.3,
    "test_fraction": 0.3,
    "seed": 1,
    "delimiter": ",",
    "name": "renamed",
    "first_column": "left",
    "second_column": "right",
    "score_column": "gold",
    "test_images": 3,
    "train_images": 4,
    "validation_images": 2,
    "image_column": "picture",
    "caption_column": "text",
    "images_dir": "pictures",
    "phrases": False,
    "validation": "sentences",
}
TEXT = {"pos": "good great fine lovely superb", "neg": "bad awful poor dreadful grim"}


def _write_files(root: Path) -> dict[str, Path]:
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["text,title,label,topic"]
    for index in range(40):
        label = ["pos", "neg"][index % 2]
        words = " ".join(rng.choice(TEXT[label].split()) for _ in range(4))
        rows.append(f"{words},headline {index},{label},{['a', 'b'][index % 4 < 2]}")
    (root / "reviews.csv").write_text("\n".join(rows) + "\n")
    (root / "test.csv").write_text("\n".join(rows[:1] + rows[1:11]) + "\n")
    (root / "validation.csv").write_text("\n".join(rows[:1] + rows[11:21]) + "\n")
    pairs = ["sentence1,sentence2,score,left,right,gold"] + [
        f"a {i},b {i},{i % 5},c {i},d {i},{(i * 7) % 5}" for i in range(30)
    ]
    (root / "pairs.csv").write_text("\n".join(pairs) + "\n")
    (root / "pairs-test.csv").write_text("\n".join(pairs[:1] + pairs[1:9]) + "\n")
    (root / "pairs-validation.csv").write_text("\n".join(pairs[:1] + pairs[9:17]) + "\n")
    (root / "corpus.txt").write_text("\n".join(f"line number {i}" for i in range(30)) + "\n")
    for folder in ("images", "images-test", "images-validation"):
        for label, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
            (root / folder / label).mkdir(parents=True, exist_ok=True)
            for index in range(6):
                Image.new("RGB", (8, 8), tuple(c + index for c in colour)).save(root / folder / label / f"{index}.png")
    captions = ["image,caption,picture,text"]
    for folder in ("", "pictures/"):
        (root / "captions" / folder).mkdir(parents=True, exist_ok=True)
        for index in range(10):
            Image.new("RGB", (8, 8), (index * 20, 0, 0)).save(root / "captions" / folder / f"{index}.png")
    captions += [f"{i}.png,caption {i},{(i + 1) % 10}.png,other caption {i}" for i in range(10)]
    (root / "captions" / "captions.csv").write_text("\n".join(captions) + "\n")
    return {
        "text": root / "reviews.csv",
        "pairs": root / "pairs.csv",
        "corpus": root / "corpus.txt",
        "images": root / "images",
        "captions": root / "captions" / "captions.csv",
    }


FILE_VARIANTS = {  # options that name files: the other split files of the same form
    "text": {"test_file": "test.csv", "validation_file": "validation.csv"},
    "pairs": {"test_file": "pairs-test.csv", "validation_file": "pairs-validation.csv"},
    "images": {"test_file": "images-test", "validation_file": "images-validation"},
}
READERS = {
    "text": read_text_file,
    "pairs": read_pairs_file,
    "corpus": read_plain_text,
    "images": read_image_folder,
    "captions": read_caption_file,
}


def _options(reader: Any) -> list[str]:
    return list(inspect.signature(reader).parameters)[1:]  # after the path or data root


@pytest.mark.parametrize("form", list(READERS))
def test_every_option_of_a_generic_reader_changes_the_fingerprint(form, tmp_path):
    files = _write_files(tmp_path)
    base = load_dataset(str(files[form])).fingerprint
    assert base and load_dataset(str(files[form])).fingerprint == base  # the same reading, the same key
    for option in _options(READERS[form]):
        if option in FILE_VARIANTS.get(form, {}):
            value: Any = str(tmp_path / FILE_VARIANTS[form][option])
        elif form == "captions" and option == "images_dir":
            continue  # the images beside the file and in pictures/ are other files: checked below
        else:
            assert option in VARIANTS, f"{READERS[form].__name__} takes {option!r}: add a variant of it here"
            value = VARIANTS[option]
        if form == "captions" and option == "caption_column":  # the other caption column, other pictures
            other = load_dataset(str(files[form]), caption_column="text", image_column="picture")
            assert other.fingerprint != base
            continue
        changed = load_dataset(str(files[form]), **{option: value})
        assert changed.fingerprint != base, f"{form}: {option}={value!r} read other data under the same key"


def test_pictures_elsewhere_are_other_data(tmp_path):
    files = _write_files(tmp_path)
    for index in range(10):  # pictures/ holds other pictures under the same names
        Image.new("RGB", (9, 9), (0, index * 20, 0)).save(files["captions"].parent / "pictures" / f"{index}.png")
    here = load_dataset(str(files["captions"]))
    there = load_dataset(str(files["captions"]), images_dir="pictures")
    assert here.fingerprint != there.fingerprint


def test_a_changed_file_is_other_data(tmp_path):
    files = _write_files(tmp_path)
    before = load_dataset(str(files["text"])).fingerprint
    text = files["text"].read_text().replace("headline 3", "headline three")
    files["text"].write_text(text)
    assert load_dataset(str(files["text"]), text_column="title").fingerprint != before


@pytest.mark.skipif(not DATA_ROOT.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", [spec.name for spec in zoo.list_datasets()])
def test_every_option_of_a_registered_data_set_changes_the_fingerprint(name):
    _, reader = dataset_reader(name)
    base = load_dataset(name, str(DATA_ROOT)).fingerprint
    for option in _options(reader):
        assert option in VARIANTS, f"data set {name!r} takes {option!r}: add a variant of it here"
        changed = load_dataset(name, str(DATA_ROOT), **{option: VARIANTS[option]})
        assert changed.fingerprint != base, f"{name}: {option}={VARIANTS[option]!r} kept the fingerprint"


# task options: those that change the frozen features (a new cache entry) and those that only train
FEATURE_OPTIONS = {
    "image-classification": {"image_size": 40, "crop_pct": 0.5, "flip_features": True},
    "text-classification": {},
}
TRAINING_ONLY = {
    "image-classification": {
        "dropout": 0.3,
        "label_smoothing": 0.1,
        "feature_batch_size": 7,
        "augment": "trivial",
        "on_bad_image": "fail",
        "class_map": None,  # pretrained-head mode only: it maps classes, it computes no features
    },
    "text-classification": {"dropout": 0.3, "label_smoothing": 0.1, "feature_batch_size": 7},
}


def _entries(cache: Path) -> set[str]:
    return {p.name for p in (cache / "features").glob("*.pt")}


@pytest.mark.parametrize("task", ["image-classification", "text-classification"])
def test_task_options_change_the_features_key_exactly_when_they_change_features(task, tmp_path, monkeypatch):
    from zoo.tasks import get_task

    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE", str(cache))
    files = _write_files(tmp_path / "data")
    spec, task_class = get_task(task)
    declared = set(task_class.option_help or {})
    assert declared == set(FEATURE_OPTIONS[task]) | set(TRAINING_ONLY[task]), "classify every option here"
    image = task == "image-classification"
    backbone = zoo.load("vision/example-convnet" if image else "text/bert-tiny", pretrained=False)
    dataset = load_dataset(str(files["images" if image else "text"]))

    def features(**options: Any) -> set[str]:
        task_class(backbone, dataset, "linear-probe", options, spec=spec).frozen_features("train")
        return _entries(cache)

    seen = features()
    assert len(seen) == 1
    for option, value in TRAINING_ONLY[task].items():
        if value is not None:
            assert features(**{option: value}) == seen, f"{option} is training-only but made other features"
    for option, value in FEATURE_OPTIONS[task].items():
        now = features(**{option: value})
        assert now > seen, f"{option}={value!r} changes the features but reused a cache entry"
        seen = now


@pytest.mark.parametrize("option, value", [("max_length", 8), ("pooling", "cls"), ("normalize", True)])
def test_model_options_change_the_features_key(option, value, tmp_path, monkeypatch):
    from zoo.tasks import get_task

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    files = _write_files(tmp_path / "data")
    dataset = load_dataset(str(files["text"]))
    spec, task_class = get_task("text-classification")
    for options in ({}, {option: value}):
        backbone = zoo.load("text/bert-tiny", pretrained=False, **options)
        task_class(backbone, dataset, "linear-probe", {}, spec=spec).frozen_features("train")
    assert len(_entries(tmp_path / "cache")) == 2


def test_a_probe_on_another_column_never_reads_the_first_columns_features(tmp_path, monkeypatch):
    """Two probes on one CSV and one cache: first the column that tells the labels, then a noise column."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    rng = random.Random(1)
    rows = ["review,noise,label"]
    for index in range(200):
        label = ["pos", "neg"][index % 2]
        review = " ".join(rng.choice(TEXT[label].split()) for _ in range(5))
        noise = " ".join(rng.choice((TEXT["pos"] + " " + TEXT["neg"]).split()) for _ in range(5))
        rows.append(f"{review},{noise},{label}")
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    backbone = zoo.load("text/minilm-l6")
    scores = {}
    for column in ("review", "noise"):
        metrics = backbone.evaluate(
            "text-classification",
            str(path),
            output_dir=str(tmp_path / column),
            data_options={"text_column": column},
            test_split="test",
        )
        scores[column] = metrics["test"]["accuracy"]
    assert scores["review"] > 0.9, scores
    assert scores["noise"] < 0.7, scores  # chance is 0.5: the review column's features would give > 0.9
