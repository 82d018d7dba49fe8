"""`hf-i3d convert pytorchvideo`: logits parity with pytorchvideo 0.1.5's hub ``i3d_r50``, key mapping, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_i3d import I3DConfig, I3DForVideoClassification
from hf_i3d.cli import main as cli_main
from hf_i3d.convert.pytorchvideo import pytorchvideo_key_map
from hf_i3d.flops import count_gflops, zoo_view_shape
from hf_i3d.transforms import normalization_lut
from hf_i3d.zoo import get_entry

FIXTURES = Path(__file__).parent / "fixtures" / "pytorchvideo"
SUMMARY = json.loads((FIXTURES / "cases.json").read_text())
CASES = SUMMARY["cases"]
REFERENCE = np.load(FIXTURES / "reference.npz")
PRESET = "i3d-r50-pytorchvideo-kinetics400"


def pixel_values() -> torch.Tensor:
    return torch.from_numpy(REFERENCE["input"].astype(np.float32)).permute(0, 2, 1, 3, 4)  # NCTHW -> BTCHW


def convert(checkpoint, output, *extra) -> int:
    argv = ["convert", "pytorchvideo", str(checkpoint), "--output", str(output)]
    return cli_main(argv + list(extra))


def case_overrides(case: dict) -> list[str]:
    """``--set`` values for the fixture's tiny width, class count and head window (the hub builder's kwargs)."""
    kwargs = case["kwargs"]
    return [
        "--set",
        f"base_channels={kwargs['stem_dim_out']}",
        "--set",
        f"num_labels={kwargs['model_num_class']}",
        "--set",
        f"head_pool_kernel_size={tuple(kwargs['head_pool_kernel_size'])!r}",
    ]


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_converted_checkpoint_matches_pytorchvideo_logits(case_name, tmp_path):
    case = CASES[case_name]
    output = tmp_path / case_name
    assert convert(FIXTURES / case["checkpoint"], output, *case_overrides(case)) == 0
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in output.iterdir()}
    config = json.loads((output / "config.json").read_text())
    assert config["conv1_stride_t"] == 1 and config["pool1_stride_t"] == 1 and config["num_frames"] == 8
    model = I3DForVideoClassification.from_pretrained(output).eval()
    x = pixel_values()
    with torch.inference_mode():
        out = model(x, output_hidden_states=True)
        logits64 = model.double()(x.double()).logits
    expected = torch.from_numpy(REFERENCE[f"{case_name}_logits"])
    assert (out.logits - expected).abs().max() <= 1e-4
    # float64 on both sides: the same function, not just close numbers
    assert (logits64 - torch.from_numpy(REFERENCE[f"{case_name}_logits64"])).abs().max() <= 1e-9
    features = torch.from_numpy(REFERENCE[f"{case_name}_features"])
    assert list(out.hidden_states[-1].shape) == case["feature_shape"]
    # eval forwards run the BN-folded fast copy (hf_i3d.inference); relative 1e-4 as in test_convert_mmaction.py
    assert (out.hidden_states[-1] - features).abs().max() <= 1e-4 * features.abs().max()


def test_every_pytorchvideo_key_maps_onto_the_model():
    state = torch.load(FIXTURES / CASES["i3d_r50_windows"]["checkpoint"], weights_only=True)["model_state"]
    mapping = pytorchvideo_key_map(list(state))
    assert None not in mapping.values() and len(set(mapping.values())) == len(state) == 320
    config = I3DConfig(base_channels=4, num_labels=10, conv1_stride_t=1, pool1_stride_t=1)
    with torch.device("meta"):
        assert set(mapping.values()) == set(I3DForVideoClassification(config).state_dict())
    assert mapping["blocks.0.conv.weight"] == "i3d.stem.conv.conv.weight"
    assert (
        mapping["blocks.3.res_blocks.0.branch1_norm.running_var"]
        == "i3d.stages.1.layers.0.shortcut.norm.running_var"
    )
    assert mapping["blocks.5.res_blocks.1.branch2.conv_a.weight"] == "i3d.stages.3.layers.1.conv1.conv.weight"
    assert mapping["blocks.6.proj.bias"] == "classifier.bias"


def test_zoo_entry_is_the_full_size_hub_model():
    """The entry's architecture has pytorchvideo's parameter count (model zoo: 28.04M) and its GFLOPs are counted."""
    entry = get_entry("i3d_r50")
    assert entry.name == PRESET and entry.checkpoint_format == "pytorchvideo"
    assert entry.checkpoint_url == SUMMARY["full_size_facts"]["checkpoint_url"]
    config = I3DConfig(**entry.config, num_labels=400)
    with torch.device("meta"):
        model = I3DForVideoClassification(config)
    assert (
        sum(p.numel() for p in model.parameters())
        == SUMMARY["full_size_facts"]["num_parameters"]
        == entry.params
    )
    assert len(model.state_dict()) == SUMMARY["full_size_facts"]["num_state_dict_entries"]
    assert round(count_gflops(model, zoo_view_shape(entry)), 2) == entry.gflops


def test_pyslowfast_wrapped_checkpoint_converts_the_same(tmp_path):
    """A PySlowFast training file: ``model.``-prefixed keys (its ``PTVResNet`` wrapper) beside optimizer state."""
    case = CASES["i3d_r50_global"]
    state = torch.load(FIXTURES / case["checkpoint"], weights_only=True)["model_state"]
    wrapped = {
        "epoch": 3,
        "model_state": {f"model.{k}": v for k, v in state.items()},
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        "cfg": "MODEL:\n  ARCH: i3d\n",
    }
    torch.save(wrapped, tmp_path / "run.pyth")
    assert convert(tmp_path / "run.pyth", tmp_path / "out", *case_overrides(case)) == 0
    model = I3DForVideoClassification.from_pretrained(tmp_path / "out").eval()
    with torch.inference_mode():
        logits = model(pixel_values()).logits
    assert (logits - torch.from_numpy(REFERENCE["i3d_r50_global_logits"])).abs().max() <= 1e-4


def test_wrong_class_count_and_head_are_named(tmp_path, capsys):
    case = CASES["i3d_r50_windows"]
    out = tmp_path / "out"
    assert convert(FIXTURES / case["checkpoint"], out, "--set", "base_channels=4") == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-i3d convert: error: ")
    assert "blocks.6.proj.weight: checkpoint (10, 128) vs config (400, 128)" in err
    assert "for a checkpoint with N classes pass --set num_labels=N" in err
    assert not out.exists()


def test_unexpected_and_missing_keys_are_listed(tmp_path, capsys):
    state = torch.load(FIXTURES / CASES["i3d_r50_windows"]["checkpoint"], weights_only=True)["model_state"]
    del state["blocks.6.proj.bias"]
    state["blocks.7.extra.weight"] = torch.zeros(1)
    torch.save({"model_state": state}, tmp_path / "edited.pyth")
    assert convert(tmp_path / "edited.pyth", tmp_path / "out", *case_overrides(CASES["i3d_r50_windows"])) == 1
    err = capsys.readouterr().err
    assert "1 unexpected key(s): blocks.7.extra.weight" in err and "1 missing key(s): classifier.bias" in err


def test_missing_and_unreadable_files(tmp_path, capsys):
    assert convert(tmp_path / "nope.pyth", tmp_path / "out") == 1
    assert f"{tmp_path / 'nope.pyth'}: no such checkpoint file" in capsys.readouterr().err
    bogus = tmp_path / "notes.pyth"
    bogus.write_text("not a checkpoint\n")
    assert convert(bogus, tmp_path / "out") == 1
    assert f"{bogus} is not a readable PyTorch checkpoint" in capsys.readouterr().err


def windows_state() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / CASES["i3d_r50_windows"]["checkpoint"], weights_only=True)["model_state"]


def test_nan_weights_are_refused_unless_allowed(tmp_path, capsys):
    """The NaN/Inf check of mmaction2 conversions (``convert.check_finite``): the first keys and their counts."""
    state = windows_state()
    state["blocks.6.proj.weight"][0, 0] = float("nan")
    state["blocks.0.conv.weight"][0, 0, 0, :2, 0] = float("inf")
    torch.save({"model_state": state}, tmp_path / "nan.pyth")
    overrides = case_overrides(CASES["i3d_r50_windows"])
    assert convert(tmp_path / "nan.pyth", tmp_path / "out", *overrides) == 1
    assert capsys.readouterr().err == (
        f"hf-i3d convert: error: {tmp_path / 'nan.pyth'}: 2 tensor(s) hold NaN or Inf values: blocks.0.conv.weight "
        "(2 Inf), blocks.6.proj.weight (1 NaN); the model would give NaN scores (pass --allow-nonfinite to convert "
        "it anyway)\n"
    )
    assert not (tmp_path / "out").exists()
    assert convert(tmp_path / "nan.pyth", tmp_path / "out", *overrides, "--allow-nonfinite") == 0
    model = I3DForVideoClassification.from_pretrained(tmp_path / "out")
    assert (
        torch.isnan(model.classifier.weight[0, 0])
        and int(torch.isinf(model.i3d.stem.conv.conv.weight).sum()) == 2
    )


class Eval:
    """Pickles as a call of ``builtins.eval`` (what a hostile checkpoint carries); never run by the converter."""

    def __reduce__(self):
        return (eval, ("open('pwned.txt', 'w').write('pwned')",))  # would write a file if a loader ran it


def test_a_checkpoint_that_would_run_code_is_refused_unless_trusted(tmp_path, monkeypatch, capsys):
    """A pickle that is not a plain state dict: refused naming the global (mmaction2's check); with
    ``--trust-checkpoint`` its objects become inert stand-ins and the weights convert. Nothing is ever run."""
    case = CASES["i3d_r50_windows"]
    torch.save({"model_state": windows_state(), "cfg": Eval()}, tmp_path / "evil.pyth")
    monkeypatch.chdir(tmp_path)
    assert convert(tmp_path / "evil.pyth", tmp_path / "out", *case_overrides(case)) == 1
    assert capsys.readouterr().err == (
        f"hf-i3d convert: error: {tmp_path / 'evil.pyth'} refers to builtins.eval, which a weights file has no reason "
        "to hold; refused (nothing in it was run). Pass --trust-checkpoint if you know where the file comes from "
        "(its objects are then replaced by inert stand-ins, still never run)\n"
    )
    assert not (tmp_path / "out").exists()
    assert convert(tmp_path / "evil.pyth", tmp_path / "out", *case_overrides(case), "--trust-checkpoint") == 0
    assert not (tmp_path / "pwned.txt").exists()
    model = I3DForVideoClassification.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(
        model.classifier.weight, windows_state()["blocks.6.proj.weight"], rtol=0, atol=0
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (
            [1, 2, 3],
            "holds no state dict (expected {'model_state': ...}, {'state_dict': ...} or a dict of tensors)",
        ),
        (
            {"model_state": {}},
            "holds no state dict (expected {'model_state': ...}, {'state_dict': ...} or a dict of tensors)",
        ),
        (
            {"model_state": {"blocks.0.conv.weight": torch.zeros(1), "blocks.0.note": "stem"}},
            "entry 'blocks.0.note' of the state dict is a str, not a tensor",
        ),
    ],
)
def test_a_pickle_that_is_no_state_dict_is_named(tmp_path, capsys, content, message):
    torch.save(content, tmp_path / "odd.pyth")
    assert convert(tmp_path / "odd.pyth", tmp_path / "out") == 1
    assert capsys.readouterr().err == f"hf-i3d convert: error: {tmp_path / 'odd.pyth'}: {message}\n".replace(
        "pyth: holds", "pyth holds"
    )
    assert not (tmp_path / "out").exists()


def test_pytorchvideo_normalisation_matches_its_transforms():
    """PySlowFast ``div255`` then ``NormalizeVideo(0.45, 0.225)`` in float32, for every uint8 level."""
    levels = torch.arange(256, dtype=torch.uint8).float() / 255.0
    expected = (levels - torch.tensor(0.45)) / torch.tensor(0.225)
    lut = normalization_lut("pytorchvideo")
    assert lut.shape == (3, 256)
    for channel in range(3):
        assert np.array_equal(lut[channel], expected.numpy())


def test_window_head_is_the_mean_of_per_window_logits():
    """``head_pool_kernel_size``: the classifier of the averaged windows equals pytorchvideo's per-window classifier
    followed by the global average (its ``ResNetBasicHead`` order)."""
    torch.manual_seed(0)
    config = I3DConfig(
        base_channels=4, num_labels=7, conv1_stride_t=1, pool1_stride_t=1, head_pool_kernel_size=(2, 2, 2)
    )
    model = I3DForVideoClassification(config).eval()
    x = torch.randn(1, 8, 3, 96, 96)
    with torch.inference_mode():
        features = model.i3d(x).last_hidden_state  # (1, 128, 4, 3, 3)
        windows = torch.nn.functional.avg_pool3d(features, (2, 2, 2), stride=1)  # (1, 128, 3, 2, 2)
        per_window = model.classifier(windows.permute(0, 2, 3, 4, 1))
        expected = per_window.mean(dim=(1, 2, 3))
        torch.testing.assert_close(model(x).logits, expected, rtol=0, atol=1e-5)


def test_zoo_name_downloads_and_converts_with_the_pytorchvideo_converter(tmp_path, monkeypatch):
    """``from_pretrained("i3d_r50")``: the entry's PySlowFast file is fetched (from a local stand-in of its host,
    checked against the recorded sha256) and read by the pytorchvideo converter, not the mmaction2 one."""
    import dataclasses
    import hashlib
    import shutil

    from test_hub import ZooHost

    from hf_i3d import zoo

    case = CASES["i3d_r50_windows"]
    host = ZooHost(tmp_path / "host")
    try:
        path = "/pytorchvideo/model_zoo/kinetics/I3D_8x8_R50.pyth"
        (host.root / path.lstrip("/")).parent.mkdir(parents=True)
        shutil.copy(FIXTURES / case["checkpoint"], host.root / path.lstrip("/"))
        entry = zoo.ZOO[PRESET]
        assert entry.checkpoint_url.endswith(path)
        kwargs = case["kwargs"]
        patched = dataclasses.replace(
            entry,
            sha256=hashlib.sha256((FIXTURES / case["checkpoint"]).read_bytes()).hexdigest(),
            config={
                **entry.config,
                "base_channels": kwargs["stem_dim_out"],
                "num_labels": kwargs["model_num_class"],
                "head_pool_kernel_size": kwargs["head_pool_kernel_size"],
            },
        )
        monkeypatch.setitem(zoo.ZOO, PRESET, patched)
        monkeypatch.setenv("HF_I3D_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("HF_I3D_MIRROR", host.url)
        monkeypatch.chdir(tmp_path)
        model = I3DForVideoClassification.from_pretrained("i3d_r50").eval()
        assert host.requests == [path]
    finally:
        host.close()
    assert model.config.zoo_name == PRESET and model.config.head_pool_kernel_size == [4, 2, 2]
    with torch.inference_mode():
        logits = model(pixel_values()).logits
    assert (logits - torch.from_numpy(REFERENCE["i3d_r50_windows_logits"])).abs().max() <= 1e-4
    card = (tmp_path / "cache" / "models" / PRESET / "README.md").read_text()
    assert "`hf-i3d convert pytorchvideo`" in card


def test_processor_of_the_entry_normalises_like_pytorchvideo():
    from hf_i3d import I3DVideoProcessor

    processor = I3DVideoProcessor.from_zoo_entry(get_entry(PRESET))
    assert processor.num_frames == 8 and processor.frame_interval == 8 and processor.test_crop_size == 256
    video = np.full((64, 240, 320, 3), 200, dtype=np.uint8)
    pixel = processor(video, return_tensors="pt")["pixel_values"]
    assert pixel.shape == (1, 8, 3, 224, 224)
    expected = (torch.tensor(200.0) / 255.0 - torch.tensor(0.45)) / torch.tensor(0.225)
    assert torch.all(pixel == expected)
