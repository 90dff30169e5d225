"""`zoo export`: a backbone (and a classification run's head) written for another runtime, kept only
when that runtime reproduces zoo's own outputs.

Every export goes the same way, whatever the format (`zoo.ExportFormat`, registered by plugins):

1. the output folder is checked (`zoo.exporting.folders`): new, empty, or a zoo export to replace
   with ``force``; anything else is refused before any work, so export never touches a user's file;
2. the source (a run folder, a saved backbone folder, a registry name or a local model) is loaded;
3. the format's ``write`` fills a staging folder beside the output; zoo adds sample inputs and
   zoo's own outputs for them (``zoo-export/parity.safetensors``) and a model card (``README.md``);
4. the format's ``runner`` loads the staged folder in the target runtime and runs the samples: a
   batch of 7 and a batch of 1 per tower (two sequence lengths for text). The largest absolute
   difference from ``encode_*`` (and the head's logits) must be within ``atol``, else the
   staging folder is removed and `ExportError` says by how much: a failed export leaves no files;
5. ``zoo-export.json`` records every file's SHA-256 and size and is sealed by the digest of its
   own contents; the staged files are moved into place (replacing only an old export's own files).

`verify` checks an export folder later (say, after copying it): step 5's record first (every file
as recorded, none added that a loader could read, the seal intact), then step 4 from the stored samples.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.errors import UnknownNameError, ZooError
from zoo.exporting.folders import (
    MANIFEST,
    MANIFEST_SCHEMA,
    ExportError,
    check_files,
    check_target,
    publish,
    sealed,
    staging_folder,
)
from zoo.exporting.folders import ExportTargetError as ExportTargetError  # public: a refused output folder
from zoo.plugins import get_plugin_set, import_object
from zoo.signatures import nearest_key_hint
from zoo.specs import ExportFormat
from zoo.validation import read_json_file

PARITY_FILE = "zoo-export/parity.safetensors"
DEFAULT_ATOL = 1e-4
# sample texts of different lengths: the batch of 7 pads to the longest, the batch of 1 is short
SAMPLE_TEXTS = (
    "A gripping, beautifully shot film.",
    "the plot drags and the jokes fall flat",
    "Not bad at all!",
    "An unexpectedly moving story about two brothers who rebuild their father's boat over one long summer.",
    "Worst. Movie. Ever.",
    "I laughed, I cried, and then I laughed again; it is the best comedy of the year by a wide margin.",
    "ok",
)


@dataclass
class Sample:
    """Inputs a runner is given for one tower: the texts and zoo's tokens of them, or a pixel batch."""

    texts: list[str] | None = None
    tokens: dict[str, torch.Tensor] | None = None
    pixels: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return len(self.texts) if self.texts is not None else int(self.pixels.shape[0])  # type: ignore[union-attr]


def export_formats() -> list[ExportFormat]:
    """Every registered export format."""
    return get_plugin_set().registry.export_formats()


def get_format(name: str) -> ExportFormat:
    """The export format registered as ``name``; UnknownNameError with the nearest names."""
    formats = {fmt.name: fmt for fmt in export_formats()}
    if name not in formats:
        hint = nearest_key_hint(name, formats, f"the formats: {', '.join(formats)}")
        raise UnknownNameError(f"no export format {name!r}; {hint}")
    return formats[name]


def parts_of(backbone: Any) -> list[str]:
    """The towers an export has: "image", "text", or both for a multimodal backbone."""
    return {"image": ["image"], "text": ["text"]}.get(backbone.modality, ["image", "text"])


def samples(backbone: Any, part: str) -> list[Sample]:
    """A batch of 7 and a batch of 1 for ``part``: texts of mixed lengths, or pictures of mixed sizes
    through the backbone's own preprocessing."""
    if part == "text":
        batches = [list(SAMPLE_TEXTS), [SAMPLE_TEXTS[2]]]
        return [Sample(texts=texts, tokens=dict(backbone.tokenize(texts))) for texts in batches]
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    sizes = [(64, 48), (40, 90), (300, 200), (33, 33), (128, 256), (96, 96), (224, 224)]
    pictures = [Image.fromarray(generator.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    pixels = backbone.pixels(pictures)
    return [Sample(pixels=pixels), Sample(pixels=pixels[3:4].clone())]


def reference_outputs(backbone: Any, head: Any, part: str, sample: Sample) -> dict[str, torch.Tensor]:
    """zoo's own outputs for ``sample``: the embedding ``encode_*`` returns, and the head's logits."""
    from zoo.backbone import evaluating

    with evaluating(backbone):
        if part == "text":
            embedding = backbone.encode_tokens({k: v.to(backbone.device) for k, v in (sample.tokens or {}).items()})
        else:
            embedding = backbone.encode_pixels(sample.pixels.to(backbone.device))  # type: ignore[union-attr]
        out = {"embedding": embedding.float().cpu().clone()}
        if head is not None:
            out["logits"] = head.logits(out["embedding"])
    return out


def _callable(fmt: ExportFormat, which: str) -> Any:
    return import_object(getattr(fmt, which), f"export format {fmt.name!r} (plugin {fmt.plugin!r})")


def _missing_runtime(fmt: ExportFormat, exc: ModuleNotFoundError) -> ExportError:
    needs = " ".join(fmt.requires) or exc.name or "its runtime"
    return ExportError(f"--to {fmt.name} needs {exc.name}, which is not installed: pip install {needs}")


def export(
    source: Any,
    to: str,
    output: str | os.PathLike,
    atol: float = DEFAULT_ATOL,
    with_head: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Write ``source`` in format ``to`` into folder ``output``, after checking parity.

    ``source``: a run folder (its trained backbone and, for classification, its head), a saved
    backbone folder, a registry name or a local model, or a loaded `zoo.Backbone`. ``output`` must
    be new or empty, or hold a zoo export, which ``force=True`` replaces: only the files that export
    recorded go, any other file stays (see `zoo.exporting.folders`); anything else is refused before
    any work (`ExportTargetError`). Returns the manifest (format, backbone, the largest difference
    per tower and batch, every file's SHA-256, the seal). ``with_head=False`` leaves a run's head out.
    """
    from zoo.cards import model_card
    from zoo.runs import load_source

    fmt = get_format(to)
    target = check_target(output, force).path
    loaded = load_source(source)
    backbone, head = loaded.backbone, loaded.head if with_head else None
    if backbone.weights is None:
        import warnings

        from zoo.errors import WeightsWarning

        warnings.warn(
            f"{backbone.name} has no pretrained weights: this export holds weights drawn at random, different "
            "each time; export a trained run or saved folder instead",
            WeightsWarning,
            stacklevel=2,
        )
    if getattr(backbone, "adapter", None) is not None:  # a LoRA run: its adapter folded into the weights written
        import copy

        backbone = copy.deepcopy(backbone).merge_adapter()
    with staging_folder(target) as staging:
        notes, card = _write(fmt, backbone, head, staging)
        if head is not None and (loaded.recipe.get("task_options") or {}).get("flip_features"):
            notes.append(
                "The run averages each image's outputs with its mirror's (flip_features) when it predicts; "
                "this export gives one image's: average the two yourself to predict as the run does."
            )
        manifest = _write_samples(backbone, head, fmt, staging, atol, loaded.describe())
        manifest["parity"] = _parity(staging, manifest, fmt, str(target))
        text = model_card(loaded.describe(), fmt=fmt.name, notes=notes, head=head is not None, card=card)
        (staging / "README.md").write_text(text)
        manifest = sealed(manifest, staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        publish(staging, target, force, manifest["files"])
    return manifest


def _write(fmt: ExportFormat, backbone: Any, head: Any, staging: Path) -> tuple[list[str], dict[str, str | None]]:
    """Call the format's ``write``: the README lines it returns, and the model card's ``library_name``
    and ``pipeline_tag`` where it returns them (``{"notes": [...], "card": {...}}``)."""
    try:
        written = _callable(fmt, "write")(backbone, head, staging)
    except ModuleNotFoundError as exc:
        raise _missing_runtime(fmt, exc) from None
    notes, card = (written.get("notes"), written.get("card") or {}) if isinstance(written, dict) else (written, {})
    if (
        not isinstance(card, dict)
        or set(card) - {"library_name", "pipeline_tag"}
        or not all(isinstance(value, (str, type(None))) for value in card.values())
    ):
        raise ExportError(
            f"export format {fmt.name!r} (plugin {fmt.plugin!r}): its write returned a card other than "
            "{'library_name': str | None, 'pipeline_tag': str | None}"
        )
    return [str(line) for line in notes or []], card


def _write_samples(
    backbone: Any, head: Any, fmt: ExportFormat, directory: Path, atol: float, origin: dict[str, Any]
) -> dict[str, Any]:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    texts: list[str] = []
    for part in parts_of(backbone):
        for index, sample in enumerate(samples(backbone, part)):
            prefix = f"{part}.{index}"
            if sample.texts is not None:
                texts = list(SAMPLE_TEXTS)
                tensors.update({f"{prefix}.tokens.{k}": v.contiguous() for k, v in (sample.tokens or {}).items()})
            else:
                tensors[f"{prefix}.pixels"] = sample.pixels.contiguous()  # type: ignore[union-attr]
            for name, value in reference_outputs(backbone, head, part, sample).items():
                tensors[f"{prefix}.expected.{name}"] = value.contiguous()
    (directory / PARITY_FILE).parent.mkdir(exist_ok=True)
    save_file(tensors, str(directory / PARITY_FILE))
    manifest = {
        "format": fmt.name,
        "backbone": backbone.name,
        "parts": parts_of(backbone),
        "texts": texts,
        "atol": atol,
        "head": None if head is None else {"num_classes": head.num_classes, "label_names": list(head.label_names)},
        "preprocessing": backbone.preprocessing,
        "source": origin,
    }
    return manifest


def _stored_samples(directory: Path, manifest: dict[str, Any]) -> list[tuple[str, Sample, dict[str, torch.Tensor]]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(directory / PARITY_FILE))
    except (SafetensorError, OSError) as exc:
        raise ExportError(f"{directory / PARITY_FILE}: cannot read the parity samples ({exc})") from None
    cases = []
    for part in manifest["parts"]:
        for index in range(2):
            prefix = f"{part}.{index}."
            mine = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            expected = {k.split(".", 1)[1]: v for k, v in mine.items() if k.startswith("expected.")}
            if part == "text":
                tokens = {k.split(".", 1)[1]: v for k, v in mine.items() if k.startswith("tokens.")}
                count = len(next(iter(tokens.values())))
                texts = manifest["texts"][:count] if index == 0 else [manifest["texts"][2]]
                sample = Sample(texts=texts, tokens=tokens)
            else:
                sample = Sample(pixels=mine["pixels"])
            cases.append((part, sample, expected))
    return cases


def verify(directory: str | os.PathLike, fmt: ExportFormat | None = None, where: str | None = None) -> dict[str, float]:
    """Check the export in ``directory``: first its files (`check_files`: the manifest's seal, every
    recorded file's SHA-256, no added file a loader could read), then its parity: loaded in its target
    runtime, its outputs on the stored samples are compared with zoo's. Returns
    ``{"image/7/embedding": max |diff|, ...}``; ExportError (one line) at the first difference, when
    a difference exceeds the manifest's ``atol`` or when the folder does not load."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"export folder {directory} not found")
    manifest = read_json_file(directory / MANIFEST, MANIFEST_SCHEMA, "an export's zoo-export.json")
    check_files(directory, manifest)
    return _parity(directory, manifest, fmt or get_format(manifest["format"]), where or str(directory))


def _parity(directory: Path, manifest: dict[str, Any], fmt: ExportFormat, where: str) -> dict[str, float]:
    """The folder's outputs in the target runtime against zoo's stored ones (see `verify`)."""
    try:
        run = _callable(fmt, "runner")(directory)
    except ModuleNotFoundError as exc:
        raise _missing_runtime(fmt, exc) from None
    except ZooError as exc:
        raise ExportError(f"{where}: the {fmt.name} export does not load: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the target runtime raises on a broken folder
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{where}: the {fmt.name} export does not load ({type(exc).__name__}: {first})") from None
    report: dict[str, float] = {}
    for part, sample, expected in _stored_samples(directory, manifest):
        try:
            got = run(part, sample)
        except ZooError as exc:
            raise ExportError(f"{where}: the {fmt.name} export does not run: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - whatever the target runtime raises running a broken folder
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{where}: the {fmt.name} export does not run ({type(exc).__name__}: {first})") from None
        for name, want in expected.items():
            key = f"{part}/{sample.size}/{name}"
            if name not in got:
                raise ExportError(f"{where}: the {fmt.name} export gives no {name} for the {part} tower")
            value = torch.as_tensor(got[name]).float().cpu()
            if value.shape != want.shape:
                raise ExportError(
                    f"{where}: the {fmt.name} export's {part} {name} has shape {tuple(value.shape)}, "
                    f"zoo's {tuple(want.shape)}"
                )
            report[key] = float((value - want).abs().max())
            if not report[key] <= manifest["atol"]:  # NaN fails too
                raise ExportError(
                    f"{where}: the {fmt.name} export fails parity: its {part} {name} for a batch of {sample.size} "
                    f"differs from zoo's by up to {report[key]:.3g} (allowed {manifest['atol']:g})"
                )
    return report
