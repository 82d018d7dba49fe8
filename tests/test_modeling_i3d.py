"""I3DConfig / I3DModel / I3DForVideoClassification: sizes, shapes and train-time behaviour of mmaction2's ResNet3d."""

import json

import pytest
import torch
import torch.nn.functional as F
from _isolation import run_without_hf_i3d
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from hf_i3d import I3DConfig, I3DForVideoClassification, I3DModel
from hf_i3d.zoo import ZOO, get_entry


def tiny_config(**kwargs) -> I3DConfig:
    defaults = dict(base_channels=4, num_labels=5, dropout_prob=0.0)
    defaults.update(kwargs)
    return I3DConfig(**defaults)


def count_parameters(config: I3DConfig) -> int:
    with torch.device("meta"):
        model = I3DForVideoClassification(config)
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_mmaction2_metafile():
    # mmaction2 metafile.yml: I3D-R50 (400 classes) Parameters 28043472; R34 all-inflated counted tensor by tensor.
    assert count_parameters(I3DConfig(num_labels=400)) == 28_043_472
    assert count_parameters(I3DConfig(depth=34, inflate=1, num_labels=400)) == 63_699_920
    assert count_parameters(
        I3DConfig(depth=50, inflate=1, conv1_stride_t=1, pool1_stride_t=1, num_labels=400)
    ) == (33_024_208)


def test_zoo_param_counts_match_the_built_models():
    for entry in ZOO.values():
        if entry.model_type != "i3d":
            continue
        assert count_parameters(I3DConfig(**entry.config, num_labels=400)) == entry.params, entry.name


def test_state_dict_sizes_match_mmaction2():
    # docs/mmaction2-port.md §3: 320 entries for R50 (53 convs + 53 BN x 5 + fc), 218 for R34.
    with torch.device("meta"):
        assert len(I3DForVideoClassification(I3DConfig(num_labels=400)).state_dict()) == 320
        assert (
            len(I3DForVideoClassification(I3DConfig(depth=34, inflate=1, num_labels=400)).state_dict()) == 218
        )


def test_r50_feature_map_for_a_32x224x224_clip():
    torch.manual_seed(0)
    model = I3DModel(I3DConfig()).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 32, 3, 224, 224), output_hidden_states=True)
    assert out.last_hidden_state.shape == (1, 2048, 4, 7, 7)
    assert out.pooler_output.shape == (1, 2048)
    # stem, then layer1..layer4 (layer1 before pool2), as in docs/mmaction2-port.md §3
    shapes = [tuple(h.shape[1:]) for h in out.hidden_states]
    assert shapes == [(64, 8, 56, 56), (256, 8, 56, 56), (512, 4, 28, 28), (1024, 4, 14, 14), (2048, 4, 7, 7)]
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(dim=(2, 3, 4)))


@pytest.mark.parametrize(
    "kwargs, channels",
    [({}, 2048), ({"depth": 34, "inflate": 1}, 512), ({"inflate_style": "3x3x3"}, 2048)],
)
def test_mmaction2_unit_test_shapes(kwargs, channels):
    # mmaction2 tests/models/backbones/test_resnet3d.py: input (1, 3, 6, 64, 64) -> (1, C, 1, 2, 2).
    model = I3DModel(I3DConfig(**kwargs)).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 6, 3, 64, 64))
    assert out.last_hidden_state.shape == (1, channels, 1, 2, 2)


def test_inflate_style_sets_the_temporal_kernel():
    r50 = I3DModel(tiny_config())
    assert r50.stages[0].layers[0].conv1.conv.kernel_size == (3, 1, 1)
    assert r50.stages[0].layers[0].conv2.conv.kernel_size == (1, 3, 3)
    assert r50.stages[1].layers[1].conv1.conv.kernel_size == (1, 1, 1)  # not inflated in the I3D map
    style333 = I3DModel(tiny_config(inflate_style="3x3x3"))
    assert style333.stages[0].layers[0].conv1.conv.kernel_size == (1, 1, 1)
    assert style333.stages[0].layers[0].conv2.conv.kernel_size == (3, 3, 3)
    r34 = I3DModel(tiny_config(depth=34, inflate=1))
    assert r34.stages[1].layers[0].conv1.conv.kernel_size == (3, 3, 3)
    assert r34.stages[1].layers[0].conv1.conv.stride == (1, 2, 2)
    assert r34.stages[1].layers[0].conv2.conv.kernel_size == (3, 3, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 42}, "I3DConfig.depth must be one of [18, 34, 50, 101, 152], got 42"),
        (
            {"inflate_style": "3x3x1"},
            "I3DConfig.inflate_style must be one of ('3x1x1', '3x3x3'), got '3x3x1'",
        ),
        ({"num_stages": 5}, "I3DConfig.num_stages must be between 1 and 4, got 5"),
        (
            {"spatial_strides": (1, 2)},
            "I3DConfig.spatial_strides needs one entry per stage (4), got 2: [1, 2]",
        ),
        (
            {"depth": 101, "inflate": ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))},
            "I3DConfig.inflate[2] has 6 entries but stage 3 of a depth-101 ResNet3d has 23 blocks",
        ),
    ],
)
def test_config_validation_messages(kwargs, message):
    with pytest.raises(ValueError) as error:
        I3DConfig(**kwargs)
    assert message in str(error.value)


def test_config_json_round_trip(tmp_path):
    config = tiny_config(depth=34, inflate=(1, 0, (1, 0, 1, 0, 1, 0), 1), zoo_name="i3d-r34-kinetics400")
    config.save_pretrained(tmp_path)
    loaded = I3DConfig.from_pretrained(tmp_path)
    assert loaded.inflate == [[1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0, 1, 0], [1, 1, 1]]
    assert loaded.to_dict() == config.to_dict()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "i3d"


def test_bad_pixel_values_layout_is_explained():
    model = I3DForVideoClassification(tiny_config()).eval()
    with pytest.raises(ValueError, match=r"layout is \(batch, frames, channels, height, width\)"):
        model(torch.randn(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match=r"got \(1, 8, 32, 32\)"):
        model(torch.randn(1, 8, 32, 32))


@pytest.mark.parametrize("mode", ["prob", "score"])
def test_multi_view_input_merges_view_logits(mode):
    torch.manual_seed(0)
    model = I3DForVideoClassification(tiny_config(average_clips=mode)).eval()
    views = torch.randn(2, 3, 8, 3, 32, 32)
    with torch.inference_mode():
        merged = model(views).logits
        per_view = model(views.flatten(0, 1)).logits.view(2, 3, -1)
    if mode == "prob":  # the pipeline's softmax of the merged logits is mmaction2's averaged probability
        torch.testing.assert_close(merged.softmax(-1), per_view.softmax(-1).mean(1))
    else:
        torch.testing.assert_close(merged, per_view.mean(1))


def test_single_and_multi_label_losses():
    torch.manual_seed(0)
    model = I3DForVideoClassification(tiny_config()).eval()
    pixel_values = torch.randn(2, 8, 3, 32, 32)
    labels = torch.tensor([1, 3])
    out = model(pixel_values, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    multi_model = I3DForVideoClassification(tiny_config(problem_type="multi_label_classification")).eval()
    multi_model.load_state_dict(model.state_dict())
    targets = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 1]])
    out = multi_model(pixel_values, labels=targets)
    torch.testing.assert_close(
        out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, targets)
    )


def test_init_follows_mmaction2():
    torch.manual_seed(0)
    model = I3DForVideoClassification(tiny_config(num_labels=400, base_channels=8))
    assert model.classifier.bias.abs().max() == 0
    assert abs(model.classifier.weight.std().item() - 0.01) < 1e-3  # I3DHead init_std
    assert torch.all(model.i3d.stem.conv.norm.weight == 1)
    zero = I3DModel(tiny_config(zero_init_residual=True))
    for stage in zero.stages:
        for block in stage.layers:
            assert torch.all(block.conv3.norm.weight == 0) and torch.all(block.conv3.norm.bias == 0)
            assert torch.all(block.conv1.norm.weight == 1)


def test_norm_eval_and_frozen_stages_behave_as_mmaction2():
    model = I3DModel(tiny_config(norm_eval=True)).train()
    assert all(not m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d))
    model = I3DModel(tiny_config(norm_eval=False)).train()
    assert all(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d))

    model = I3DModel(tiny_config(frozen_stages=1)).train()
    frozen = [model.stem, model.stages[0]]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert model.stages[1].training
    assert all(p.requires_grad for p in model.stages[1].parameters())


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = I3DForVideoClassification(tiny_config())
    pixel_values, labels = torch.randn(2, 8, 3, 32, 32), torch.tensor([0, 4])
    model.train()
    model(pixel_values, labels=labels).loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    model(pixel_values, labels=labels).loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, reference[name], msg=name)


def test_save_and_load_round_trip_and_auto_classes(tmp_path):
    torch.manual_seed(0)
    model = I3DForVideoClassification(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    pixel_values = torch.randn(1, 8, 3, 32, 32)
    for loaded in (
        I3DForVideoClassification.from_pretrained(tmp_path),
        AutoModelForVideoClassification.from_pretrained(tmp_path),
    ):
        assert type(loaded) is I3DForVideoClassification
        loaded_state = loaded.state_dict()
        assert all(torch.equal(loaded_state[k], v) for k, v in model.state_dict().items())  # bit for bit
        with torch.inference_mode():
            # identical weights; oneDNN may pick another kernel for differently aligned buffers (~1e-7)
            torch.testing.assert_close(
                loaded.eval()(pixel_values).logits, model(pixel_values).logits, rtol=0, atol=1e-6
            )
    assert isinstance(AutoConfig.from_pretrained(tmp_path), I3DConfig)
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is I3DModel
    torch.testing.assert_close(base.stem.conv.conv.weight, model.i3d.stem.conv.conv.weight)


def test_trust_remote_code_loading_without_hf_i3d(tmp_path):
    torch.manual_seed(0)
    model = I3DForVideoClassification(tiny_config()).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForVideoClassification"] == "modeling_i3d.I3DForVideoClassification"
    assert saved["auto_map"]["AutoModel"] == "modeling_i3d.I3DModel"
    assert (folder / "modeling_i3d.py").is_file() and (folder / "configuration_i3d.py").is_file()
    pixel_values = torch.randn(1, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.save(pixel_values, tmp_path / "x.pt")
    with torch.inference_mode():
        expected = model(pixel_values).logits
    torch.save(expected, tmp_path / "expected.pt")
    script = f"""
        import torch
        from transformers import AutoModel, AutoModelForVideoClassification
        model = AutoModelForVideoClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.inference_mode():
            logits = model(torch.load({str(tmp_path / "x.pt")!r})).logits
        torch.testing.assert_close(logits, torch.load({str(tmp_path / "expected.pt")!r}), rtol=0, atol=1e-6)
        base = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(base).__name__ == "I3DModel"
        print("remote-ok")
        """
    result = run_without_hf_i3d(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-ok" in result.stdout


def test_zoo_entries_build_models():
    for name in ("i3d-r50-kinetics400", "i3d_r50_32x2x1_100e_kinetics400_rgb", "I3D-R34-Kinetics400"):
        entry = get_entry(name)
        assert entry.model_type == "i3d"
    with pytest.raises(KeyError, match="Unknown zoo name 'i3d-r18'"):
        get_entry("i3d-r18")


def test_temporal_trim_reads_frames_not_height_on_unbatched_input():
    # nn.Conv3d takes unbatched (C, T, H, W) input; there dim 2 is the height, and a one-pixel-high input with
    # several frames must keep every temporal tap.
    from hf_i3d.modeling_i3d import I3DConv3d

    torch.manual_seed(0)
    conv = I3DConv3d(2, 3, (3, 1, 1), padding=(1, 0, 0), bias=False)
    unbatched = torch.randn(2, 4, 1, 5)
    expected = F.conv3d(unbatched.unsqueeze(0), conv.weight, None, 1, (1, 0, 0))[0]
    torch.testing.assert_close(conv(unbatched), expected)


@pytest.mark.parametrize(
    "depth, expected",
    [
        (18, [[1, 1], [1, 1], [1, 1], [1, 1]]),
        (34, [[1] * 3, [1] * 4, [1] * 6, [1] * 3]),
        (50, [[1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]]),  # the published I3D-R50 map
        (101, [[1] * 3, [1] * 4, [1] * 23, [1] * 3]),
        (152, [[1] * 3, [1] * 8, [1] * 36, [1] * 3]),
    ],
)
def test_every_documented_depth_has_a_default_inflation(depth, expected):
    config = I3DConfig(depth=depth)
    assert config.inflate == expected
    assert [len(stage) for stage in config.inflate] == config.stage_blocks


def test_mmaction_head_names_of_old_configs_still_load(tmp_path):
    """Configs saved before 0.2 used mmaction2's ``dropout_ratio`` / ``init_std``; they load as the new names."""
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "i3d", "depth": 18, "dropout_ratio": 0.3, "init_std": 0.05})
    )
    config = I3DConfig.from_pretrained(tmp_path)
    assert (config.dropout_prob, config.initializer_range) == (0.3, 0.05)
    saved = config.to_dict()
    assert "dropout_ratio" not in saved and "init_std" not in saved
