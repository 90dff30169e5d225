"""Model cards checked as the Hugging Face Hub reads them, offline.

`huggingface_hub.ModelCard.validate` posts the card to the Hub's /api/validate-yaml, which needs the
network; here huggingface_hub itself parses the card (`ModelCard` -> `ModelCardData`, which turns
``model-index`` into eval results and raises on a malformed one), and the keys are held to the values
the Hub documents: pipeline tags (huggingface.js packages/tasks/src/pipelines.ts, PIPELINE_DATA),
libraries (model-libraries.ts; "onnx" is the Hub's tag for ONNX files), a ``base_model`` that is a Hub
id (``org/name``) and not a zoo registry name, and licenses as ids."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

import zoo

HUB_PIPELINES = {
    "text-classification", "token-classification", "table-question-answering", "question-answering",
    "zero-shot-classification", "translation", "summarization", "feature-extraction", "text-generation",
    "text2text-generation", "fill-mask", "sentence-similarity", "image-classification", "object-detection",
    "image-segmentation", "image-to-text", "zero-shot-image-classification", "image-feature-extraction",
    "text-ranking", "text-retrieval", "other",
}  # fmt: skip
HUB_LIBRARIES = {"transformers", "sentence-transformers", "timm", "open_clip", "onnx"}
CARD_KEYS = {"library_name", "base_model", "tags", "license", "pipeline_tag", "datasets", "model-index"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def hub_card(text: str) -> dict[str, Any]:
    """The card's front matter, after huggingface_hub parsed it and its keys passed the Hub's rules."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    card = huggingface_hub.ModelCard(text)  # raises on YAML it cannot read or a malformed model-index
    front = yaml.safe_load(text.split("---")[1])
    assert card.data.to_dict().keys() == front.keys()
    assert set(front) <= CARD_KEYS, set(front) - CARD_KEYS
    assert front.get("library_name", "transformers") in HUB_LIBRARIES
    assert front.get("pipeline_tag", "other") in HUB_PIPELINES
    if "base_model" in front:
        assert HUB_ID.match(front["base_model"]), front["base_model"]
        with pytest.raises(zoo.UnknownNameError):
            zoo.get_spec(front["base_model"])  # a Hub id, not zoo's name for the model
    assert re.match(r"^[a-z0-9][a-z0-9.+-]*$", front.get("license", "mit"))
    for dataset in front.get("datasets", []):
        assert HUB_ID.match(dataset), dataset
    for result in card.data.eval_results or []:
        assert result.task_type in HUB_PIPELINES and result.dataset_type and result.dataset_name
        assert result.metric_type and isinstance(result.metric_value, float)
    return front
