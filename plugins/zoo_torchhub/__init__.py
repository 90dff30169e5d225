"""Built-in plugin: PyTorch Hub models, from a GitHub repository (online) or a local ``hubconf.py`` folder.

A hub repository is Python code: zoo runs a ``hubconf.py`` only when the caller passes
``trust_repo=True``, never because a name or a folder says so. The model code lives in
``zoo_torchhub.model``, imported only when a backbone is loaded.
"""

import zoo

zoo_api = ">=2,<3"


@zoo.hookimpl
def register_backbones(register):
    register(
        zoo.BackboneSpec(
            name="vision/torchhub",
            aliases=("torchhub",),
            modality="image",
            factory="zoo_torchhub.model:build",
            license="per repository: see its README",
            description="a PyTorch Hub entry point (torch.hub.load), its classifier removed: "
            "torchhub:OWNER/REPO:ENTRY online, or a local hubconf.py folder; needs trust_repo=True",
            weights=(
                zoo.Weights(
                    tag="hub",
                    source="torch.hub",
                    description="whatever the entry point loads (its pretrained argument)",
                ),
            ),
            tasks=("image-classification", "pretraining"),
            id_option="model_id",
        )
    )


@zoo.hookimpl
def register_path_formats(register):
    register(
        zoo.PathFormat(
            name="hubconf-folder",
            looks_for="a PyTorch Hub folder (hubconf.py; it runs only with trust_repo=True)",
            claim="zoo_torchhub.claims:claim_folder",
        )
    )
