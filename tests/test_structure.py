"""The package's shape: data flows one way, and saved folders carry only their own code.

* No import circle among the package modules, counting imports inside functions and ``importlib`` strings (a
  circle held together by function-local imports is invisible to the interpreter, not to a reader).
* The configuration and modeling files import only torch, transformers, the standard library and each other, so
  they can travel in a model folder as transformers' one-file-per-model rule has it.
* A folder written by a plain ``save_pretrained`` of a model and processor built in Python loads with
  ``trust_remote_code=True`` in a Python where ``hf_i3d`` cannot be imported, and gives the same logits.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from _isolation import run_without_hf_i3d

import hf_i3d
from hf_i3d import (
    I3DConfig,
    I3DForVideoClassification,
    I3DVideoProcessor,
    InceptionI3DConfig,
    InceptionI3DForVideoClassification,
)
from hf_i3d.inference import plain_forward

PACKAGE = Path(hf_i3d.__file__).parent
# The most code a model folder with its processor may carry (configuration + modeling + processor files). The
# structure issue asked for about 1,300; the non-local blocks and the conformant processor brought the ResNet3d
# folder to about 1,490 (see the closing note of session 3): this bound keeps it from growing further. The torchcodec
# backend of the processor (issue 17: the one list of video backends, install hints) added about 30; the FFmpeg shim
# it carries for torchcodec (_ffmpeg.py, tests/test_video_processing_i3d.py bounds it) is not counted here.
MAX_FOLDER_CODE_LINES = 1530


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def _imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Package modules that ``path`` imports anywhere in its body (top level, functions, ``import_module``)."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets = []
    text = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
    targets += re.findall(r"import_module\(\s*[\"']([\w.]+)", text)
    found = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name and target != "hf_i3d" and not name.startswith(target + "."):
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imported_modules(path, set(paths)) for name, path in paths.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_the_checker_finds_a_circle_made_of_function_local_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_circles(graph) == [["a", "b", "c"]]


def test_no_import_circle_among_package_modules():
    circles = import_circles(import_graph())
    assert circles == [], "import circles (function-local imports count): " + "; ".join(
        " <-> ".join(circle) for circle in circles
    )


@pytest.mark.parametrize(
    "module, allowed",
    [
        ("configuration_i3d", set()),
        ("configuration_inception_i3d", set()),
        ("modeling_i3d", {"hf_i3d.configuration_i3d"}),
        ("modeling_inception_i3d", {"hf_i3d.configuration_inception_i3d"}),
    ],
)
def test_model_files_import_only_torch_transformers_and_their_config(module, allowed):
    path = PACKAGE / f"{module}.py"
    assert _imported_modules(path, set(import_graph())) == allowed
    third_party = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level:
            third_party.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            third_party.update(alias.name.split(".")[0] for alias in node.names)
    assert third_party - set(sys.stdlib_module_names) <= {"torch", "transformers"}


def _tiny_models():
    torch.manual_seed(0)
    i3d = I3DForVideoClassification(
        I3DConfig(depth=18, base_channels=4, num_labels=3, num_frames=8, image_size=32)
    ).eval()
    widths = {name: [2] * 6 for name in InceptionI3DConfig().mixed_channels}
    inception = InceptionI3DForVideoClassification(
        InceptionI3DConfig(mixed_channels=widths, num_labels=3, num_frames=9, image_size=193)
    ).eval()
    return {"i3d": (i3d, (1, 8, 3, 32, 32)), "inception": (inception, (1, 9, 3, 193, 193))}


@pytest.mark.parametrize("family", ["i3d", "inception"])
def test_plainly_saved_folder_loads_without_hf_i3d(tmp_path, family):
    """``save_pretrained`` of a model and processor built in Python (no converter, no registration call) writes
    their code; a Python without hf_i3d loads the folder with ``trust_remote_code=True`` and gives the same logits."""
    model, shape = _tiny_models()[family]
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    I3DVideoProcessor(num_frames=shape[1]).save_pretrained(folder)
    code = sorted(p.name for p in folder.glob("*.py"))
    prefix = "inception_i3d" if family == "inception" else "i3d"
    assert f"configuration_{prefix}.py" in code and f"modeling_{prefix}.py" in code
    for forbidden in ("zoo.py", "hub.py", "downloads.py", "decoding.py", "convert.py", "inference.py"):
        assert forbidden not in code
    counted = [name for name in code if name != "_ffmpeg.py"]
    lines = sum(len((folder / name).read_text(encoding="utf-8").splitlines()) for name in counted)
    assert lines <= MAX_FOLDER_CODE_LINES, f"{lines} lines of code in a saved folder: {code}"
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForVideoClassification"}

    torch.manual_seed(1)
    pixel_values = torch.randn(shape)
    torch.save(pixel_values, tmp_path / "input.pt")
    with torch.no_grad(), plain_forward():  # remote code has no fast path: compare computation with computation
        expected = model(pixel_values).logits
    script = f"""
        import torch
        from transformers import AutoModel, AutoModelForVideoClassification, AutoVideoProcessor
        folder = {str(folder)!r}
        model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        AutoModel.from_pretrained(folder, trust_remote_code=True)
        processor = AutoVideoProcessor.from_pretrained(folder, trust_remote_code=True)
        assert processor.num_frames == {shape[1]}, processor.num_frames
        with torch.no_grad():
            logits = model(torch.load({str(tmp_path / "input.pt")!r})).logits
        torch.save(logits, {str(tmp_path / "remote.pt")!r})
        print("remote-ok")
    """
    result = run_without_hf_i3d(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-ok" in result.stdout
    # the same computation in another process (thread counts may differ: float32 rounding only)
    torch.testing.assert_close(torch.load(tmp_path / "remote.pt"), expected, rtol=1e-5, atol=1e-6)


def test_both_model_files_merge_views_the_same_way():
    from hf_i3d.modeling_i3d import merge_view_logits as resnet_merge
    from hf_i3d.modeling_inception_i3d import merge_view_logits as inception_merge

    torch.manual_seed(0)
    view_logits = torch.randn(2, 5, 7)
    for mode in ("prob", "score"):
        for multi_label in (False, True):
            torch.testing.assert_close(
                resnet_merge(view_logits, mode, multi_label=multi_label),
                inception_merge(view_logits, mode, multi_label=multi_label),
                rtol=0,
                atol=0,
            )
    # 'prob': the softmax of the merged logits is the mean of the views' softmax (mmaction2 average_clip)
    torch.testing.assert_close(
        resnet_merge(view_logits, "prob").softmax(-1), view_logits.softmax(-1).mean(1)
    )
