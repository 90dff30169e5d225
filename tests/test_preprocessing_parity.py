"""zoo's one image input path against timm's and open_clip's own eval transforms, mode by mode, and
the converters from their configs: every key mapped, or refused with one line naming it.

Tolerance. zoo resizes decoded uint8 tensors with torch's antialiased kernels; timm and open_clip resize
PIL images with PIL's. The geometry (scale size, ratio kept or not, crop and padding offsets, fill
colour) is the same step for step, so on float tensors, where both run the same torch operations, they
agree to 1e-5. On PIL images the kernels' rounding differs: at most 1 uint8 level bilinear (nearest:
0), and bicubic up to 18 levels seen on per-pixel noise where one side grows and the other shrinks (PIL
rounds and clamps bicubic's overshoot to uint8 between its two passes, in an order of its own; torch
does one pass; on smooth pictures at most 3). The mean stays under 0.4 level everywhere, while any
geometric slip (a scale size off by one, a crop a pixel over, another padding colour) moves the mean on
noise by tens of levels: the mean is the sharp check, the maximum a bound.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

import zoo
from zoo.data.images import pixel_batch, tensor_transform
from zoo.preprocessing import OPEN_CLIP_KEYS, TIMM_IGNORED, TIMM_KEYS

from tiny_models import open_clip_folder

MEAN, STD = (0.481, 0.458, 0.408), (0.269, 0.261, 0.276)
MAX_LEVELS = {"bilinear": 1.01, "nearest": 1.01, "bicubic": 24.0}  # uint8 levels, PIL vs torch kernels
MEAN_LEVELS = 0.5
SIDES = [(173, 251), (301, 117), (41, 97), (97, 41)]  # odd sizes, landscape and portrait, some upscaled


def noise(height: int, width: int, seed: int):
    """A PIL picture of per-pixel noise: every pixel counts, so a misplaced one shows."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def assert_parity(theirs: torch.Tensor, ours: torch.Tensor, std, interpolation: str, what: str) -> None:
    assert theirs.shape == ours.shape, what
    levels = (theirs - ours).abs() * 255 * torch.tensor(std).view(3, 1, 1)  # normalised -> uint8 levels
    assert levels.max() <= MAX_LEVELS[interpolation], f"{what}: {levels.max():.2f} levels at most"
    assert levels.mean() <= MEAN_LEVELS, f"{what}: {levels.mean():.3f} levels on average"


def timm_cfg(size, interpolation="bicubic", crop_pct=0.875, crop_mode="center") -> dict:
    return {
        "input_size": (3, *size),
        "interpolation": interpolation,
        "crop_pct": crop_pct,
        "crop_mode": crop_mode,
        "mean": MEAN,
        "std": STD,
    }


@pytest.mark.parametrize(
    ("crop_mode", "interpolation"),
    list(itertools.product(("center", "squash", "border"), ("bilinear", "bicubic", "nearest"))),
)
def test_timm_eval_transform_parity_on_pictures(crop_mode, interpolation):
    from timm.data import create_transform, resolve_data_config

    for (size, crop_pct), (index, sides) in itertools.product(
        [((64, 64), 0.875), ((72, 56), 0.95), ((48, 80), 1.0)], enumerate(SIDES)
    ):
        cfg = timm_cfg(size, interpolation, crop_pct, crop_mode)
        theirs_transform = create_transform(**resolve_data_config(pretrained_cfg=cfg))
        ours = zoo.ImagePreprocessing.from_timm_cfg(cfg)
        picture = noise(*sides, seed=index)
        what = f"timm {crop_mode} {interpolation} {size} crop {crop_pct} on {sides}"
        assert_parity(theirs_transform(picture), pixel_batch([picture], ours)[0], STD, interpolation, what)


@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
def test_timm_crop_border_pixels_parity(crop_mode):
    from timm.data import create_transform, resolve_data_config

    cfg = timm_cfg((56, 64), "bilinear", 0.9, crop_mode)
    theirs_transform = create_transform(**resolve_data_config(pretrained_cfg=cfg), crop_border_pixels=5)
    ours = zoo.ImagePreprocessing.from_timm_cfg({**cfg, "crop_border_pixels": 5})
    assert ours.crop_border_pixels == 5 and ours.to_dict()["crop_border_pixels"] == 5
    for index, sides in enumerate(SIDES):
        picture = noise(*sides, seed=index)
        assert_parity(theirs_transform(picture), pixel_batch([picture], ours)[0], STD, "bilinear", f"{sides}")


@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
def test_a_registered_timm_config_of_each_mode_converts_whole_and_matches_timm(crop_mode):
    import timm
    from timm.data import create_transform, resolve_data_config

    name = next(n for n in timm.list_pretrained() if timm.models.get_pretrained_cfg(n).crop_mode == crop_mode)
    cfg = timm.models.get_pretrained_cfg(name).to_dict()  # urls, licence, labels, ... passed over by name
    ours = zoo.ImagePreprocessing.from_timm_cfg(cfg)
    assert ours.crop_mode == crop_mode and ours.crop_pct == cfg["crop_pct"], name
    theirs_transform = create_transform(**resolve_data_config(pretrained_cfg=cfg))
    for index, sides in enumerate([(377, 263), (263, 377)]):
        picture = noise(*sides, seed=index)
        theirs, mine = theirs_transform(picture), pixel_batch([picture], ours)[0]
        assert_parity(theirs, mine, cfg["std"], ours.interpolation, f"{name} on {sides}")


@pytest.mark.parametrize(
    ("resize_mode", "interpolation"),
    list(itertools.product(("shortest", "longest", "squash"), ("bilinear", "bicubic"))),
)
def test_open_clip_eval_transform_parity_on_pictures(resize_mode, interpolation):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    for size, fill_color, (index, sides) in itertools.product([64, (72, 56), (48, 80)], (0, 201), enumerate(SIDES)):
        cfg = {
            "size": size,
            "mean": MEAN,
            "std": STD,
            "interpolation": interpolation,
            "resize_mode": resize_mode,
            "fill_color": fill_color,
        }
        theirs_transform = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
        ours = zoo.ImagePreprocessing.from_open_clip_cfg(cfg)
        picture = noise(*sides, seed=index)
        what = f"open_clip {resize_mode} {interpolation} {size} fill {fill_color} on {sides}"
        assert_parity(theirs_transform(picture), pixel_batch([picture], ours)[0], STD, ours.interpolation, what)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_the_same_torch_operations_agree_to_1e_5_on_float_tensors(interpolation):
    """timm's and open_clip's transforms take tensors too where they crop (not where they pad or keep the
    ratio with PIL-only code): on float pictures both sides run the same torch resize."""
    from open_clip.transform import image_transform
    from timm.data import create_transform

    for index, sides in enumerate(SIDES):
        pixels = torch.from_numpy(np.array(noise(*sides, seed=index))).permute(2, 0, 1).float() / 255
        for crop_mode, (size, crop_pct) in itertools.product(
            ("center", "squash"), [((64, 64), 0.875), ((72, 56), 0.95), ((48, 80), 1.0)]
        ):
            cfg = timm_cfg(size, interpolation, crop_pct, crop_mode)
            ours = tensor_transform(zoo.ImagePreprocessing.from_timm_cfg(cfg))(pixels)
            assert (create_transform(**cfg)(pixels) - ours).abs().max() <= 1e-5, (crop_mode, size, sides)
        for resize_mode in ("shortest", "squash"):
            theirs = image_transform(64, False, MEAN, STD, resize_mode, interpolation)(pixels)
            preprocessing = zoo.ImagePreprocessing.from_open_clip_cfg(
                {"size": 64, "mean": MEAN, "std": STD, "interpolation": interpolation, "resize_mode": resize_mode}
            )
            assert (theirs - tensor_transform(preprocessing)(pixels)).abs().max() <= 1e-5, (resize_mode, sides)


def test_every_key_of_the_libraries_configs_is_mapped_or_named_as_ignored():
    import timm
    from open_clip.transform import PreprocessCfg

    timm_fields = {field.name for field in dataclasses.fields(timm.models.PretrainedCfg)}
    assert timm_fields <= set(TIMM_KEYS) | TIMM_IGNORED, sorted(timm_fields - set(TIMM_KEYS) - TIMM_IGNORED)
    assert not set(TIMM_KEYS) & TIMM_IGNORED
    assert {field.name for field in dataclasses.fields(PreprocessCfg)} == set(OPEN_CLIP_KEYS)
    modes = {"center": 0, "squash": 0, "border": 0}
    for name in timm.list_pretrained():
        cfg = timm.models.get_pretrained_cfg(name).to_dict()
        try:
            preprocessing = zoo.ImagePreprocessing.from_timm_cfg(cfg)
        except zoo.SpecError as exc:  # what zoo cannot reproduce (lanczos, crop_pct over 1, one channel)
            assert "\n" not in str(exc) and any(word in str(exc) for word in ("interpolation", "crop_pct", "channels"))
            continue
        modes[preprocessing.crop_mode] += 1
        assert preprocessing.crop_mode == cfg["crop_mode"] and preprocessing.fixed_size == cfg["fixed_input_size"]
    assert min(modes.values()) > 0, modes


@pytest.mark.parametrize(
    ("convert", "cfg", "key"),
    [
        ("from_timm_cfg", {**timm_cfg((64, 64)), "crop_align": "top"}, "crop_align"),
        ("from_open_clip_cfg", {"size": 64, "mean": MEAN, "std": STD, "resize_mode": "squash", "pad": 1}, "pad"),
        ("coerce", {**timm_cfg((64, 64)), "crop_align": "top"}, "crop_align"),
        ("coerce", {"size": 64, "mean": MEAN, "std": STD, "resize_mode": "longest", "crop_pct": 0.9}, "crop_pct"),
    ],
)
def test_an_unknown_key_is_refused_with_one_line_naming_it(convert, cfg, key):
    with pytest.raises(zoo.SpecError) as caught:
        getattr(zoo.ImagePreprocessing, convert)(cfg)
    assert "\n" not in str(caught.value) and repr(key) in str(caught.value)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({**timm_cfg((64, 64)), "crop_mode": "border", "interpolation": "lanczos"}, "interpolation must be one of"),
        ({**timm_cfg((64, 64)), "input_size": (1, 64, 64)}, "has 1 channels; zoo feeds RGB images"),
        ({key: value for key, value in timm_cfg((64, 64)).items() if key != "crop_pct"}, "lacks 'crop_pct'"),
        ({**timm_cfg((64, 64)), "crop_pct": 1.15}, r"crop_pct must lie in \(0, 1\]"),
    ],
)
def test_what_timm_says_that_zoo_cannot_do_is_refused(cfg, message):
    with pytest.raises(zoo.SpecError, match=message):
        zoo.ImagePreprocessing.from_timm_cfg(cfg)


def test_the_lossy_paths_of_before_now_keep_border_squash_and_longest():
    border = {"input_size": [3, 32, 32], "mean": MEAN, "std": STD, "crop_mode": "border"}
    assert zoo.ImagePreprocessing.coerce(border).crop_mode == "border"  # API 1.x's timm dict: was centre
    squash = {"size": 32, "mean": MEAN, "std": STD, "resize_mode": "squash"}
    assert zoo.ImagePreprocessing.coerce(squash).crop_mode == "squash"  # open_clip's: was centre
    longest = zoo.ImagePreprocessing.from_open_clip_cfg({**squash, "resize_mode": "longest", "fill_color": 9})
    assert (longest.crop_mode, longest.fill, longest.crop_pct) == ("border", (9, 9, 9), 1.0)
    random = zoo.ImagePreprocessing.from_open_clip_cfg({**squash, "interpolation": "random"})
    assert random.interpolation == "bicubic"  # open_clip's eval transform reads "random" as bicubic
    with pytest.raises(zoo.SpecError, match="resize_mode must be one of shortest, longest, squash, got 'fit'"):
        zoo.ImagePreprocessing.from_open_clip_cfg({**squash, "resize_mode": "fit"})


def test_the_new_fields_round_trip_and_leave_existing_json_as_it_was():
    plain = zoo.ImagePreprocessing(size=224, mean=MEAN, std=STD, interpolation="bicubic", crop_pct=0.875)
    before = {"size", "mean", "std", "interpolation", "crop_pct", "crop_mode", "fixed_size"}  # cache keys use these
    assert set(plain.to_dict()) == before
    padded = dataclasses.replace(plain, crop_mode="border", fill=(1, 2, 3), crop_border_pixels=4)
    assert padded.to_dict()["fill"] == [1, 2, 3] and padded.to_dict()["crop_border_pixels"] == 4
    assert zoo.ImagePreprocessing.from_dict(json.loads(json.dumps(padded.to_dict()))) == padded
    with pytest.raises(zoo.SpecError, match="fill is the colour crop_mode 'border' pads with"):
        dataclasses.replace(plain, fill=(1, 2, 3))
    with pytest.raises(zoo.SpecError, match="fill must be 3 whole numbers in 0-255"):
        dataclasses.replace(plain, crop_mode="border", fill=(1, 2, 300))
    with pytest.raises(zoo.SpecError, match="crop_border_pixels must be a whole number >= 0"):
        dataclasses.replace(plain, crop_border_pixels=-1)


@pytest.mark.parametrize(("resize_mode", "fill_color"), [("squash", None), ("longest", 40), ("shortest", None)])
def test_an_open_clip_folder_s_resize_mode_survives_load_export_and_reload(tmp_path, resize_mode, fill_color):
    import open_clip

    folder = open_clip_folder(tmp_path)
    config = json.loads((folder / "open_clip_config.json").read_text())
    config["preprocess_cfg"].update(resize_mode=resize_mode, **({"fill_color": fill_color} if fill_color else {}))
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    loaded = zoo.load(str(folder))
    assert loaded.image_preprocessing.crop_mode == zoo.preprocessing.RESIZE_MODES[resize_mode]

    out = tmp_path / "exported"
    zoo.export(loaded, "open_clip", out)
    written = json.loads((out / "open_clip_config.json").read_text())["preprocess_cfg"]
    assert written["resize_mode"] == resize_mode and written.get("fill_color") == fill_color
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    reloaded = zoo.load(str(out))
    assert reloaded.image_preprocessing == loaded.image_preprocessing
    saved = zoo.load(str(reloaded.save(tmp_path / "saved")))  # zoo.json keeps it too
    assert saved.image_preprocessing == loaded.image_preprocessing
    for index, sides in enumerate(SIDES):
        picture = noise(*sides, seed=index)
        std = loaded.image_preprocessing.std
        assert_parity(preprocess(picture), saved.pixels([picture])[0], std, "bicubic", f"{resize_mode} {sides}")


def test_a_timm_folder_s_border_crop_mode_survives_load_and_export(tmp_path):
    import timm
    from timm.models import save_for_hf

    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    data = {"input_size": (3, 48, 48), "crop_pct": 0.9, "crop_mode": "border", "interpolation": "bilinear"}
    save_for_hf(model, str(tmp_path / "tiny"), safe_serialization=True, data_config=data)
    loaded = zoo.load(str(tmp_path / "tiny"))
    assert (loaded.image_preprocessing.crop_mode, loaded.image_preprocessing.crop_pct) == ("border", 0.9)
    zoo.export(loaded, "timm", tmp_path / "exported")
    written = json.loads((tmp_path / "exported" / "config.json").read_text())["pretrained_cfg"]
    assert written["crop_mode"] == "border" and written["crop_pct"] == 0.9
