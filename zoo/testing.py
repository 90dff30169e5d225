"""The backbone contract as a pytest plugin, for plugin authors (and for zoo's own families).

Installed with zoo (entry point ``pytest11``), it does nothing until a test class asks::

    # tests/test_contract.py in your plugin's repository
    from zoo.testing import BackboneContract

    class TestMyBackbones(BackboneContract):
        backbones = ["vision/my-net", "vision/my-net-large"]   # names or patterns
        pretrained = None                                        # as zoo.load: default weights

Every listed backbone then gets the same checks: its spec's metadata is complete and
true (the parameter count is the built model's; the weights' declared preprocessing is the
loaded model's), ``encode_*`` returns finite [B, embed_dim] float tensors in eval mode
without autograd, ``encode_image`` on pictures of mixed sizes equals the features the
image-classification task computes for the same files (one input path), ``save`` ->
``zoo.load`` gives identical embeddings with networking switched off, a few fine-tuning
steps through the shared engine lower the loss, and ``evaluate`` returns the metrics its
task declares.
The data are generated on the spot (two classes of coloured images, two of words), so
the checks need no data root and no network.

A plugin that registers a `zoo.PathFormat` checks it the same way: ``paths`` maps a test id
to a function that writes a model in that format under a given folder and returns its path;
each is loaded with plain ``zoo.load(path)``, gets every check above, and one more: the
path is claimed, by a `zoo.PathClaim` naming a registered backbone::

    class TestMyFormat(BackboneContract):
        paths = {"my-format": lambda root: write_my_model(root / "model")}
        load_options = {}                                        # e.g. {"trust_repo": True}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

MODALITIES = ("text", "image", "multimodal")
WORDS = {"pos": "good great fine lovely superb", "neg": "bad awful poor dreadful grim"}


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrise a `BackboneContract` subclass's tests over its ``backbones`` (patterns expanded)."""
    if (
        metafunc.cls is None
        or not issubclass(metafunc.cls, BackboneContract)
        or "backbone_name" not in metafunc.fixturenames
    ):
        return
    import zoo

    names: list[str] = []
    for pattern in metafunc.cls.backbones:
        matched = zoo.list_backbones(pattern) if any(c in pattern for c in "*?[") else [pattern]
        if not matched:
            raise pytest.UsageError(f"{metafunc.cls.__name__}.backbones: no backbone matches {pattern!r}")
        names += [name for name in matched if name not in names]
    paths = [PATH_PREFIX + key for key in metafunc.cls.paths]
    claim_check = metafunc.function.__name__ == "test_the_path_is_claimed_by_a_registered_backbone"
    metafunc.parametrize("backbone_name", paths if claim_check else names + paths, scope="class")


PATH_PREFIX = "path:"


def _images(root: Path, per_class: int = 12) -> Path:
    """Two classes of 48-px noise images, one reddish, one bluish."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = generator.integers(0, 90, (48, 48, 3), dtype=np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def _captions(images: Path) -> Path:
    """A caption file for the generated images: two captions each."""
    rows = ["image,caption"]
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        for image in sorted(folder.iterdir()):
            rows += [
                f"{folder.name}/{image.name},a {folder.name} picture number {image.stem}",
                f"{folder.name}/{image.name},noise tinted {folder.name} in image {image.stem}",
            ]
    (images / "captions.csv").write_text("\n".join(rows) + "\n")
    return images / "captions.csv"


def _texts(path: Path, per_class: int = 24) -> Path:
    """Two classes of short texts made of positive or negative words."""
    import random

    rows = []
    generator = random.Random(0)
    for label, words in WORDS.items():
        for _ in range(per_class):
            rows.append(f"{' '.join(generator.choices(words.split(), k=4))}\t{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


class BackboneContract:
    """Subclass with ``backbones = [...]``; every backbone gets the contract's checks.

    Class attributes: ``backbones`` (registered names or patterns), ``pretrained`` (passed to `zoo.load`
    with each name), ``paths`` (test id -> a function that writes a model into a folder and returns its
    path: a local format the plugin claims), ``load_options`` (keyword options for every `zoo.load`, e.g.
    ``trust_repo=True``) and ``train_steps``. The checks: the spec's metadata is complete and true;
    every encoder returns finite ``[B, embed_dim]`` embeddings; ``encode_image`` equals the features a
    task computes for the same files; ``save`` then `zoo.load` offline gives identical embeddings; a few
    training steps lower the loss; the pretraining objective trains; ``evaluate`` returns the declared
    metrics; and a path in ``paths`` is claimed by a registered backbone. The data are generated on the
    spot: no data root or network is needed.
    """

    backbones: list[str] = []
    pretrained: Any = None  # passed to zoo.load with a backbone name
    paths: dict[str, Any] = {}  # test id -> function(folder) that writes a model there and returns its path
    load_options: dict[str, Any] = {}  # keyword options for every zoo.load (e.g. trust_repo=True)
    train_steps = 12

    @pytest.fixture(scope="class")
    @classmethod
    def model_source(cls, backbone_name: str, tmp_path_factory: Any) -> str:
        """What ``zoo.load`` takes for this entry: the backbone name, or the path its ``paths`` function wrote."""
        if not backbone_name.startswith(PATH_PREFIX):
            return backbone_name
        key = backbone_name[len(PATH_PREFIX) :]
        return str(cls.paths[key](tmp_path_factory.mktemp(key.replace("/", "-"))))

    @classmethod
    def load(cls, source: str) -> Any:
        import zoo

        if source in cls.backbones or not Path(source).exists():
            return zoo.load(source, pretrained=cls.pretrained, **cls.load_options)
        return zoo.load(source, **cls.load_options)

    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, model_source: str):
        return cls.load(model_source)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_data(cls, tmp_path_factory: Any) -> dict[str, Path]:
        root = tmp_path_factory.mktemp("zoo-contract")
        images = _images(root / "images")
        return {"image": images, "text": _texts(root / "texts.tsv"), "captions": _captions(images)}

    @staticmethod
    def _task(backbone: Any) -> str:
        return "text-classification" if backbone.modality == "text" else "image-classification"

    def _data(self, backbone: Any, contract_data: dict[str, Path]) -> str:
        return str(contract_data["text" if backbone.modality == "text" else "image"])

    def _inputs(self, backbone: Any) -> dict[str, Any]:
        from PIL import Image

        inputs: dict[str, Any] = {}
        if backbone.modality in ("text", "multimodal"):
            inputs["encode_text"] = ["a red square", "two blue circles on a table"]
        if backbone.modality in ("image", "multimodal"):
            inputs["encode_image"] = [
                Image.new("RGB", (64, 48), (200, 30, 30)),
                Image.new("RGB", (40, 40), (20, 20, 220)),
            ]
        return inputs

    def _embeddings(self, backbone: Any) -> dict[str, Any]:
        import torch

        backbone.eval()
        with torch.inference_mode():
            return {method: getattr(backbone, method)(value) for method, value in self._inputs(backbone).items()}

    # -- the checks ------------------------------------------------------------------
    def test_the_path_is_claimed_by_a_registered_backbone(self, model_source: str, backbone: Any) -> None:
        import zoo

        claim = zoo.claim_path(model_source)
        assert claim is None or isinstance(claim, zoo.PathClaim), f"a claim returns zoo.PathClaim, got {claim!r}"
        name = backbone.name if claim is None else zoo.get_spec(claim.backbone).name
        assert backbone.name == name, f"{model_source} was claimed for {name} but loaded as {backbone.name}"

    def test_spec_metadata_is_complete_and_true(self, backbone_name: str, backbone: Any) -> None:
        import zoo

        spec = backbone.spec
        assert spec == zoo.get_spec(spec.name), f"{spec.name}: the backbone's spec is not the registered one"
        assert "/" in spec.name and spec.modality in MODALITIES, spec.name
        assert spec.description and spec.license and spec.plugin, f"{spec.name}: description, license, plugin"
        assert spec.embed_dim is None or spec.embed_dim == backbone.embed_dim, "embed_dim differs from the model"
        if spec.params is not None:
            assert spec.params == backbone.num_params(), (
                f"{spec.name}: spec says {spec.params:,} parameters, the model has {backbone.num_params():,}"
            )
        for weights in spec.weights if not backbone_name.startswith(PATH_PREFIX) else ():
            assert weights.tag and weights.source, f"{spec.name}:{weights.tag} metadata"
            if spec.modality != "multimodal":  # a CLIP-style model's towers bring their own
                assert weights.preprocessing is not None, f"{spec.name}:{weights.tag} declares no preprocessing"
        if isinstance(backbone.weights, zoo.Weights) and backbone.weights.preprocessing is not None:
            declared = backbone.weights.preprocessing
            loaded = (
                backbone.image_preprocessing
                if isinstance(declared, zoo.ImagePreprocessing)
                else backbone.text_preprocessing
            )
            differing = [
                key for key, value in declared.to_dict().items() if value is not None and loaded.to_dict()[key] != value
            ]
            assert not differing, f"{spec.name}: the weights declare {declared}, the model carries {loaded}"
        registered = {task.name for task in zoo.list_tasks()}
        assert set(spec.tasks) <= registered, f"{spec.name} declares unregistered tasks"
        if spec.modality in ("image", "multimodal"):
            assert isinstance(backbone.image_preprocessing, zoo.ImagePreprocessing), "no image_preprocessing"
        if spec.modality in ("text", "multimodal"):
            assert isinstance(backbone.text_preprocessing, zoo.TextPreprocessing), "no text_preprocessing"

    def test_encoders_return_finite_embeddings(self, backbone: Any) -> None:
        import torch

        assert not backbone.training, "zoo.load returns a backbone in eval mode"
        backbone.train()
        embeddings = {method: getattr(backbone, method)(value) for method, value in self._inputs(backbone).items()}
        again = {method: getattr(backbone, method)(value) for method, value in self._inputs(backbone).items()}
        assert backbone.training, "encode_* must restore the caller's mode"
        backbone.eval()
        assert embeddings, f"a {backbone.modality} backbone must encode something"
        for method, vectors in embeddings.items():
            assert isinstance(vectors, torch.Tensor) and vectors.dtype in (torch.float32, torch.float16, torch.bfloat16)
            assert tuple(vectors.shape) == (2, backbone.embed_dim), f"{method} gave {tuple(vectors.shape)}"
            assert torch.isfinite(vectors).all(), f"{method} gave non-finite values"
            assert not vectors.requires_grad, f"{method} must not record autograd"
            assert torch.equal(vectors, again[method]), f"{method} differs between two calls (not in eval mode?)"

    def test_blocks_are_distinct_submodules_per_tower(self, backbone: Any) -> None:
        inside = {id(module) for module in backbone.modules() if module is not backbone}
        every = backbone.blocks()
        assert all(id(block) in inside for block in every), "blocks() must return the backbone's own submodules"
        assert len({id(block) for block in every}) == len(every), "blocks() lists a block twice"
        towers = [backbone.blocks(tower) for tower in ("image", "text")]
        in_order = [id(b) for b in towers[0] + towers[1]]
        assert [id(b) for b in every] == in_order, "blocks() is the image tower's, then the text tower's"

    def test_encode_image_equals_the_features_a_task_computes(self, backbone: Any, tmp_path: Path) -> None:
        if backbone.modality not in ("image", "multimodal"):
            pytest.skip("a text backbone reads no images")
        check_one_image_path(backbone, tmp_path)

    def test_save_then_load_offline_gives_identical_embeddings(
        self, backbone: Any, tmp_path: Path, monkeypatch: Any
    ) -> None:
        import torch

        import zoo

        directory = backbone.save(tmp_path / "saved")
        assert json.loads((directory / "zoo.json").read_text())["spec"]["name"] == backbone.name
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            monkeypatch.setenv(variable, "1")
        monkeypatch.setattr("socket.socket.connect", _no_network)
        restored = zoo.load(str(directory), **self.load_options)
        assert restored.name == backbone.name and restored.preprocessing == backbone.preprocessing
        before, after = self._embeddings(backbone), self._embeddings(restored)
        for method in before:
            torch.testing.assert_close(after[method], before[method], rtol=1e-5, atol=1e-5, msg=method)

    def test_a_few_training_steps_lower_the_loss(
        self, model_source: str, backbone: Any, contract_data: dict[str, Path], tmp_path: Path
    ) -> None:
        fresh = self.load(model_source)
        results = fresh.finetune(
            self._task(backbone),
            self._data(backbone, contract_data),
            output_dir=str(tmp_path),
            max_steps=self.train_steps,
            batch_size=8,
            lr=1e-3,
            head_lr=1e-2,
            warmup=0.0,
            log_every=1,
            test_split=None,
            data_options={"validation_fraction": 0.25},
        )
        losses = _train_losses(results)
        assert sum(losses[-3:]) < sum(losses[:3]), f"training loss did not fall: {losses}"

    def test_the_pretraining_objective_trains(
        self, model_source: str, backbone: Any, contract_data: dict[str, Path], tmp_path: Path
    ) -> None:
        import math

        import zoo

        data: Path | str
        if backbone.modality == "multimodal":
            data, options = contract_data["captions"], {"eval_split": "test", "data_options": {"test_images": 6}}
        else:
            data, options = self._data(backbone, contract_data), {"data_options": {"validation_fraction": 0.25}}
        results = self.load(model_source).pretrain(
            str(data), output_dir=str(tmp_path), max_steps=4, batch_size=8, log_every=1, **options
        )
        losses = _train_losses(results)
        assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses), losses
        saved = Path(results["run_dir"]) / "model" / "backbone"
        assert zoo.load(str(saved), **self.load_options).name == backbone.name

    def test_evaluate_returns_the_declared_metrics(
        self, backbone: Any, contract_data: dict[str, Path], tmp_path: Path
    ) -> None:
        import zoo

        task = self._task(backbone)
        metrics = backbone.evaluate(
            task,
            self._data(backbone, contract_data),
            output_dir=str(tmp_path),
            epochs=30.0,
            lr=1e-2,
            data_options={"validation_fraction": 0.25},
            test_split=None,
        )
        declared = next(spec for spec in zoo.list_tasks() if spec.name == task).metrics
        assert set(declared) <= set(metrics["validation"]), f"{task} declares {declared}"
        assert all(0 <= metrics["validation"][name] <= 1 for name in declared)
        # the two classes are told apart by colour or by words, and the validation split is balanced
        # (stratified): a constant answer scores exactly 0.5 (the built-ins score 0.67 to 1.0)
        assert metrics["validation"]["accuracy"] > 0.5, f"a linear probe on {backbone.name} stays at chance"

    def test_the_join_takes_head_lr_and_a_locked_tower_is_keyed_by_its_weights(self, backbone: Any) -> None:
        if backbone.modality != "multimodal":
            pytest.skip("only a multimodal backbone joins towers")
        import copy

        from zoo.adapters import adapt

        assert backbone.image_tower is not None and backbone.text_tower is not None, (
            f"{backbone.name}: a multimodal backbone declares image_tower and text_tower (assign them in "
            "__init__ or override the properties): freezing, adapters and export act on them"
        )
        locked = copy.deepcopy(backbone)
        adapt(locked, {}, {"image": "frozen", "text": "full"})  # LiT's lock: towers: {image: frozen}
        check_join_parameters(locked)
        check_locked_tower_key(locked)


def _train_losses(results: dict[str, Any]) -> list[float]:
    rows = [json.loads(line) for line in (Path(results["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["split"] == "train"]


def _no_network(*args: Any, **kwargs: Any) -> None:
    raise OSError("zoo.testing: network access during an offline load")


def mixed_pictures(folder: Path) -> list[Path]:
    """PNG pictures of mixed sizes and aspect ratios (one larger than zoo's 512-px decoding bound) in
    two class folders, as a data set reads them."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(1)
    paths = []
    for index, (width, height) in enumerate([(64, 48), (40, 90), (300, 200), (33, 33), (128, 256), (700, 300)]):
        pixels = generator.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / ("a" if index % 2 else "b") / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def check_one_image_path(backbone: Any, folder: Path, tolerance: float = 1e-5) -> None:
    """``backbone.encode_image`` on PIL pictures equals the features the image-classification task
    computes for the same files (AssertionError if not): a family that preprocesses pictures its own
    way, instead of encoding the tensors the core makes, fails here."""
    import torch
    from PIL import Image

    from zoo.data import load_dataset
    from zoo.tasks import get_task

    mixed_pictures(folder)
    dataset = load_dataset(str(folder), validation_fraction=0.0, test_fraction=0.0)  # every picture in train
    spec, task_class = get_task("image-classification")
    task = task_class(backbone, dataset, "linear-probe", {"eval_split": "train"}, spec=spec)
    features, _ = task._features("train")
    inputs = dataset.split("train").inputs
    with torch.no_grad():
        pictures = []
        for path in inputs:
            with Image.open(path) as opened:
                pictures.append(opened.convert("RGB"))
        encoded = backbone.encode_image(pictures).float().cpu()
    difference = float((encoded - features).abs().max())
    assert difference < tolerance, (
        f"{backbone.name}: encode_image on {len(inputs)} pictures differs from the "
        f"task's features by {difference:.3g}; encode images through encode_pixels "
        "on the tensors zoo makes, not with a transform of the family's own"
    )


def check_join_parameters(backbone: Any) -> None:
    """AssertionError where ``head_lr`` would miss part of a multimodal backbone's join: the learned
    temperature and every parameter the locked image tower's ``embed`` (tower features -> embeddings,
    the image projection) reads must be declared by `zoo.Backbone.join_parameters`."""
    import torch

    from zoo.tasks.features import image_preprocessing_of, tensors_read

    declared = {id(param) for param in backbone.join_parameters()}
    names = {id(param): name for name, param in backbone.named_parameters()}
    scale = backbone.learned_logit_scale()
    if scale is not None and id(scale) in names:
        assert id(scale) in declared, f"{backbone.name}: join_parameters() lacks the learned temperature"
    frozen = backbone.frozen_image_encoder()
    if frozen is None:  # no cached tower features: the whole image path trains or runs as one
        return
    probe = torch.zeros(2, 3, *image_preprocessing_of(backbone).size, device=frozen.tower.device)
    with torch.inference_mode():
        features = frozen.tower.encode_pixels(probe)
    read = tensors_read(lambda: frozen.embed(features))
    missed = sorted(names[key] for key in read if key in names and key not in declared)
    assert not missed, (
        f"{backbone.name}: the locked tower's embed reads {', '.join(missed)}, which join_parameters() does "
        "not declare: head_lr would train them at lr"
    )


def check_locked_tower_key(backbone: Any, scale: float = 0.05) -> None:
    """AssertionError where two copies of ``backbone`` whose locked image towers give different features
    share the key those features are cached under (`zoo.tasks.features.locked_tower_weights`)."""
    import copy

    import torch

    from zoo.tasks.features import image_preprocessing_of, locked_tower_weights

    if backbone.frozen_image_encoder() is None:
        return
    other = copy.deepcopy(backbone)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in [*other.parameters(), *other.buffers()]:
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=generator).to(tensor) * scale)
    probe = torch.rand(2, 3, *image_preprocessing_of(backbone).size, generator=generator)
    outputs = []
    for model in (backbone, other):
        frozen = model.frozen_image_encoder()
        assert frozen is not None, f"{model.name}: a copy of a backbone with a locked tower has none"
        model.eval()
        with torch.inference_mode():
            outputs.append(frozen.tower.encode_pixels(probe.to(frozen.tower.device)).float().cpu())
    if not torch.allclose(outputs[0], outputs[1]):
        assert locked_tower_weights(backbone) != locked_tower_weights(other), (
            f"{backbone.name}: two locked image towers with different weights share one features key"
        )
