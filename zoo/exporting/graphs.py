"""The "onnx" and "pt2" export formats: one graph per tower, tensors in, the final embedding out.

Each tower (``image``, ``text``, or both for a CLIP-style backbone) is traced once by
``torch.export`` from a small module around ``encode_pixels`` / ``encode_tokens``, with a dynamic
batch axis (and sequence axis, unless the tokenizer pads to a fixed length); a classification head,
when given, is one more linear layer in the same graph, which then returns ``embedding`` and
``logits``. That program is saved as is (``image.pt2``, ``text.pt2``) or translated by the dynamo
ONNX exporter (``image.onnx``, ``text.onnx``; weights inside the file, or beside it over 2 GB).
``preprocessing.json`` says how the inputs are made (the backbone's preprocessing, the tokenizer
folder that ``backbone.save_assets`` writes) and names every input, axis and output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

GRAPH_INFO = "preprocessing.json"
# a batch of 2 padded to neither 0, 1 nor 2 tokens: torch.export specialises axes of those sizes
EXAMPLE_TEXTS = ("An unexpectedly moving story about two brothers.", "Not bad at all!")
AXES = ("batch", "sequence")
# per format, the README's snippet: intro, import, loading line ({part}), call line ({part}, {names}), with a head
USAGE = {
    "onnx": (
        "One ONNX graph per tower, run here with onnxruntime:",
        "import onnxruntime",
        "session = onnxruntime.InferenceSession('{part}.onnx', providers=['CPUExecutionProvider'])",
        "{part}_embedding = session.run(None, {{k: inputs[k] for k in ({names},)}})[0]  # [batch, dim]",
        "`session.run` returns `[embedding, logits]`.",
    ),
    "pt2": (
        "One `torch.export` program per tower (tensors in, a tuple out):",
        "import torch",
        "model = torch.export.load('{part}.pt2').module()",
        "{part}_embedding = model(*(torch.as_tensor(inputs[k]) for k in ({names},)))[0]  # [batch, dim]",
        "The programs return `(embedding, logits)`.",
    ),
}

Runner = Callable[[str, Any], dict[str, torch.Tensor]]
Programs = dict[str, tuple[torch.export.ExportedProgram, dict[str, list[Any]]]]


class TowerGraph(torch.nn.Module):
    """One tower of ``backbone`` as a module on plain tensors: the pixels, or the token tensors in
    the order ``token_names``; returns ``(embedding,)`` or, with a head, ``(embedding, logits)``."""

    def __init__(self, backbone: Any, head: Any, part: str, token_names: Sequence[str] = ()) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head.linear() if head is not None else None
        self.part = part
        self.token_names = tuple(token_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.part == "image":
            embedding = self.backbone.encode_pixels(inputs[0])
        else:
            embedding = self.backbone.encode_tokens(dict(zip(self.token_names, inputs, strict=True)))
        return (embedding,) if self.head is None else (embedding, self.head(embedding))


def _example(backbone: Any, part: str) -> dict[str, torch.Tensor]:
    if part == "image":
        height, width = backbone.image_preprocessing.size
        return {"pixels": torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))}
    return dict(backbone.tokenize(list(EXAMPLE_TEXTS)))


def _input_shapes(program: torch.export.ExportedProgram, names: list[str]) -> dict[str, list[Any]]:
    """Each input's shape in the traced program: sizes, or "batch" / "sequence" for dynamic axes."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    nodes = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    shapes = {}
    for name, node_name in zip(names, program.graph_signature.user_inputs, strict=True):
        dims = nodes[str(node_name)].meta["val"].shape
        shapes[name] = [int(d) if is_concrete_int(d) or i > 1 else AXES[i] for i, d in enumerate(dims)]
    return shapes


def export_programs(backbone: Any, head: Any) -> Programs:
    """``{part: (program, {input name: shape})}``: each tower traced by ``torch.export`` in eval mode
    with a dynamic batch axis (and sequence axis where the tokenizer allows one); the backbone's
    train/eval mode is restored after."""
    from zoo.exporting import ExportError, parts_of

    was_training = backbone.training
    backbone.eval()
    programs: Programs = {}
    try:
        for part in parts_of(backbone):
            example = _example(backbone, part)
            module = TowerGraph(backbone, head, part, list(example) if part == "text" else ())
            module.to(backbone.device).eval()
            args = tuple(t.to(backbone.device) for t in example.values())
            # AUTO: a tokenizer that pads to a fixed context (CLIP's 77) keeps a fixed sequence axis
            axes = tuple(dict.fromkeys(range(min(t.dim(), 2)), torch.export.Dim.AUTO) for t in args)
            try:
                with torch.no_grad():
                    program = torch.export.export(module, args, dynamic_shapes=(axes,))
            except Exception as exc:  # noqa: BLE001 - torch.export fails in many ways: one line says which
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ExportError(
                    f"{backbone.name}: torch.export cannot trace the {part} tower ({type(exc).__name__}: {first})"
                ) from None
            shapes = _input_shapes(program, list(example))
            if any(shape[0] != "batch" for shape in shapes.values()):
                raise ExportError(
                    f"{backbone.name}: the {part} tower fixes the batch size when traced (code such as "
                    "len(tensor) or int(tensor.shape[0]) in its encode function), so no graph of it "
                    "takes other batch sizes"
                )
            programs[part] = (program, shapes)
    finally:
        backbone.train(was_training)
    return programs


def _outputs(head: Any) -> list[str]:
    return ["embedding"] if head is None else ["embedding", "logits"]


def _card(head: Any, programs: Programs) -> dict[str, str]:
    """A graph with a head computes the logits itself: its card's pipeline is the tower's classification
    (without a head, or with two towers, zoo's default holds)."""
    tasks = {"text": "text-classification", "image": "image-classification"}
    return {"pipeline_tag": tasks[next(iter(programs))]} if head is not None and len(programs) == 1 else {}


def _write_info(backbone: Any, head: Any, directory: Path, fmt: str, programs: Programs) -> list[str]:
    """Save the tokenizer (for a text tower) and ``preprocessing.json``; the README lines: how to run
    the graphs, their inputs and outputs."""
    if "text" in programs:
        backbone.save_assets(directory)
        for folder in [p for p in directory.iterdir() if p.is_dir() and not any(p.iterdir())]:
            folder.rmdir()  # a CLIP-style backbone's image tower has no assets
    found = sorted(p.parent.relative_to(directory).as_posix() for p in directory.rglob("tokenizer_config.json"))
    graphs: dict[str, dict[str, Any]] = {
        part: {
            "file": f"{part}.{fmt}",
            "inputs": [
                {"name": name, "dtype": "float32" if part == "image" else "int64", "shape": shape}
                for name, shape in shapes.items()
            ],
            "outputs": _outputs(head),
        }
        for part, (_, shapes) in programs.items()
    }
    info = {
        "backbone": backbone.name,
        "embed_dim": backbone.embed_dim,
        "graphs": graphs,
        "preprocessing": backbone.preprocessing,
        "tokenizer": found[0] if found else None,
        "label_names": None if head is None else list(head.label_names),
    }
    (directory / GRAPH_INFO).write_text(json.dumps(info, indent=2))
    intro, *usage, with_head = USAGE[fmt]
    lines = [intro, "", *_usage(backbone, programs, info["tokenizer"], *usage), *([with_head, ""] if head else [])]
    lines += [
        f"- `{graph['file']}`: inputs "
        + ", ".join(f"`{i['name']}` {i['dtype']} {i['shape']}" for i in graph["inputs"])
        + "; outputs "
        + ", ".join(f"`{o}`" for o in graph["outputs"])
        for graph in graphs.values()
    ]
    lines.append(
        f"- embeddings are {backbone.embed_dim}-d, what zoo's `encode_*` returns (pooled, and normalised where "
        f"the model normalises); `{GRAPH_INFO}` holds the preprocessing (image size, mean and std; the "
        "tokenizer's max_length) and the input and output names"
        + (", and the class names in the order of `logits`" if head is not None else "")
    )
    if found:
        lines.append(f"- `{found[0]}/`: the tokenizer, for `transformers.AutoTokenizer.from_pretrained`")
    return lines


def _usage(backbone: Any, programs: Programs, tokenizer: str | None, imports: str, load: str, call: str) -> list[str]:
    """README lines: a snippet that runs each tower (``load`` formats {part}, ``call`` {part}, {names})."""
    lines = [
        "```python",
        imports + (", numpy as np" if "image" in programs else ""),
        *(["from transformers import AutoTokenizer"] if tokenizer else ["import zoo"] if "text" in programs else []),
    ]
    for part, (_, shapes) in programs.items():
        if part == "image":
            size = ", ".join(str(d) for d in shapes["pixels"][1:])
            lines += [
                f"inputs = {{'pixels': np.zeros((1, {size}), np.float32)}}  # resized, normalised per {GRAPH_INFO}"
            ]
        elif tokenizer:
            limit = (backbone.preprocessing.get("text") or {}).get("max_length")
            lines += [
                f"tokenizer = AutoTokenizer.from_pretrained('{tokenizer}')",
                f"inputs = tokenizer(['a photo of a dog'], padding=True, truncation=True, max_length={limit}, "
                "return_tensors='np')",
            ]
        else:  # a tokenizer that is code, not files (open_clip's): zoo's tokenize is the reference
            lines += [f"inputs = {{k: v.numpy() for k, v in zoo.load('{backbone.name}').tokenize(['a dog']).items()}}"]
        lines += [load.format(part=part), call.format(part=part, names=", ".join(repr(name) for name in shapes))]
    return [*lines, "```", ""]


def _info(directory: Path) -> dict[str, Any]:
    from zoo.exporting import ExportError

    try:
        return dict(json.loads((directory / GRAPH_INFO).read_text()))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{directory / GRAPH_INFO}: cannot read it ({exc})") from None


def _name_io(graph: Any, inputs: list[str], outputs: list[str]) -> None:
    """Name the ONNX graph's inputs, outputs and dynamic axes as zoo does. An inner value holding
    one of those names is renamed first: the exporter names values after their ops, so BERT's
    ``embedding`` lookup would clash with the output."""
    from onnx_ir import Shape, SymbolicDim
    from onnx_ir.traversal import RecursiveGraphIterator

    ends = [*graph.inputs, *graph.outputs]
    values = [*graph.initializers.values(), *(v for node in RecursiveGraphIterator(graph) for v in node.outputs)]
    axes = {str(d.value): AXES[i] for i, d in enumerate(graph.inputs[0].shape.dims[:2]) if isinstance(d, SymbolicDim)}
    for value in values:
        if value.name in {*inputs, *outputs} and not any(value is end for end in ends):
            value.name = f"{value.name}.inner"
    for value in [*ends, *values]:
        if value.shape is not None and any(isinstance(d, SymbolicDim) and str(d.value) in axes for d in value.shape):
            value.shape = Shape([axes.get(str(d.value), d) if isinstance(d, SymbolicDim) else d for d in value.shape])
    for value, name in zip(ends, [*inputs, *outputs], strict=True):
        value.name = name


def write_onnx(backbone: Any, head: Any, directory: str | Path) -> dict[str, Any]:
    """Write ``image.onnx`` / ``text.onnx`` (one graph per tower, the head inside when given),
    ``preprocessing.json`` and the tokenizer into ``directory``; returns the README lines and the
    card's pipeline (see `_card`)."""
    import onnx  # noqa: F401 - the format's requirements: a missing one is named with how to install it
    import onnxscript  # noqa: F401 - the dynamo exporter translates through it

    directory = Path(directory)
    programs = export_programs(backbone, head)
    for part, (program, shapes) in programs.items():
        onnx_program = torch.onnx.export(program, dynamo=True, optimize=True, verbose=False)
        assert onnx_program is not None  # given no file name, the exporter returns the program
        _name_io(onnx_program.model.graph, list(shapes), _outputs(head))
        onnx_program.save(directory / f"{part}.onnx", external_data=False)  # still external over 2 GB
    return {"notes": _write_info(backbone, head, directory, "onnx", programs), "card": _card(head, programs)}


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for the graph at ``path``; ``threads`` sets its intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # fatal only: errors come back as exceptions
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _failed(file: str, runtime: str, sample: Any, exc: Exception) -> Exception:
    from zoo.exporting import ExportError

    first = (str(exc).strip().splitlines() or [""])[0]
    return ExportError(f"{file}: {runtime} cannot run it on a batch of {sample.size} ({type(exc).__name__}: {first})")


def _feeds(part: str, sample: Any) -> dict[str, torch.Tensor]:
    if part == "image":
        return {"pixels": sample.pixels.float()}
    return {name: value.long() for name, value in (sample.tokens or {}).items()}


def onnx_runner(directory: str | Path) -> Runner:
    """Load the ONNX graphs in ``directory`` with onnxruntime (CPU); ``run(part, sample)`` gives
    ``{"embedding"[, "logits"]}`` as tensors."""
    directory = Path(directory)
    sessions = {part: onnx_session(directory / graph["file"]) for part, graph in _info(directory)["graphs"].items()}

    def run(part: str, sample: Any) -> dict[str, torch.Tensor]:
        session, feeds = sessions[part], _feeds(part, sample)
        names = [output.name for output in session.get_outputs()]
        try:
            outputs = session.run(names, {i.name: feeds[i.name].cpu().numpy() for i in session.get_inputs()})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors, as one line
            raise _failed(f"{part}.onnx", "onnxruntime", sample, exc) from None
        return {name: torch.from_numpy(value) for name, value in zip(names, outputs, strict=True)}

    return run


def write_pt2(backbone: Any, head: Any, directory: str | Path) -> dict[str, Any]:
    """Write ``image.pt2`` / ``text.pt2`` (``torch.export`` programs, the head inside when given),
    ``preprocessing.json`` and the tokenizer into ``directory``; returns the README lines and the
    card's library (none the Hub knows) and pipeline (see `_card`)."""
    directory = Path(directory)
    programs = export_programs(backbone, head)
    for part, (program, _) in programs.items():
        torch.export.save(program, directory / f"{part}.pt2")
    card = {"library_name": None, **_card(head, programs)}
    return {"notes": _write_info(backbone, head, directory, "pt2", programs), "card": card}


def pt2_runner(directory: str | Path) -> Runner:
    """Load the ``.pt2`` programs in ``directory`` with ``torch.export.load``; ``run(part, sample)``
    gives ``{"embedding"[, "logits"]}``."""
    directory = Path(directory)
    graphs = _info(directory)["graphs"]
    modules = {part: torch.export.load(directory / graph["file"]).module() for part, graph in graphs.items()}

    def run(part: str, sample: Any) -> dict[str, torch.Tensor]:
        feeds, module = _feeds(part, sample), modules[part]
        device = next((t.device for t in module.state_dict().values()), torch.device("cpu"))
        try:
            with torch.no_grad():
                outputs = module(*(feeds[i["name"]].to(device) for i in graphs[part]["inputs"]))
        except Exception as exc:  # noqa: BLE001 - a guard or kernel error, as one line
            raise _failed(f"{part}.pt2", "torch.export.load", sample, exc) from None
        return {name: value.cpu() for name, value in zip(graphs[part]["outputs"], outputs, strict=True)}

    return run
