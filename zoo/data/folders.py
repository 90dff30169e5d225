"""Folders as data: a folder of class folders (``cat/001.jpg``), and a folder holding its own splits
(``train.csv`` + ``test.csv``, or ``train/`` + ``test/`` class folders, optionally a validation split)."""

from __future__ import annotations

import warnings
from pathlib import Path

from zoo.data.base import DataError, Dataset, classification

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
TABLE_SUFFIXES = (".tsv", ".csv", ".jsonl", ".txt")
# the names a folder's split files or folders may have, per split
SPLIT_NAMES = {"train": ("train",), "test": ("test",), "validation": ("validation", "val", "valid", "dev")}


class DataWarning(UserWarning):
    """Data that was read, but not all of it: folders skipped, for instance."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(path: Path) -> list[str]:
    """The class folders of ``path``: hidden folders (``.ipynb_checkpoints``) and folders without
    images are skipped, with one warning naming them."""
    if not path.is_dir():
        raise DataError(f"image folder {path} not found")
    hidden, empty, classes = [], [], []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            hidden.append(folder.name)
        elif not _images(folder):
            nested = next((sub for sub in sorted(folder.iterdir()) if sub.is_dir() and _images(sub)), None)
            if nested is not None:
                raise DataError(
                    f"{folder}: its images are one folder down, in {nested.name}/; a class folder holds its images "
                    f"itself (move them up), or point data at {folder} if its folders are the classes"
                )
            empty.append(folder.name)
        else:
            classes.append(folder.name)
    if hidden or empty:
        skipped = [*(f"{name} (hidden)" for name in hidden), *(f"{name} (no images)" for name in empty)]
        warnings.warn(
            f"{path}: skipped folder(s) {', '.join(skipped)}; they are not classes", DataWarning, stacklevel=3
        )
    if not classes:
        raise DataError(f"{path}: no class folders with images; expected {path}/CLASS_NAME/image.jpg")
    return classes


def image_class_split(path: Path, classes: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Images and their class names (folder names) under ``path``'s class folders."""
    images: list[Path] = []
    labels: list[str] = []
    for name in classes or class_folders(path):
        found = _images(path / name)
        images += found
        labels += [name] * len(found)
    return images, labels


def read_image_folder(
    path: Path,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    test_file: str | None = None,
    validation_file: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Images in class folders: ``root/CLASS/*.jpg`` (hidden and empty folders skipped, with a warning).

    ``test_file`` / ``validation_file``: folders of the same class folders holding the test / validation
    split. Without ``test_file``, ``test_fraction`` (default 0.2; 0 for none) of the images is held out
    as the test split, stratified and seeded; then ``validation_fraction`` of the rest (default 0.2)
    selects the best weights."""
    classes = class_folders(path)
    splits = {"train": image_class_split(path, classes)}
    origins = {"train": f"{path.name}/"}
    for split, folder in (("test", test_file), ("validation", validation_file)):
        if folder is not None:
            splits[split] = image_class_split(Path(folder))
            origins[split] = f"{Path(folder).name}/"
    return classification(
        name or path.name,
        "image-classification",
        splits,
        classes,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        origins=origins,
    )


def split_layout(path: Path) -> dict[str, Path] | None:
    """The splits a folder holds as files (``train.csv``, ``test.csv``, ``val.csv``) or as folders of class
    folders (``train/``, ``test/``); None for a plain folder of class folders."""
    found: dict[str, Path] = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            files = [path / f"{name}{suffix}" for suffix in TABLE_SUFFIXES if (path / f"{name}{suffix}").is_file()]
            folder = path / name
            if files:
                found[split] = files[0]
                break
            # a split folder holds class folders; a class that happens to be named "train" holds images
            if folder.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
                found[split] = folder
                break
    if "train" not in found or len(found) < 2:
        return None
    if len({p.is_dir() for p in found.values()}) > 1:
        raise DataError(f"{path}: give every split as a file or every split as a folder, not both")
    return found


def read_split_folder(path: Path, layout: dict[str, Path], **options) -> tuple[Path, dict]:
    """The main file or folder of a split ``layout`` and the options that name its other splits."""
    for key in ("test_file", "validation_file"):
        if key in options:
            raise DataError(f"{path} holds its own splits ({', '.join(p.name for p in layout.values())}); drop {key}")
    extra = {f"{split}_file": str(where) for split, where in layout.items() if split != "train"}
    return layout["train"], {**options, **extra, "name": path.name}
