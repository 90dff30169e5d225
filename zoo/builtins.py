"""The core's own plugin: the named data sets and the task families.

Registered through the ``zoo`` entry point ``core``, exactly like the model
families, so `zoo datasets` and `zoo tasks` list them with their plugin.
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, ExportFormat, TaskSpec

DATASETS = (
    # name, kind, description, license
    ("sst2", "text-classification", "SST-2 sentiment: 65k train phrases / 872 dev sentences", "research use"),
    ("ag_news", "text-classification", "AG News topics, 4 classes, 7,600 (80/20 split)", "non-commercial"),
    ("trec", "text-classification", "TREC question types, 6 coarse classes; TREC_10 as test", "freely available"),
    ("trec-fine", "text-classification", "TREC question types, 50 fine classes; TREC_10 as test", "freely available"),
    ("sms_spam", "text-classification", "SMS spam vs ham, 5,574 (80/20 split)", "cc-by-4.0"),
    ("cifar10", "image-classification", "CIFAR-10 photos 32x32, 8,000 (80/20 split)", "no formal license"),
    ("flickr8k", "image-text", "Flickr8k: 800 images x 5 captions, split by image", "research use only"),
    (
        "flickr8k-pairs",
        "text-pairs",
        "Flickr8k caption pairs, 1,600: gold 1 for two captions of one image, 0 for captions of two",
        "research use only",
    ),
)

# the Hugging Face Hub data sets they are drawn from (model cards name them under datasets)
HUB_DATASETS = {
    "sst2": "stanfordnlp/sst2",
    "ag_news": "fancyzhx/ag_news",
    "trec": "CogComp/trec",
    "trec-fine": "CogComp/trec",
    "sms_spam": "ucirvine/sms_spam",
    "cifar10": "uoft-cs/cifar10",
}


@hookimpl
def register_datasets(register):
    for name, kind, description, license in DATASETS:
        register(
            DatasetSpec(
                name=name,
                kind=kind,
                factory=f"zoo.data.builtin:{name.replace('-', '_')}",
                description=description,
                license=license,
                source="data root",
                hub_id=HUB_DATASETS.get(name),
            )
        )
    register(
        DatasetSpec(
            name="digits",
            kind="image-classification",
            factory="zoo.data.builtin:digits",
            description="scikit-learn hand-written digits, 1,797 8x8 (80/20 split)",
            license="bsd-3-clause",
            source="scikit-learn",
            needs_data_root=False,
        )
    )


@hookimpl
def register_tasks(register):
    register(
        TaskSpec(
            name="text-classification",
            factory="zoo.tasks.classification:TextClassification",
            modalities=("text", "multimodal"),
            metrics=("accuracy", "macro_f1"),
            description="a linear head on the text embedding: fine-tune or linear probe",
        )
    )
    register(
        TaskSpec(
            name="image-classification",
            factory="zoo.tasks.classification:ImageClassification",
            modalities=("image", "multimodal"),
            metrics=("accuracy", "macro_f1"),
            description="a linear head on the image embedding: fine-tune or linear probe",
        )
    )
    register(
        TaskSpec(
            name="retrieval",
            factory="zoo.tasks.retrieval:Retrieval",
            modalities=("multimodal", "text"),
            metrics=("R@1", "R@5", "R@10", "median_rank", "mAP"),
            description="image<->text (CLIP-style) or text->text retrieval: zero-shot or contrastive",
        )
    )
    register(
        TaskSpec(
            name="zero-shot-classification",
            factory="zoo.tasks.zero_shot:ZeroShotClassification",
            modalities=("multimodal",),
            metrics=("accuracy", "macro_f1"),
            description="class-name prompts (several templates averaged) against image embeddings",
        )
    )
    register(
        TaskSpec(
            name="semantic-similarity",
            factory="zoo.tasks.similarity:SemanticSimilarity",
            modalities=("text", "multimodal"),
            metrics=("cosine_spearman", "cosine_pearson"),
            description="text pairs with gold scores: Spearman and Pearson of the embeddings' cosine (MTEB's STS)",
        )
    )
    register(
        TaskSpec(
            name="pretraining",
            factory="zoo.tasks.pretraining:Pretraining",
            modalities=("text", "image", "multimodal"),
            metrics=("loss",),
            description="the family's self-supervised objective: MLM (text), SimCLR (image), "
            "InfoNCE over image-caption pairs (CLIP-style)",
        )
    )


@hookimpl
def register_export_formats(register):
    """The graph formats, for any backbone: one graph per tower, pooling and normalisation inside."""
    register(
        ExportFormat(
            name="onnx",
            description="one ONNX graph per tower (tensors in, the final embedding out; dynamic batch and "
            "sequence axes), the head's logits too, checked in onnxruntime",
            write="zoo.exporting.graphs:write_onnx",
            runner="zoo.exporting.graphs:onnx_runner",
            requires=("onnx", "onnxruntime", "onnxscript"),
        )
    )
    register(
        ExportFormat(
            name="pt2",
            description="one torch.export program per tower (.pt2; dynamic batch and sequence axes), "
            "checked by loading it back with torch.export.load",
            write="zoo.exporting.graphs:write_pt2",
            runner="zoo.exporting.graphs:pt2_runner",
        )
    )
