"""A WordPiece vocabulary of your own for a text model trained from scratch.

BERT's 30,522-token vocabulary was fitted to Wikipedia and books; a small model pretrained on a
small corpus spends most of an MLM step projecting onto it, and most of its rows are tokens the
corpus never shows. A vocabulary fitted to the corpus itself keeps BERT's pipeline (lower-casing,
accent stripping, punctuation splitting, special tokens) and only re-learns the word pieces::

    python -m zoo_transformers.vocabulary runs/vocab-8k --data sst2 --data flickr8k --size 8192
    zoo run recipes/bert-tiny-mlm-pretrain.yaml --set model_options.tokenizer=runs/vocab-8k

Keep the folder as you would a checkpoint: fitting it again on the same texts may not give the
same vocabulary, because the trainer breaks ties between equally frequent pieces in hash-map
order (huggingface/tokenizers#1794). A saved backbone carries its own copy.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path


def train_tokenizer(texts: Iterable[str], size: int, directory: str | os.PathLike) -> Path:
    """Fit a WordPiece vocabulary of ``size`` tokens to ``texts`` with BERT's uncased pipeline,
    save it to ``directory`` (``model_options.tokenizer`` then names it) and return that path."""
    from transformers import AutoTokenizer

    from zoo import staged_directory
    from zoo_transformers.loading import minilm_dir

    base = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    length = len(texts) if isinstance(texts, Sequence) else None
    tokenizer = base.train_new_from_iterator(texts, vocab_size=size, length=length, show_progress=sys.stderr.isatty())
    with staged_directory(directory) as staging:
        tokenizer.save_pretrained(str(staging))
    return Path(directory)


def main(argv: list[str] | None = None) -> None:
    from zoo import ZooError, load_dataset

    parser = argparse.ArgumentParser(
        prog="python -m zoo_transformers.vocabulary",
        description="Fit a WordPiece vocabulary to the training texts of data sets.",
    )
    parser.add_argument("directory", help="folder to write the tokenizer to (must not exist)")
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        help="a data set name or file whose training texts (or captions) to fit; repeatable",
    )
    parser.add_argument("--size", type=int, default=8192, help="vocabulary size, special tokens included")
    parser.add_argument("--data-root", help="folder of the named data sets (else ZOO_DATA)")
    args = parser.parse_args(argv)
    try:
        if os.path.exists(args.directory):
            raise ZooError(f"{args.directory} exists; name a new folder for the tokenizer")
        texts = [text for name in args.data for text in load_dataset(name, args.data_root).unlabelled("train", "text")]
        path = train_tokenizer(texts, args.size, args.directory)
    except ZooError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    print(f"{len(texts):,} texts -> {args.size:,}-token vocabulary in {path}")


if __name__ == "__main__":
    main()
