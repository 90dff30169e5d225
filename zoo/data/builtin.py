"""The named data sets under the data root (see ``../shared/data/README.md``), and scikit-learn digits."""

from __future__ import annotations

import random
from pathlib import Path

from zoo.data.base import DataError, Dataset, Split, classification, encode_labels, stratified_split
from zoo.data.readers import read_caption_file, read_captions, read_image_folder, read_lines, read_table


def _folder(root: Path, relative: str) -> Path:
    folder = root / relative
    if not folder.is_dir():
        raise DataError(
            f"{folder} not found: the data root {root} must hold {relative}/ (pass --data-root or set ZOO_DATA)"
        )
    return folder


def _tsv_pairs(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for number, line in enumerate(read_lines(path), 1):
        text, tab, label = line.rpartition("\t")
        if not tab:
            raise DataError(f"{path}: line {number} has no tab between sentence and label")
        texts.append(text.strip())
        labels.append(label.strip())
    return texts, labels


def sst2(
    root: Path, validation_fraction: float = 0.05, seed: int = 0, phrases: bool = True, validation: str = "phrases"
) -> Dataset:
    """GLUE SST-2: train.tsv -> train (5% held out as validation), dev.tsv -> test.

    train.tsv holds every phrase of each sentence's parse tree; ``phrases=False`` keeps only the
    whole sentences (6,957 of its 65,328 rows), e.g. for a pretraining corpus without repeats.
    ``validation="sentences"`` holds out whole sentences, as dev.tsv is, instead of random rows
    (mostly short phrases whose sentences still train), and takes out of training every phrase
    found only in the held-out sentences: validation then measures what dev.tsv measures.
    """
    if validation not in ("phrases", "sentences"):
        raise DataError(f"sst2: validation={validation!r} is not a choice; use phrases or sentences")
    folder = _folder(root, "text/sst2")
    names = {"0": "negative", "1": "positive"}
    splits = {}
    for split, file in (("train", "train.tsv"), ("test", "dev.tsv")):
        texts, labels = _tsv_pairs(folder / file)
        splits[split] = (texts, [names.get(label, label) for label in labels])
    if validation == "sentences" and validation_fraction:
        splits["train"], splits["validation"] = _hold_out_sentences(*splits["train"], validation_fraction, seed)
    if not phrases:
        splits["train"] = _whole_sentences(*splits["train"])
    return classification(
        "sst2",
        "text-classification",
        splits,
        ["negative", "positive"],
        validation_fraction,
        seed=seed,
        origins={"train": "train.tsv", "test": "dev.tsv (GLUE's dev set)"},
    )


def _parts(text: str, proper: bool) -> set[str]:
    """Every contiguous run of ``text``'s words, single-spaced (without the whole text if ``proper``)."""
    words = text.split()
    return {
        " ".join(words[i:j])
        for i in range(len(words))
        for j in range(i + 1, len(words) + 1)
        if not proper or j - i < len(words)
    }


def _sentence_rows(texts: list[str]) -> list[int]:
    """Indices of the rows that are not a part of another row (a contiguous run of its words).

    Longest first: a part of a part is a part, so only the whole sentences' parts are ever listed."""
    parts: set[str] = set()
    whole = []
    for k in sorted(range(len(texts)), key=lambda k: -len(texts[k].split())):
        text = " ".join(texts[k].split())
        if text not in parts:
            whole.append(k)
            parts |= _parts(text, proper=True)
    return sorted(whole)


def _whole_sentences(texts: list[str], labels: list[str]) -> tuple[list[str], list[str]]:
    kept = _sentence_rows(texts)
    return [texts[k] for k in kept], [labels[k] for k in kept]


def _hold_out_sentences(
    texts: list[str], labels: list[str], fraction: float, seed: int
) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """(train, validation): ``fraction`` of the whole sentences (stratified, seeded) as validation;
    training keeps the rows that are a part of a remaining sentence."""
    sentences = _sentence_rows(texts)
    kept, held = stratified_split([labels[k] for k in sentences], fraction, seed, salt="validation")
    held_out = {" ".join(texts[sentences[k]].split()) for k in held}
    training_parts = set().union(*(_parts(texts[sentences[k]], proper=False) for k in kept)) - held_out
    train = [k for k, text in enumerate(texts) if " ".join(text.split()) in training_parts]
    validation = [sentences[k] for k in held]
    return ([texts[k] for k in train], [labels[k] for k in train]), (
        [texts[k] for k in validation],
        [labels[k] for k in validation],
    )


def ag_news(root: Path, validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """AG News (title + description): 20% test, 10% of the rest validation; stratified, seeded."""
    path = _folder(root, "text/ag_news") / "test.csv"
    rows = read_table(path)
    texts = [f"{row['title']}. {row['description']}".replace("\\", " ") for row in rows]
    return classification(
        "ag_news",
        "text-classification",
        {"train": (texts, [r["class"] for r in rows])},
        ["World", "Sports", "Business", "Sci/Tech"],
        validation_fraction,
        test_fraction,
        seed,
    )


def _trec(root: Path, fine: bool, validation_fraction: float, seed: int) -> Dataset:
    folder = _folder(root, "text/trec")
    splits = {}
    for split, file in (("train", "train_5500.label"), ("test", "TREC_10.label")):
        texts, labels = [], []
        for line in read_lines(folder / file):
            label, _, text = line.partition(" ")
            texts.append(text.strip())
            labels.append(label if fine else label.split(":")[0])
        splits[split] = (texts, labels)
    name = "trec-fine" if fine else "trec"
    dataset = classification(
        name,
        "text-classification",
        {"train": splits["train"]},
        sorted(set(splits["train"][1])),
        validation_fraction=validation_fraction,
        seed=seed,
    )
    texts, labels = splits["test"]
    try:
        ids, _ = encode_labels(labels, dataset.label_names)
    except DataError as exc:
        raise DataError(f"{name} (test split): {exc}") from None
    dataset.splits["test"] = Split(texts, ids)
    dataset.origins["test"] = "TREC_10.label"
    return dataset


def trec(root: Path, validation_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """TREC question types, 6 coarse classes: train_5500 (10% held out) and TREC_10 as test."""
    return _trec(root, False, validation_fraction, seed)


def trec_fine(root: Path, validation_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """TREC question types, 50 fine classes."""
    return _trec(root, True, validation_fraction, seed)


def sms_spam(root: Path, validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """UCI SMS Spam Collection: 20% test, 10% of the rest validation; stratified, seeded."""
    path = _folder(root, "text/sms_spam") / "SMSSpamCollection"
    texts, labels = [], []
    for number, line in enumerate(read_lines(path)[1:], 2):
        label, tab, text = line.partition("\t")
        if not tab:
            raise DataError(f"{path}: line {number} has no tab between label and message")
        texts.append(text)
        labels.append(label)
    return classification(
        "sms_spam",
        "text-classification",
        {"train": (texts, labels)},
        ["ham", "spam"],
        validation_fraction,
        test_fraction,
        seed,
    )


def cifar10(root: Path, validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """8,000 CIFAR-10 images in class folders: 20% test, 10% of the rest validation; stratified, seeded."""
    dataset = read_image_folder(_folder(root, "images/cifar10"), validation_fraction, test_fraction, seed)
    dataset.name = "cifar10"
    return dataset


def flickr8k(
    root: Path, test_images: int = 200, train_images: int | None = None, validation_images: int = 0, seed: int = 0
) -> Dataset:
    """Flickr8k image-caption pairs, split by image: ``test_images`` held out, then ``validation_images``, seeded."""
    path = _folder(root, "image_text/flickr8k") / "captions.csv"
    return read_caption_file(
        path,
        test_images,
        train_images,
        seed=seed,
        images_dir="images",
        name="flickr8k",
        validation_images=validation_images,
    )


def digits(
    root: Path | None = None, validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """scikit-learn's 1,797 hand-written digits (8x8): 20% test, 10% of the rest validation; no data root."""
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = [np.repeat((img * 255 / 16).astype("uint8")[:, :, None], 3, axis=2) for img in bunch.images]
    return classification(
        "digits",
        "image-classification",
        {"train": (images, [str(t) for t in bunch.target])},
        [str(d) for d in range(10)],
        validation_fraction,
        test_fraction,
        seed,
    )


def flickr8k_pairs(root: Path, test_images: int = 200, seed: int = 0) -> Dataset:
    """Flickr8k caption pairs (gold 1.0: two captions of one image; 0.0: captions of two images), split by image."""
    return caption_pairs(_folder(root, "image_text/flickr8k") / "captions.csv", test_images, seed)


def caption_pairs(path: Path, test_images: int, seed: int) -> Dataset:
    """Pairs of Flickr8k captions, split by image: for each image, two of its own captions (gold 1.0:
    two people describing one photo) and a third beside a caption of another image of the same split
    (gold 0.0). A stand-in for STS data, which no hub-free source here holds: the gold is which photo
    a caption describes, not a graded human judgement."""
    images, captions = read_captions(path, "image", "caption", "images")
    by_image: dict[int, list[str]] = {}
    for index, text in captions:
        by_image.setdefault(index, []).append(text)
    usable = sorted(i for i, texts in by_image.items() if len(texts) >= 3)
    order = usable[:]
    random.Random(seed).shuffle(order)
    if not 1 < test_images < len(order) - 1:
        raise DataError(f"{path}: {len(order)} images with three captions cannot give {test_images} test images")
    splits = {}
    for split, chosen in (("test", order[:test_images]), ("train", order[test_images:])):
        others = chosen[1:] + chosen[:1]  # each image's unrelated partner: the next of the split's shuffled order
        pairs, scores = [], []
        for image, other in zip(chosen, others, strict=True):
            own = by_image[image]
            pairs += [(own[0], own[1]), (own[2], by_image[other][0])]
            scores += [1.0, 0.0]
        splits[split] = Split(pairs, scores=scores)
    origins = {"train": "captions of the training images", "test": f"captions of {test_images} held-out images"}
    return Dataset("flickr8k-pairs", "text-pairs", splits, [], origins=origins)
