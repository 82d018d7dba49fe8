"""hf_i3d.export and ``hf-i3d export``: ONNX and ExportedProgram files that compute what the PyTorch models compute.

Every zoo architecture is exported at tiny width (base_channels 4 / Inception branch widths / 16; depth, blocks,
inflation, strides and pools as in the zoo config) with random weights and random BatchNorm statistics, so logits are
of order 1-10 and a 1e-4 comparison means something. The exported ONNX file runs in onnxruntime here, independently
of the exporter's own check, at several batch sizes and frame counts.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from hf_i3d import (
    I3DConfig,
    I3DForVideoClassification,
    InceptionI3DConfig,
    InceptionI3DForVideoClassification,
)
from hf_i3d.cli import main
from hf_i3d.configuration_inception_i3d import MIXED_CHANNELS
from hf_i3d.export import (
    ExportError,
    dynamic_frames_problem,
    export_onnx,
    export_program,
    input_spec,
    min_frames,
)
from hf_i3d.inference import plain_forward
from hf_i3d.zoo import ZOO, get_entry

ROOT = Path(__file__).resolve().parents[1]
RESNET_SIZE = 64  # stage 4 keeps 2x2 pixels; the ResNet3d models are fully convolutional
INCEPTION_SIZE = 224  # the Inception I3D head needs a 7x7 Mixed_5c
# One zoo entry per architecture: the R50 variants (dense, fast, video) share the R50 config (checked below).
ARCHITECTURES = [
    "i3d-r34-kinetics400",
    "i3d-r50-kinetics400",
    "i3d-r50-heavy",
    "i3d-inception-kinetics400",
    "i3d-r50-nl-dot-product-kinetics400",
    "i3d-r50-nl-embedded-gaussian-kinetics400",
    "i3d-r50-nl-gaussian-kinetics400",
    "i3d-r50-pytorchvideo-kinetics400",
]
LARGE_CROP = {"i3d-inception-kinetics400", "i3d-r50-pytorchvideo-kinetics400"}  # heads with a 7x7 window


def tiny_model(name: str, num_labels: int = 5, seed: int = 0):
    """The zoo architecture ``name`` at tiny width with random weights and BatchNorm statistics."""
    entry = get_entry(name)
    torch.manual_seed(seed)
    if entry.model_type == "inception_i3d":
        mixed = {key: [max(2, width // 16) for width in widths] for key, widths in MIXED_CHANNELS.items()}
        config = InceptionI3DConfig(
            **{**entry.config, "num_frames": 10}, mixed_channels=mixed, num_labels=num_labels
        )
        model = InceptionI3DForVideoClassification(config)
    else:
        config = I3DConfig(**entry.config, base_channels=4, num_labels=num_labels, image_size=RESNET_SIZE)
        model = I3DForVideoClassification(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name_, tensor in model.state_dict().items():
            if name_.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name_.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name_.endswith("classifier.weight"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 2.0)
    return model.eval()


def image_size(name: str) -> int:
    return INCEPTION_SIZE if name in LARGE_CROP else RESNET_SIZE


@functools.cache
def onnx_export(name: str, folder: str) -> tuple:
    """Export the tiny ``name`` once per test session (dynamic batch; dynamic frames where the family allows)."""
    model = tiny_model(name)
    path = Path(folder) / f"{name}.onnx"
    frames = model.config.num_frames if dynamic_frames_problem(model.config) else 10
    result = export_onnx(
        model, path, dynamic_batch=True, image_size=image_size(name), check_shapes=[(1, frames)]
    )
    return model, result


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("exports"))


def _architecture(name: str) -> str:
    entry = get_entry(name)
    config_class = InceptionI3DConfig if entry.model_type == "inception_i3d" else I3DConfig
    settings = config_class(**entry.config).to_diff_dict()
    settings.pop("num_frames", None)  # a processor default, not structure
    return json.dumps(settings, sort_keys=True)


def test_the_tested_architectures_cover_the_zoo():
    """Every zoo entry has the structure of one of ARCHITECTURES (the R50 variants share the R50 config)."""
    covered = {_architecture(name) for name in ARCHITECTURES}
    assert [name for name in ZOO if _architecture(name) not in covered] == []
    assert len(covered) == len(ARCHITECTURES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("i3d-r34-kinetics400", 5),
        ("i3d-r50-kinetics400", 5),
        ("i3d-r50-heavy", 2),
        ("i3d-inception-kinetics400", 9),
        ("i3d-r50-nl-embedded-gaussian-kinetics400", 5),
        ("i3d-r50-pytorchvideo-kinetics400", 8),
    ],
)
def test_min_frames_is_the_fewest_frames_the_model_classifies(name, expected):
    model = tiny_model(name)
    size = image_size(name)
    assert min_frames(model.config) == expected
    with torch.no_grad(), plain_forward():
        assert model(torch.randn(1, expected, 3, size, size)).logits.shape == (1, 5)
        with pytest.raises((RuntimeError, ValueError)):
            model(torch.randn(1, expected - 1, 3, size, size))


@pytest.mark.slow  # one ONNX export per architecture: about 40 s of CPU each
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_onnx_logits_match_pytorch_at_several_batch_sizes_and_frame_counts(name, export_dir):
    model, result = onnx_export(name, export_dir)
    spec = result.spec
    resnet = dynamic_frames_problem(model.config) is None  # dynamic frames: every ResNet3d but pytorchvideo's
    assert spec.dynamic_batch and spec.dynamic_frames == resnet
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    [onnx_input] = session.get_inputs()
    assert onnx_input.name == "pixel_values" and onnx_input.type == "tensor(float)"
    assert isinstance(onnx_input.shape[0], str) and isinstance(onnx_input.shape[1], str) == resnet
    assert onnx_input.shape[2:] == [3, image_size(name), image_size(name)]
    least = min_frames(model.config)
    frames = spec.num_frames
    shapes = [(1, least), (2, 8), (3, 13)] if resnet else [(1, frames), (2, frames), (3, frames)]
    size = image_size(name)
    generator = torch.Generator().manual_seed(1)
    for batch, frames in shapes:
        pixel_values = torch.randn(batch, frames, 3, size, size, generator=generator)
        with torch.no_grad(), plain_forward():
            expected = model(pixel_values).logits.numpy()
        [logits] = session.run(None, {"pixel_values": pixel_values.numpy()})
        assert logits.shape == expected.shape
        assert np.abs(expected).max() > 0.5  # the comparison is not between near-zero numbers
        assert np.abs(logits - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max()), (batch, frames)


def test_inception_frame_axis_is_fixed_and_says_why():
    model = tiny_model("i3d-inception-kinetics400")
    with pytest.raises(
        ExportError, match="^cannot export a dynamic frame count: the Inception I3D exports with a fixed"
    ):
        input_spec(model, dynamic_frames=True, image_size=INCEPTION_SIZE)
    with pytest.raises(
        ExportError, match=r"needs at least 9 frames, got num_frames=8 \(Mixed_5c needs two time"
    ):
        input_spec(model, num_frames=8, image_size=INCEPTION_SIZE)
    spec = input_spec(model, image_size=INCEPTION_SIZE)
    assert not spec.dynamic_frames and spec.axes_text()[1] == "frames: fixed at 10 (the model takes >= 9)"


def test_exported_program_round_trip_with_features(tmp_path):
    model = tiny_model("i3d-r50-heavy")
    path = tmp_path / "heavy.pt2"
    result = export_program(
        model,
        path,
        dynamic_batch=True,
        num_frames=4,
        image_size=RESNET_SIZE,
        features=True,
        check_shapes=[(1, 2), (2, 5)],
    )
    assert [c.output for c in result.checks] == ["logits", "pooler_output"] * 2 and all(
        c.ok for c in result.checks
    )
    loaded = torch.export.load(path).module()
    pixel_values = torch.randn(3, 7, 3, RESNET_SIZE, RESNET_SIZE)
    with torch.no_grad(), plain_forward():
        logits, pooled = loaded(pixel_values)
        expected = model(pixel_values).logits
        expected_pooled = model.base_model(pixel_values).pooler_output
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        pooled, expected_pooled, atol=1e-4 * expected_pooled.abs().max().item(), rtol=0
    )


def test_a_wrong_export_fails_the_parity_check():
    from hf_i3d.export import _program_runner, check_parity

    model = tiny_model("i3d-r50-heavy")
    result = export_program(model, num_frames=4, image_size=RESNET_SIZE, dynamic_frames=False, check=False)
    with torch.no_grad():
        model.classifier.bias.add_(1.0)  # the model moves on; the program keeps the old bias
    with pytest.raises(ExportError) as error:
        check_parity(model, _program_runner(result.program), result.spec)
    match = re.fullmatch(
        r"parity check failed: logits 1x4x3x64x64: max \|diff\| (\S+) \(tolerance (\S+)\)", str(error.value)
    )
    assert match and abs(float(match[1]) - 1.0) < 1e-3 and float(match[2]) < 1.0, str(error.value)


# -- hf-i3d export ---------------------------------------------------------------------------------------------------
def _save_folder(folder: Path, name: str, processor: bool = True) -> I3DForVideoClassification:
    from hf_i3d.video_processing_i3d import I3DVideoProcessor

    model = tiny_model(name)
    model.config.zoo_name = None
    model.save_pretrained(folder)
    if processor:
        I3DVideoProcessor(
            num_frames=8, frame_interval=2, short_side=72, crop_size={"height": 64, "width": 64}
        ).save_pretrained(folder)
    return model


def test_cli_exports_a_zoo_name_from_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_I3D_CACHE", str(tmp_path / "cache"))
    model = _save_folder(tmp_path / "cache" / "models" / "i3d-r50-heavy", "i3d-r50-heavy")
    output = tmp_path / "out"
    code = main(
        [
            "export",
            "i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb",
            str(output),
            "--format",
            "exported-program",
            "--dynamic-batch",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in output.iterdir()) == [
        "README.md",
        "config.json",
        "model.pt2",
        "video_preprocessor_config.json",
    ]
    out = capsys.readouterr().out
    assert "batch: any batch size >= 1" in out and "frames: any frame count >= 2" in out
    assert json.loads((output / "video_preprocessor_config.json").read_text())["num_frames"] == 8
    readme = (output / "README.md").read_text()
    assert "`pixel_values`: float32 (batch, frames, 3, 64, 64)" in readme and "max |diff|" in readme
    program = torch.export.load(output / "model.pt2").module()
    pixel_values = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad(), plain_forward():
        torch.testing.assert_close(program(pixel_values), model(pixel_values).logits, atol=1e-4, rtol=0)


def test_cli_exports_a_training_checkpoint_with_a_fixed_frame_count(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint-100"
    _save_folder(checkpoint, "i3d-r50-heavy", processor=False)  # what Trainer writes: no processor config
    output = tmp_path / "out"
    code = main(
        [
            "export",
            str(checkpoint),
            str(output),
            "--format",
            "exported-program",
            "--num-frames",
            "3",
            "--image-size",
            "64",
        ]
    )
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "(1, 3, 3, 64, 64)" in out and "frames: fixed at 3 (the model takes >= 2)" in out
    assert sorted(path.name for path in output.iterdir()) == ["README.md", "config.json", "model.pt2"]
    assert "had no `video_preprocessor_config.json`" in (output / "README.md").read_text()
    # without the shape the processor would have given, the missing processor is the error it always was
    assert main(["export", str(checkpoint), str(tmp_path / "out2"), "--format", "exported-program"]) == 1
    assert capsys.readouterr().err == (
        f"hf-i3d export: error: {checkpoint} has no video_preprocessor_config.json: the model's frame count, crop "
        "and normalisation are unknown (save the processor beside the model with I3DVideoProcessor.save_pretrained, "
        "or convert it again)\n"
    )
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["no-such-model"],
            "hf-i3d export: error: cannot load 'no-such-model' (a zoo name, a model folder or a Hub id)",
        ),
        (
            ["{folder}", "--num-frames", "1"],
            "hf-i3d export: error: I3DForVideoClassification needs at least 2 frames, got num_frames=1\n",
        ),
        (
            ["{folder}", "--opset", "17"],
            "hf-i3d export: error: opset must be >= 18 (torch's ONNX exporter), got 17\n",
        ),
        (
            ["{folder}", "--dtype", "bfloat16", "--opset", "20"],
            "hf-i3d export: error: a bfloat16 ONNX model needs opset >= 22 (Conv), got 20\n",
        ),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    folder = tmp_path / "model"
    _save_folder(folder, "i3d-r50-heavy")
    output = tmp_path / "out"
    capsys.readouterr()  # the setup's save_pretrained progress bars
    argv = ["export", *[a.replace("{folder}", str(folder)) for a in args[:1]], str(output), *args[1:]]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert not output.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_refuses_a_non_empty_output_folder(tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("user file")
    assert main(["export", "i3d-r50-heavy", str(output)]) == 1
    assert capsys.readouterr().err == (
        f"hf-i3d export: error: {output} already exists and is not empty (pass --overwrite to replace it)\n"
    )
    assert (output / "keep.txt").read_text() == "user file"


# -- the README's onnxruntime runner --------------------------------------------------------------------------------
@pytest.mark.slow
def test_readme_onnxruntime_runner_gives_the_processor_and_model_logits(tmp_path, export_dir):
    """The README's dozen lines (PyAV decode, settings from the saved processor config, onnxruntime) on a real video:
    the same logits as hf_i3d's processor + PyTorch model (the frames are at the processor's short side already, so
    the README's PIL resize is the identity, as cv2's is)."""
    from _synthetic import encode_video, moving_square_frames

    from hf_i3d.video_processing_i3d import I3DVideoProcessor

    model, result = onnx_export("i3d-r50-kinetics400", export_dir)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(result.path.read_bytes())
    model.config.to_json_file(folder / "config.json")
    processor = I3DVideoProcessor(
        num_frames=8,
        frame_interval=2,
        short_side=64,
        crop_size={"height": 64, "width": 64},
        video_backend="pyav",
    )
    processor.to_json_file(folder / "video_preprocessor_config.json")
    video = tmp_path / "video.mp4"
    encode_video(video, moving_square_frames((3, 0), (5, 9), num_frames=29, size=64)[:, :, :, :])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- onnx-runner:start -->\n```python\n(.*?)\n```", readme, re.S).group(1)
    assert 'folder, video = "i3d-r50-onnx", "video.mp4"' in code and len(code.splitlines()) <= 16
    namespace: dict = {}
    exec(code.replace('"i3d-r50-onnx", "video.mp4"', f'"{folder}", "{video}"'), namespace)  # noqa: S102
    pixel_values = processor(str(video), return_tensors="pt")["pixel_values"]
    with torch.no_grad(), plain_forward():
        expected = model(pixel_values).logits.numpy()
    np.testing.assert_allclose(
        namespace["logits"], expected, atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0
    )
