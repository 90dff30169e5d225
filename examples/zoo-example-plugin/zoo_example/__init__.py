"""An example third-party `zoo` plugin.

Installing this distribution is all it takes: its entry point in the ``zoo``
group makes `zoo` import this module and call its hooks. Nothing heavy is
imported here; the model lives in ``zoo_example.model`` and is imported only
when someone loads it.
"""

import zoo

# The range of zoo's plugin API this plugin was written against.
zoo_api = ">=2,<3"


@zoo.hookimpl
def register_backbones(register):
    register(
        zoo.BackboneSpec(
            name="vision/example-convnet",
            modality="image",
            factory="zoo_example.model:build",
            embed_dim=64,
            params=23_696,
            license="mit",
            description="a 3-block CNN for small images (digits, CIFAR), trained from scratch",
            tasks=("image-classification",),
            options={"width": 16},
        )
    )
