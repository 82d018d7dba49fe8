"""`hf-i3d convert mmaction`: logits parity with mmaction2 1.2.0, key mapping, bad checkpoints, 2D inflation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_i3d import I3DConfig, I3DForVideoClassification, I3DModel
from hf_i3d.cli import main as cli_main
from hf_i3d.convert.inflate import inflate_2d_weights, map_2d_key
from hf_i3d.convert.mmaction import mmaction_key_to_hf

FIXTURES = Path(__file__).parent / "fixtures" / "mmaction"
CASES = json.loads((FIXTURES / "cases.json").read_text())["cases"]
REFERENCE = np.load(FIXTURES / "reference.npz")


def overrides_for(case: dict) -> list[str]:
    """``--set`` values that turn the i3d-r50 preset into the fixture's mmaction2 backbone/head kwargs."""
    backbone, head = case["backbone"], case["cls_head"]
    values = {
        "depth": backbone["depth"],
        "base_channels": backbone["base_channels"],
        "inflate": backbone["inflate"],
        "inflate_style": backbone.get("inflate_style", "3x1x1"),
        "conv1_kernel": backbone["conv1_kernel"],
        "conv1_stride_t": backbone["conv1_stride_t"],
        "pool1_stride_t": backbone["pool1_stride_t"],
        "with_pool2": backbone.get("with_pool2", True),
        "num_labels": head["num_classes"],
        "dropout_ratio": head["dropout_ratio"],
    }
    return [f"{key}={value!r}" for key, value in values.items()]


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_converted_checkpoint_matches_mmaction2_logits(case_name, tmp_path):
    case = CASES[case_name]
    output = tmp_path / case_name
    argv = ["convert", "mmaction", str(FIXTURES / case["checkpoint"]), "--preset", "i3d-r50-kinetics400"]
    argv += ["--output", str(output)]
    for item in overrides_for(case):
        argv += ["--set", item]
    assert cli_main(argv) == 0
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in output.iterdir()}
    model = I3DForVideoClassification.from_pretrained(output).eval()
    pixel_values = torch.from_numpy(REFERENCE["input"]).permute(0, 2, 1, 3, 4)  # NCTHW -> (B, T, C, H, W)
    with torch.inference_mode():
        out = model(pixel_values, output_hidden_states=True)
    expected_logits = torch.from_numpy(REFERENCE[f"{case_name}_logits"])
    expected_features = torch.from_numpy(REFERENCE[f"{case_name}_features"])
    assert out.logits.shape == expected_logits.shape
    assert (out.logits - expected_logits).abs().max() <= 1e-3
    # the random BN statistics blow features up to ~1e2; mmaction2's own fp32-vs-fp64 gap there is ~5e-5 relative
    feature_error = (out.hidden_states[-1] - expected_features).abs().max() / expected_features.abs().max()
    assert feature_error <= 1e-4


def test_every_mmaction_key_maps_and_back():
    state = torch.load(FIXTURES / CASES["r50"]["checkpoint"], weights_only=True)["state_dict"]
    mapped = {mmaction_key_to_hf(k) for k in state}
    assert None not in mapped and len(mapped) == len(state)
    config = I3DConfig(base_channels=8, num_labels=10)
    with torch.device("meta"):
        assert mapped == set(I3DForVideoClassification(config).state_dict())
    assert mmaction_key_to_hf("backbone.layer2.0.downsample.bn.running_var") == (
        "i3d.stages.1.layers.0.shortcut.norm.running_var"
    )
    assert mmaction_key_to_hf("backbone.layer3.1.non_local_block.g.conv.weight") == (
        "i3d.stages.2.layers.1.non_local.g.weight"
    )
    assert mmaction_key_to_hf("backbone.layer3.1.non_local_block.foo.weight") is None


def hf_to_mmaction_state(model: I3DForVideoClassification) -> dict:
    """The inverse key map, to write test checkpoints in the mmaction2 layout from a model of ours."""
    inverse = {}
    for key, value in model.state_dict().items():
        new = key.replace("i3d.stem.conv.", "backbone.conv1.").replace(".norm.", ".bn.")
        new = new.replace(".shortcut.", ".downsample.").replace("classifier.", "cls_head.fc_cls.")
        if new.startswith("i3d.stages."):
            _, _, stage, _, rest = new.split(".", 4)
            new = f"backbone.layer{int(stage) + 1}.{rest}"
        inverse[new] = value.clone()
    return inverse


@pytest.fixture
def small_checkpoint(tmp_path) -> tuple[Path, I3DForVideoClassification]:
    torch.manual_seed(0)
    model = I3DForVideoClassification(I3DConfig(base_channels=4, num_labels=6)).eval()
    path = tmp_path / "small.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": hf_to_mmaction_state(model)}, path)
    return path, model


def convert(checkpoint, output, *extra) -> int:
    argv = [
        "convert",
        "mmaction",
        str(checkpoint),
        "--preset",
        "i3d-r50-kinetics400",
        "--output",
        str(output),
    ]
    return cli_main(argv + ["--set", "base_channels=4", "--set", "num_labels=6", *extra])


def test_bare_and_module_prefixed_state_dicts_convert_identically(small_checkpoint, tmp_path):
    path, model = small_checkpoint
    state = torch.load(path, weights_only=True)["state_dict"]
    torch.save(state, tmp_path / "bare.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pth")
    x = torch.randn(1, 8, 3, 32, 32)
    for name in ("small.pth", "bare.pth", "ddp.pth"):
        assert convert(tmp_path / name, tmp_path / f"out-{name}") == 0
        loaded = I3DForVideoClassification.from_pretrained(tmp_path / f"out-{name}").eval()
        with torch.inference_mode():
            torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=1e-6)
    config = json.loads((tmp_path / "out-small.pth" / "config.json").read_text())
    assert config["zoo_name"] == "i3d-r50-kinetics400" and config["base_channels"] == 4


def test_kinetics_label_names_in_a_400_class_conversion(tmp_path):
    torch.manual_seed(0)
    model = I3DForVideoClassification(I3DConfig(base_channels=4, num_labels=400))
    torch.save({"state_dict": hf_to_mmaction_state(model)}, tmp_path / "k400.pth")
    argv = [
        "convert",
        "mmaction",
        str(tmp_path / "k400.pth"),
        "--preset",
        "i3d_r50_32x2x1_100e_kinetics400_rgb",
    ]
    assert cli_main(argv + ["--output", str(tmp_path / "out"), "--set", "base_channels=4"]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"]["0"] == "abseiling" and config["id2label"]["399"] == "zumba"
    assert config["auto_map"]["AutoModelForVideoClassification"] == "modeling_i3d.I3DForVideoClassification"


def assert_failed_cleanly(capsys, output: Path, *fragments: str) -> None:
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, err
    assert err.startswith("hf-i3d convert: error: ")
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(f".{output.name}.tmp")]


def test_not_a_checkpoint_is_refused(tmp_path, capsys):
    bogus = tmp_path / "notes.pth"
    bogus.write_text("this is not a checkpoint\n")
    assert convert(bogus, tmp_path / "out") == 1
    assert_failed_cleanly(capsys, tmp_path / "out", f"{bogus} is not a readable PyTorch checkpoint")


def fake_mmengine_object():
    """An object of a class the loading process cannot import, like mmengine's ``MessageHub`` in 1.x checkpoints
    (a stand-in module ``mmengine.logging``, removed again once the checkpoint is written)."""
    import sys
    import types

    package, module = types.ModuleType("mmengine"), types.ModuleType("mmengine.logging")
    package.logging = module
    exec("class MessageHub:\n    def __init__(self):\n        self.log = {'loss': 0.5}\n", module.__dict__)
    sys.modules.update({"mmengine": package, "mmengine.logging": module})
    hub = module.MessageHub()
    hub.__class__.__module__ = module.__name__
    return hub, ["mmengine", "mmengine.logging"]


class CodeRunner:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))  # would run a command if a loader executed it


def test_mmengine_objects_beside_the_state_dict_are_ignored(small_checkpoint, tmp_path):
    import sys

    path, model = small_checkpoint
    state = torch.load(path, weights_only=True)["state_dict"]
    hub, module_names = fake_mmengine_object()
    torch.save({"meta": {"epoch": 3}, "state_dict": state, "message_hub": hub}, tmp_path / "v1.pth")
    for name in module_names:
        del sys.modules[name]
    assert convert(tmp_path / "v1.pth", tmp_path / "out") == 0
    loaded = I3DForVideoClassification.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(loaded.classifier.weight, model.classifier.weight)


def test_a_checkpoint_that_would_run_code_is_refused(small_checkpoint, tmp_path, monkeypatch, capsys):
    path, _ = small_checkpoint
    state = torch.load(path, weights_only=True)["state_dict"]
    torch.save({"state_dict": state, "evil": CodeRunner()}, tmp_path / "evil.pth")
    monkeypatch.chdir(tmp_path)
    assert convert(tmp_path / "evil.pth", tmp_path / "out") == 1
    assert not (tmp_path / "pwned.txt").exists()
    assert_failed_cleanly(
        capsys,
        tmp_path / "out",
        f"{tmp_path / 'evil.pth'} refers to posix.system, which a weights file has no reason to hold; refused "
        "(nothing in it was run)",
    )


def test_missing_checkpoint_file(tmp_path, capsys):
    assert convert(tmp_path / "nope.pth", tmp_path / "out") == 1
    assert_failed_cleanly(capsys, tmp_path / "out", f"{tmp_path / 'nope.pth'}: no such checkpoint file")


def test_checkpoint_of_another_depth_names_the_shapes(small_checkpoint, tmp_path, capsys):
    path, _ = small_checkpoint
    out = tmp_path / "out"
    assert convert(path, out, "--set", "depth=34", "--set", "inflate=1") == 1
    assert_failed_cleanly(
        capsys,
        out,
        "does not match the config (depth=34",
        "backbone.layer1.0.conv1.conv.weight: checkpoint (4, 4, 3, 1, 1) vs config (4, 4, 3, 3, 3)",
        "unexpected key(s): backbone.layer1.0.conv3.conv.weight",
    )


def test_checkpoint_of_another_preset_inflation_names_the_shapes(small_checkpoint, tmp_path, capsys):
    path, _ = small_checkpoint
    out = tmp_path / "out"
    assert convert(path, out, "--set", "inflate_style='3x3x3'") == 1
    assert_failed_cleanly(
        capsys,
        out,
        "backbone.layer1.0.conv1.conv.weight: checkpoint (4, 4, 3, 1, 1) vs config (4, 4, 1, 1, 1)",
    )


def test_missing_and_unexpected_keys_are_listed(small_checkpoint, tmp_path, capsys):
    path, _ = small_checkpoint
    state = torch.load(path, weights_only=True)["state_dict"]
    del state["cls_head.fc_cls.bias"]
    state["backbone.layer3.1.non_local_block.g.conv.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "edited.pth")
    out = tmp_path / "out"
    assert convert(tmp_path / "edited.pth", out) == 1
    assert_failed_cleanly(
        capsys,
        out,
        "1 unexpected key(s): backbone.layer3.1.non_local_block.g.conv.weight",
        "1 missing key(s): classifier.bias",
    )


def test_wrong_number_of_classes_is_a_shape_error_with_a_hint(small_checkpoint, tmp_path, capsys):
    path, _ = small_checkpoint
    out = tmp_path / "out"
    argv = ["convert", "mmaction", str(path), "--preset", "i3d-r50-kinetics400", "--output", str(out)]
    assert cli_main(argv + ["--set", "base_channels=4"]) == 1
    assert_failed_cleanly(
        capsys,
        out,
        "cls_head.fc_cls.weight: checkpoint (6, 128) vs config (400, 128)",
        "for a checkpoint with N classes pass --set num_labels=N",
    )


def test_existing_output_is_not_overwritten_without_flag(small_checkpoint, tmp_path, capsys):
    path, _ = small_checkpoint
    out = tmp_path / "out"
    assert convert(path, out) == 0
    (out / "stale.safetensors").write_text("x")  # a file of the old model folder the new one does not write
    assert convert(path, out) == 1
    assert "already exists and is not empty (pass --overwrite to replace it)" in capsys.readouterr().err
    assert (out / "stale.safetensors").exists()
    assert convert(path, out, "--overwrite") == 0
    assert not (out / "stale.safetensors").exists() and (out / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out",
        "small.pth",
    ]  # no temporary or old folder left


def test_unknown_preset_lists_known_names(small_checkpoint, tmp_path, capsys):
    path, _ = small_checkpoint
    argv = ["convert", "mmaction", str(path), "--preset", "i3d-r18", "--output", str(tmp_path / "o")]
    assert cli_main(argv) == 1
    assert "Unknown zoo name 'i3d-r18'. Known names: i3d-inception-kinetics400" in capsys.readouterr().err


def test_bad_set_syntax(small_checkpoint, tmp_path, capsys):
    path, _ = small_checkpoint
    assert convert(path, tmp_path / "out", "--set", "depth") == 1
    assert "--set expects key=value, got 'depth'" in capsys.readouterr().err


# --- 2D -> 3D inflation (mmaction2 ResNet3d.inflate_weights) ------------------------------------------------


def test_inflation_matches_mmaction2_fixture():
    state_2d = torch.load(FIXTURES / "inflate_r50_2d.pth", weights_only=True)
    expected_3d = torch.load(FIXTURES / "inflate_r50_3d.pth", weights_only=True)
    model = I3DModel(I3DConfig(base_channels=4))
    report = inflate_2d_weights(model, state_2d)
    assert report.not_loaded == []
    assert all(k.startswith("fc.") for k in (s.split(" ")[0] for s in report.skipped))
    ours = model.state_dict()
    for key, tensor in expected_3d.items():
        ours_key = mmaction_key_to_hf("backbone." + key).removeprefix("i3d.")
        if key.endswith("num_batches_tracked"):
            continue
        torch.testing.assert_close(ours[ours_key], tensor, rtol=0, atol=0, msg=key)


def test_inflation_from_torchvision_and_transformers_resnets():
    import torchvision
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    resnet2d = torchvision.models.resnet50(weights=None)
    model = I3DModel(I3DConfig())
    report = inflate_2d_weights(model, resnet2d)
    assert report.not_loaded == [] and sorted(report.skipped) == [
        "fc.bias (no 3D counterpart)",
        "fc.weight (no 3D counterpart)",
    ]
    w2d, w3d = resnet2d.conv1.weight, model.stem.conv.conv.weight
    torch.testing.assert_close(w3d, w2d.unsqueeze(2).expand_as(w3d) / 5)  # (5,7,7) stem: / kT
    w2d, w3d = resnet2d.layer3[2].conv2.weight, model.stages[2].layers[2].conv2.conv.weight
    torch.testing.assert_close(w3d, w2d.unsqueeze(2))  # (1,3,3): / 1
    torch.testing.assert_close(
        model.stages[0].layers[0].conv1.conv.weight[:, :, 1], resnet2d.layer1[0].conv1.weight / 3
    )
    torch.testing.assert_close(model.stem.conv.norm.running_var, resnet2d.bn1.running_var)

    hf_resnet = ResNetModel(
        ResNetConfig(embedding_size=8, hidden_sizes=[32, 64, 128, 256], depths=[3, 4, 6, 3])
    )
    small = I3DModel(I3DConfig(base_channels=8))
    report = inflate_2d_weights(small, hf_resnet)
    assert report.not_loaded == [] and report.skipped == []
    torch.testing.assert_close(
        small.stages[3].layers[0].shortcut.conv.weight,
        hf_resnet.encoder.stages[3].layers[0].shortcut.convolution.weight.unsqueeze(2),
    )
    assert map_2d_key("resnet.encoder.stages.1.layers.0.layer.2.normalization.bias") == (
        "stages.1.layers.0.conv3.norm.bias"
    )


# --- non-local blocks and mmaction2 1.x checkpoints (issue 20) ---------------------------------------------------

NL_SUMMARY = json.loads((FIXTURES / "non_local_cases.json").read_text())
NL_CASES = NL_SUMMARY["cases"]
NL_REFERENCE = np.load(FIXTURES / "non_local_reference.npz")
NL_PRESET = {  # the zoo entry each fixture's non_local_cfg comes from (the defaults case: any non-local preset)
    "nl_dot_product": "i3d-r50-nl-dot-product-kinetics400",
    "nl_embedded_gaussian": "i3d-r50-nl-embedded-gaussian-kinetics400",
    "nl_gaussian": "i3d-r50-nl-gaussian-kinetics400",
    "nl_defaults_r18": "i3d-r50-nl-dot-product-kinetics400",
}


def non_local_argv(case_name: str, output: Path) -> list[str]:
    case = NL_CASES[case_name]
    backbone, head = case["backbone"], case["cls_head"]
    argv = ["convert", "mmaction", str(FIXTURES / case["checkpoint"]), "--preset", NL_PRESET[case_name]]
    argv += ["--output", str(output)]
    values = {
        "depth": backbone["depth"],
        "base_channels": backbone["base_channels"],
        "inflate": backbone["inflate"],
        "num_labels": head["num_classes"],
    }
    if case_name == "nl_defaults_r18":  # not a preset's map/cfg: mmcv's defaults on a depth-18 network
        values.update(non_local=backbone["non_local"], non_local_cfg=backbone["non_local_cfg"])
    for key, value in values.items():
        argv += ["--set", f"{key}={value!r}"]
    return argv


@pytest.mark.parametrize("case_name", sorted(NL_CASES))
def test_non_local_checkpoint_matches_mmaction2_logits(case_name, tmp_path):
    """mmaction2 1.2.0 ``ResNet3d`` + ``NonLocal3d`` + ``I3DHead`` (24 frames: T=3 in layers 2-4) against ours."""
    case = NL_CASES[case_name]
    assert cli_main(non_local_argv(case_name, tmp_path / "out")) == 0
    model = I3DForVideoClassification.from_pretrained(tmp_path / "out").eval()
    assert model.config.non_local_cfg["mode"] == case["backbone"]["non_local_cfg"].get(
        "mode", "embedded_gaussian"
    )
    x = torch.from_numpy(NL_REFERENCE["input"].astype(np.float32)).permute(0, 2, 1, 3, 4)
    with torch.inference_mode():
        out = model(x, output_hidden_states=True)
        out64 = model.double()(x.double(), output_hidden_states=True)
    # float64 on both sides: the same function to ~1e-12
    assert (out64.logits - torch.from_numpy(NL_REFERENCE[f"{case_name}_logits64"])).abs().max() <= 1e-9
    features64 = torch.from_numpy(NL_REFERENCE[f"{case_name}_features64"])
    assert (out64.hidden_states[-1] - features64).abs().max() <= 1e-9
    # float32: within 1e-4, or within the float32 rounding of mmaction2's own forward where five non-local blocks
    # in a row amplify it beyond that (the embedded-gaussian fixture; its float32-vs-float64 gap is in the json)
    tolerance = max(1e-4, 2 * case["fp32_vs_fp64_logits_max_abs_diff"])
    assert (out.logits - torch.from_numpy(NL_REFERENCE[f"{case_name}_logits"])).abs().max() <= tolerance


def test_non_local_keys_map_both_sub_sampled_and_plain():
    for case_name, case in NL_CASES.items():
        state = torch.load(FIXTURES / case["checkpoint"], weights_only=True)["state_dict"]
        backbone = case["backbone"]
        config = I3DConfig(
            depth=backbone["depth"],
            base_channels=backbone["base_channels"],
            inflate=backbone["inflate"],
            non_local=backbone["non_local"],
            non_local_cfg=backbone["non_local_cfg"],
            num_labels=10,
        )
        mapped = {mmaction_key_to_hf(k) for k in state}
        assert None not in mapped and len(mapped) == len(state) == case["num_state_dict_entries"], case_name
        with torch.device("meta"):
            assert mapped == set(I3DForVideoClassification(config).state_dict()), case_name
    assert mmaction_key_to_hf("backbone.layer2.1.non_local_block.phi.0.conv.bias") == (
        "i3d.stages.1.layers.1.non_local.phi.bias"
    )
    assert mmaction_key_to_hf("backbone.layer3.5.non_local_block.conv_out.bn.running_mean") == (
        "i3d.stages.2.layers.5.non_local.norm.running_mean"
    )


def test_non_local_presets_have_the_published_sizes():
    """The three 1.x non-local entries build the networks of mmaction2 1.2.0 (parameter counts of full-size models
    built by mmaction2 in the fixture script; README: 35.4M / 35.4M / 31.7M) and their GFLOPs are counted."""
    from hf_i3d.flops import count_gflops, zoo_view_shape
    from hf_i3d.zoo import get_entry

    facts = NL_SUMMARY["full_size_facts"]
    for mode in ("dot_product", "embedded_gaussian", "gaussian"):
        entry = get_entry(
            f"i3d_imagenet-pretrained-r50-nl-{mode.replace('_', '-')}_8xb8-32x2x1-100e_kinetics400-rgb"
        )
        with torch.device("meta"):
            model = I3DForVideoClassification(I3DConfig(**entry.config, num_labels=400))
        assert sum(p.numel() for p in model.parameters()) == facts[mode]["num_parameters"] == entry.params
        assert len(model.state_dict()) == facts[mode]["num_state_dict_entries"]
        assert round(count_gflops(model, zoo_view_shape(entry)), 2) == entry.gflops
        assert entry.checkpoint_url.startswith(
            "https://download.openmmlab.com/mmaction/v1.0/recognition/i3d/"
        )


def test_1x_checkpoint_with_data_preprocessor_and_mmengine_meta(tmp_path):
    """An mmengine checkpoint: ``data_preprocessor.*`` buffers beside the weights (dropped) and mmengine objects in
    ``meta`` and beside it (never run, replaced by stand-ins)."""
    import sys

    case_name = "nl_gaussian"
    state = torch.load(FIXTURES / NL_CASES[case_name]["checkpoint"], weights_only=True)["state_dict"]
    state["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1, 1)
    state["data_preprocessor.std"] = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1, 1)
    hub, module_names = fake_mmengine_object()
    meta = {"epoch": 100, "iter": 250_000, "mmengine_version": "0.10.7", "hook_msgs": hub}
    torch.save({"meta": meta, "state_dict": state, "message_hub": hub}, tmp_path / "v1.pth")
    for name in module_names:
        del sys.modules[name]
    argv = non_local_argv(case_name, tmp_path / "out")
    argv[2] = str(tmp_path / "v1.pth")
    assert cli_main(argv) == 0
    model = I3DForVideoClassification.from_pretrained(tmp_path / "out").eval()
    x = torch.from_numpy(NL_REFERENCE["input"].astype(np.float32)).permute(0, 2, 1, 3, 4)
    with torch.inference_mode():
        logits = model.double()(x.double()).logits
    assert (logits - torch.from_numpy(NL_REFERENCE[f"{case_name}_logits64"])).abs().max() <= 1e-9


def test_non_local_checkpoint_into_a_plain_preset_names_the_blocks(tmp_path, capsys):
    case = NL_CASES["nl_dot_product"]
    out = tmp_path / "out"
    argv = ["convert", "mmaction", str(FIXTURES / case["checkpoint"]), "--preset", "i3d-r50-1x-kinetics400"]
    argv += ["--output", str(out), "--set", "base_channels=4", "--set", "num_labels=10"]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert "unexpected key(s): backbone.layer2.1.non_local_block.g.0.conv.weight" in err
    assert not out.exists()
