"""hf_i3d.inference.optimize_for_inference: the fast eval-only copy gives the plain model's outputs.

The ResNet3d cases use the mmaction2 1.2.0 parity fixtures (random BN statistics far from identity, so a folding
mistake shows as an error of 1e-2 or more). Float32 logits must agree within 1e-4, relative to the logit scale when
that exceeds 1 (``within_1e4``): these random networks amplify float32 rounding (feature maps up to 734, BN scales up
to 13), so that mmaction2's own float32 logits are up to 9.6e-5 away from float64 on them (cases.json), and the
rounding of the folded weights alone moves our logits by up to 1.6e-4 on ``r50_3x3x3`` (logits up to 4). On the
full-size I3D-R50 with calibrated statistics the fast path is within 3.2e-5 of the plain one (benchmarks/RESULTS.md).
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hf_i3d import (
    I3DConfig,
    I3DForVideoClassification,
    InceptionI3DConfig,
    InceptionI3DForVideoClassification,
    inference,
)
from hf_i3d.convert.mmaction import convert_mmaction_state_dict, load_mmaction_checkpoint
from hf_i3d.inference import (
    FoldedConv3d,
    FrameMaxPool3d,
    FusedResidualBlock,
    SameMaxPool3d,
    optimize_for_inference,
    plain_forward,
    winograd_conv3d,
    winograd_weight,
)
from hf_i3d.modeling_i3d import I3DConv3d
from hf_i3d.modeling_inception_i3d import InceptionI3DMaxPool3d, InceptionI3DUnit3D

FIXTURES = Path(__file__).parent / "fixtures" / "mmaction"
CASES = json.loads((FIXTURES / "cases.json").read_text())["cases"]
REFERENCE = np.load(FIXTURES / "reference.npz")
PIXEL_VALUES = torch.from_numpy(REFERENCE["input"]).permute(0, 2, 1, 3, 4).contiguous()  # (B, T, C, H, W)
EVAL_ONLY = "this model was made by hf_i3d.inference.optimize_for_inference"


def fixture_model(name: str) -> I3DForVideoClassification:
    """The mmaction2 fixture ``name`` converted with our converter (as tests/test_convert_mmaction.py checks)."""
    backbone, head = CASES[name]["backbone"], CASES[name]["cls_head"]
    config = I3DConfig(
        depth=backbone["depth"],
        base_channels=backbone["base_channels"],
        inflate=backbone["inflate"],
        inflate_style=backbone["inflate_style"],
        conv1_kernel=backbone["conv1_kernel"],
        conv1_stride_t=backbone["conv1_stride_t"],
        pool1_stride_t=backbone["pool1_stride_t"],
        with_pool2=backbone["with_pool2"],
        num_labels=head["num_classes"],
        num_frames=PIXEL_VALUES.shape[1],
        image_size=PIXEL_VALUES.shape[-1],
    )
    model = I3DForVideoClassification(config)
    state_dict = load_mmaction_checkpoint(FIXTURES / CASES[name]["checkpoint"])
    model.load_state_dict(convert_mmaction_state_dict(state_dict, config), strict=True)
    return model.eval()


def within_1e4(fast: torch.Tensor, plain: torch.Tensor) -> bool:
    return float((fast - plain).abs().max()) <= 1e-4 * max(1.0, float(plain.abs().max()))


def run(model: nn.Module, pixel_values: torch.Tensor = PIXEL_VALUES):
    """``model``'s own computation: the plain one for a model, the fused one for an optimize_for_inference copy."""
    with torch.inference_mode(), plain_forward():
        return model(pixel_values, output_hidden_states=True)


@pytest.mark.parametrize("name", sorted(CASES))  # r34 (basic blocks), r50, r50_3x3x3, r50_heavy
def test_fast_path_gives_the_plain_logits(name):
    model = fixture_model(name)
    fast = optimize_for_inference(model)
    plain_out, fast_out = run(model), run(fast)
    assert within_1e4(fast_out.logits, plain_out.logits)
    # and so both match mmaction2's own logits as closely as the plain port does (test_convert_mmaction.py)
    assert (fast_out.logits - torch.from_numpy(REFERENCE[f"{name}_logits"])).abs().max() <= 1e-3
    # feature maps: float32 rounding alone moves them by up to 4.6e-5 of their largest value (cases.json, r50)
    for plain_h, fast_h in zip(plain_out.hidden_states, fast_out.hidden_states, strict=True):
        assert fast_h.shape == plain_h.shape
        assert (fast_h - plain_h).abs().max() <= 1e-4 * plain_h.abs().max()
    # every conv is folded (none left with a BatchNorm), and every residual block is fused
    assert not any(isinstance(m, nn.BatchNorm3d) for m in fast.modules())
    assert not any(type(m) is nn.Conv3d for m in fast.modules())
    assert sum(isinstance(m, FusedResidualBlock) for m in fast.modules()) == sum(model.config.stage_blocks)


@pytest.mark.parametrize(
    "options",
    [dict(fuse=False), dict(channels_last=False), dict(fuse=False, channels_last=False)],
    ids=["plain-convs", "contiguous", "plain-convs-contiguous"],
)
def test_every_option_combination_gives_the_plain_logits(options):
    model = fixture_model("r50")
    fast = optimize_for_inference(model, **options)
    assert within_1e4(run(fast).logits, run(model).logits)
    if not options.get("fuse", True):
        assert not any(isinstance(m, FusedResidualBlock) for m in fast.modules())


def test_folding_arithmetic_is_exact():
    # w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps): on one layer, to float64 rounding.
    torch.manual_seed(0)
    layer = nn.Sequential(
        nn.Conv3d(3, 5, (3, 3, 3), padding=1, bias=False), nn.BatchNorm3d(5, eps=1e-3)
    ).double()
    with torch.no_grad():
        layer[1].weight.uniform_(0.5, 2.0)
        layer[1].bias.normal_()
        layer[1].running_mean.normal_()
        layer[1].running_var.uniform_(0.1, 3.0)
    layer.eval()
    fast = optimize_for_inference(layer, example_shape=(1, 3, 4, 6, 6))
    assert isinstance(fast[0], FoldedConv3d) and isinstance(fast[1], nn.Identity)
    scale = layer[1].weight / (layer[1].running_var + 1e-3).sqrt()
    torch.testing.assert_close(
        fast[0].weight, layer[0].weight * scale.view(-1, 1, 1, 1, 1), rtol=1e-15, atol=0
    )
    torch.testing.assert_close(
        fast[0].bias, layer[1].bias - layer[1].running_mean * scale, rtol=1e-15, atol=1e-15
    )
    x = torch.randn(2, 3, 4, 6, 6, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), layer(x), rtol=1e-12, atol=1e-12)


class ConvReadTwice(nn.Module):
    """conv -> bn, but the conv output is also used directly: folding the BN into the conv would change it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 1, bias=False)
        self.bn = nn.BatchNorm3d(4)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        return self.relu(self.bn(y)) + y


def test_a_conv_whose_output_is_read_elsewhere_is_not_folded():
    torch.manual_seed(0)
    model = ConvReadTwice().eval()
    with torch.no_grad():
        model.bn.running_mean.normal_()
        model.bn.running_var.uniform_(0.5, 2.0)
    fast = optimize_for_inference(model, example_shape=(1, 2, 3, 4, 4))
    assert isinstance(fast.bn, nn.BatchNorm3d)  # left alone
    assert isinstance(fast.conv, FoldedConv3d) and not fast.conv.relu  # a plain conv on the fast kernel
    x = torch.randn(1, 2, 3, 4, 4)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-6)


class ConvThenTemporalPool(nn.Module):
    """conv -> bn -> relu -> a (1, 3, 3) max-pool with temporal stride 2; with ``also_read`` the pre-pool activations
    are used again (every frame), so the frames the pool skips are not dead."""

    def __init__(self, also_read: bool = False, pool_kernel_t: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, (3, 3, 3), stride=(2, 2, 2), padding=1, bias=False)
        self.bn = nn.BatchNorm3d(4)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((pool_kernel_t, 3, 3), stride=(2, 2, 2), padding=(0, 1, 1))
        self.also_read = also_read

    def forward(self, x):
        y = self.relu(self.bn(self.conv(x)))
        pooled = self.pool(y)
        return (pooled, y.mean()) if self.also_read else pooled


@pytest.mark.parametrize("frames", [5, 8, 9, 16])
def test_frames_a_temporal_pool_skips_are_not_computed(frames):
    """A conv feeding a (1, 3, 3) pool with temporal stride 2 (the I3D-R50 stem, ``pool1_stride_t=2``): the fast
    copy's convolution takes temporal stride 4 and the pool stride 1 in time, computing only the frames the pool keeps
    (half the stem's work), with the plain outputs."""
    torch.manual_seed(frames)
    model = ConvThenTemporalPool().eval()
    with torch.no_grad():
        model.bn.running_mean.normal_()
        model.bn.running_var.uniform_(0.5, 2.0)
    shape = (2, 3, frames, 12, 12)
    fast = optimize_for_inference(model, example_shape=shape)
    assert fast.conv.stride == [4, 2, 2] and fast.pool.stride == (1, 2, 2)
    x = torch.randn(shape)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-6)


def test_the_r50_stem_computes_only_the_frames_its_pool_keeps():
    model = fixture_model("r50")
    fast = optimize_for_inference(model)
    assert fast.i3d.stem.conv.conv.stride == [4, 2, 2] and fast.i3d.stem.pool.stride == (1, 2, 2)
    assert within_1e4(run(fast).logits, run(model).logits)


@pytest.mark.parametrize("case", ["also-read", "pool-reads-3-frames", "heavy-stem"])
def test_frames_something_reads_are_still_computed(case):
    torch.manual_seed(0)
    if case == "heavy-stem":  # pool1_stride_t=1: nothing is pooled away
        model = fixture_model("r50_heavy")
        fast = optimize_for_inference(model)
        assert fast.i3d.stem.conv.conv.stride == [1, 2, 2] and fast.i3d.stem.pool.stride == (1, 2, 2)
        return
    model = ConvThenTemporalPool(also_read=case == "also-read", pool_kernel_t=1 if case == "also-read" else 3).eval()
    shape = (1, 3, 8, 12, 12)
    fast = optimize_for_inference(model, example_shape=shape)
    assert fast.conv.stride == [2, 2, 2] and fast.pool.stride == (2, 2, 2)
    x = torch.randn(shape)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-6)


def test_inception_fast_path_gives_the_plain_logits():
    # A narrow Inception I3D (every branch 8 wide) with random BN offsets and statistics; its BatchNorm has no
    # scale (weight None), which the fold treats as 1.
    torch.manual_seed(0)
    narrow = {name: [8, 8, 8, 8, 8, 8] for name in InceptionI3DConfig().mixed_channels}
    config = InceptionI3DConfig(num_labels=7, mixed_channels=narrow, num_frames=9, image_size=193)
    model = InceptionI3DForVideoClassification(config).eval()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert norms and all(norm.weight is None for norm in norms)
    with torch.no_grad():
        for norm in norms:
            norm.bias.normal_(0.0, 0.1)
            norm.running_mean.normal_(0.0, 0.1)
            norm.running_var.uniform_(0.5, 1.5)
        model.classifier.weight.normal_(0.0, 0.5)
    pixel_values = torch.randn(1, 9, 3, 193, 193, generator=torch.Generator().manual_seed(1))
    fast = optimize_for_inference(model)
    plain_out, fast_out = run(model, pixel_values), run(fast, pixel_values)
    assert plain_out.logits.abs().max() > 0.1  # not a degenerate comparison
    assert within_1e4(fast_out.logits, plain_out.logits)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in fast.modules())
    folded = [m for m in fast.modules() if isinstance(m, FoldedConv3d)]
    assert len(folded) == len(norms) + 1  # + the logits conv, which has a bias and no BatchNorm
    assert sum(m.relu for m in folded) == len(norms)  # every Unit3D ReLU runs inside its conv
    # stride-1 convs pad inside the kernel, max-pools pad implicitly; only the strided stem conv keeps F.pad
    assert sum(isinstance(m, InceptionI3DUnit3D) for m in fast.modules()) == 1
    assert not any(isinstance(m, InceptionI3DMaxPool3d) for m in fast.modules())


def test_bfloat16_stays_close_and_returns_float32(capsys):
    model = fixture_model("r50")
    fast = optimize_for_inference(model, dtype=torch.bfloat16)
    plain, low = run(model).logits, run(fast).logits
    assert low.dtype == torch.float32
    error = float((low - plain).abs().max() / plain.abs().max())
    with capsys.disabled():
        print(f"\nbfloat16 fast path, fixture r50: max |logit error| / max |logit| = {error:.2e}")
    # reported, not a tight bound: bfloat16 keeps ~3 significant digits, and this fixture's activations reach 167
    # (0.2 here; 0.7% on the full-size R50 of benchmarks/)
    assert error < 0.5
    assert torch.equal(low.argmax(-1), plain.argmax(-1))


def test_multi_view_input_and_a_second_input_shape():
    model = fixture_model("r50")
    fast = optimize_for_inference(model)
    views = torch.stack([PIXEL_VALUES, PIXEL_VALUES.flip(-1)], dim=1)  # (B, V, T, C, H, W)
    assert within_1e4(run(fast, views).logits, run(model, views).logits)
    # the oneDNN weights were packed for the first input shape; another shape still computes the same
    other = PIXEL_VALUES[:1, :, :, :48, :40]
    assert within_1e4(run(fast, other).logits, run(model, other).logits)


def test_the_fast_copy_refuses_training_and_saving(tmp_path):
    model = fixture_model("r34")
    fast = optimize_for_inference(model)
    with pytest.raises(RuntimeError, match=EVAL_ONLY):
        fast.train()
    with pytest.raises(RuntimeError, match=EVAL_ONLY):
        fast.i3d.stages[0].train()  # a submodule holding folded layers
    with pytest.raises(RuntimeError, match=EVAL_ONLY):
        fast.save_pretrained(tmp_path)
    fast.eval()  # eval() is train(False): allowed
    assert not fast.training
    # the original model is untouched and still trains
    model.train()
    assert any(isinstance(m, nn.BatchNorm3d) and m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_bad_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be None, torch.float32 or torch.bfloat16"):
        optimize_for_inference(fixture_model("r34"), dtype=torch.float16)


def test_a_model_without_a_clip_size_needs_example_shape():
    with pytest.raises(ValueError, match="needs example_shape for a Sequential"):
        optimize_for_inference(nn.Sequential(nn.Conv3d(3, 4, 1)))


@pytest.mark.parametrize("size", [7, 8, 9, 14, 15, 28, 56, 112, 193, 224])
@pytest.mark.parametrize("kernel, stride", [(1, 1), (2, 2), (3, 1), (3, 2), (3, 3), (2, 1)])
def test_same_max_pool_without_a_padded_copy_is_exact(size, kernel, stride):
    # SameMaxPool3d (max_pool3d padding / ceil_mode, or the F.pad fallback) against InceptionI3DMaxPool3d (F.pad -inf)
    x = torch.randn(1, 2, 3, size, size + 1, generator=torch.Generator().manual_seed(size))
    shape = ((1, kernel, kernel), (1, stride, stride))
    torch.testing.assert_close(SameMaxPool3d(*shape)(x), InceptionI3DMaxPool3d(*shape)(x), rtol=0, atol=0)
    shape = ((kernel, kernel, 1), (stride, 1, stride))
    torch.testing.assert_close(SameMaxPool3d(*shape)(x), InceptionI3DMaxPool3d(*shape)(x), rtol=0, atol=0)


@pytest.mark.parametrize("frames", [1, 2, 3, 8, 9])
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("channels_last", [True, False])
def test_frame_max_pool_is_max_pool3d_exactly(frames, kernel, channels_last):
    # every element, NaN and -inf included, and the trailing frames of floor mode dropped
    x = torch.randn(2, 5, frames, 4, 3, generator=torch.Generator().manual_seed(frames))
    x[0, 1, 0, 2, 1], x[1, 4, -1, 0, 0], x[1, 2, 0, 1, 2] = float("nan"), float("-inf"), float("inf")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    if frames < kernel:  # no whole window: the same error as max_pool3d, not an empty tensor
        with pytest.raises(RuntimeError, match="too small"):
            nn.MaxPool3d((kernel, 1, 1), (kernel, 1, 1))(x)
        with pytest.raises(RuntimeError, match="too small"):
            FrameMaxPool3d(kernel)(x)
        return
    expected = nn.MaxPool3d((kernel, 1, 1), (kernel, 1, 1))(x)
    torch.testing.assert_close(FrameMaxPool3d(kernel)(x), expected, rtol=0, atol=0, equal_nan=True)


def test_the_r50_pool2_runs_as_frame_maxima():
    model = fixture_model("r50")
    fast = optimize_for_inference(model)
    assert isinstance(fast.i3d.pool2, FrameMaxPool3d) and fast.i3d.pool2.frames == 2
    assert within_1e4(run(fast).logits, run(model).logits)
    # a pool that also looks across pixels, or overlaps in time, stays max_pool3d
    fast = optimize_for_inference(
        nn.Sequential(nn.MaxPool3d((2, 2, 1)), nn.MaxPool3d((3, 1, 1), (2, 1, 1))),
        example_shape=(1, 2, 8, 4, 4),
    )
    assert all(type(pool) is nn.MaxPool3d for pool in fast)


@pytest.mark.slow
def test_compiled_fast_path_gives_the_plain_outputs():
    # compile=True folds the BatchNorms and hands plain convolutions to torch.compile (inductor with frozen
    # weights); a small conv -> BN -> ReLU -> conv -> BN stack keeps the compile short.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm3d(8),
        nn.ReLU(),
        nn.Conv3d(8, 4, 1, bias=False),
        nn.BatchNorm3d(4),
    )
    with torch.no_grad():
        for norm in (model[1], model[4]):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_()
            norm.running_mean.normal_()
            norm.running_var.uniform_(0.5, 1.5)
    model.eval()
    fast = optimize_for_inference(model, compile=True, example_shape=(1, 3, 4, 8, 8))
    folded = [m for m in fast.modules() if isinstance(m, FoldedConv3d)]
    assert len(folded) == 2 and not any(m.use_onednn for m in folded)  # inductor packs and fuses itself
    x = torch.randn(2, 3, 4, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kernel, padding", [((3, 1, 1), (1, 0, 0)), ((3, 3, 3), (1, 1, 1)), ((5, 1, 1), (2, 0, 0))]
)
def test_one_frame_convolutions_skip_the_taps_that_meet_padding(kernel, padding):
    # I3DConv3d (the model's conv, training included) and FoldedConv3d run a one-frame input with the centre slice of
    # the temporal kernel; outputs and weight gradients equal nn.Conv3d's (the other taps only ever see zeros).
    torch.manual_seed(0)
    reference = nn.Conv3d(8, 6, kernel, padding=padding, bias=False)
    trimmed = I3DConv3d(8, 6, kernel, padding=padding, bias=False)
    trimmed.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 1, 5, 5)
    torch.testing.assert_close(trimmed(x), reference(x), rtol=1e-5, atol=1e-6)
    reference(x).square().sum().backward()
    trimmed(x).square().sum().backward()
    torch.testing.assert_close(trimmed.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)
    assert trimmed.weight.grad[:, :, : kernel[0] // 2].abs().max() == 0
    folded = optimize_for_inference(nn.Sequential(reference).eval(), example_shape=(2, 8, 1, 5, 5))[0]
    assert isinstance(folded, FoldedConv3d)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), reference(x), rtol=1e-5, atol=1e-6)
        x3 = torch.randn(2, 8, 3, 5, 5)  # more frames: the whole kernel, packed separately
        torch.testing.assert_close(folded(x3), reference(x3), rtol=1e-5, atol=1e-5)


def test_eval_forward_without_grad_runs_the_fast_copy_with_no_extra_call():
    """What users call (``model.eval()`` + ``model(pixel_values)`` under no_grad / inference_mode, the pipeline,
    ``predict``) runs through a cached optimize_for_inference copy: the plain logits within 1e-4."""
    model = fixture_model("r50")
    plain = run(model)
    with torch.no_grad():
        served = model(PIXEL_VALUES, output_hidden_states=True)
    fast = inference._ACCELERATED[model][1]
    assert sum(isinstance(m, FusedResidualBlock) for m in fast.modules()) == sum(model.config.stage_blocks)
    assert within_1e4(served.logits, plain.logits)
    assert not torch.equal(served.logits, plain.logits)  # it really is the other computation
    with torch.no_grad():
        again = model(PIXEL_VALUES).logits
        features = model.i3d(PIXEL_VALUES).pooler_output  # the backbone alone is served too
    assert inference._ACCELERATED[model][1] is fast  # made once, reused
    torch.testing.assert_close(again, served.logits, rtol=0, atol=0)
    assert float((features - run(model.i3d).pooler_output).abs().max()) <= 1e-4 * float(features.abs().max())
    # the copy's own backbone is not optimised a second time
    assert fast.i3d not in inference._ACCELERATED


def test_train_mode_gradients_and_export_see_the_plain_computation():
    model = fixture_model("r50_heavy")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(PIXEL_VALUES)  # eval: served by the fast copy
    model.train()
    torch.manual_seed(0)
    train_logits = model(PIXEL_VALUES).logits
    reference = fixture_model("r50_heavy").train()
    torch.manual_seed(0)
    torch.testing.assert_close(train_logits, reference(PIXEL_VALUES).logits, rtol=0, atol=0)
    model.eval()
    for key, value in model.state_dict().items():  # train-mode BN statistics moved, nothing else changed
        if "running" not in key and "num_batches" not in key:
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    # eval with autograd on: plain computation, differentiable
    logits = model(PIXEL_VALUES).logits
    assert logits.requires_grad
    torch.testing.assert_close(logits.detach(), run(model).logits, rtol=0, atol=0)
    # torch.export under no_grad traces the plain model (no oneDNN pointwise kernels in the graph)
    with torch.no_grad():
        program = torch.export.export(model, (PIXEL_VALUES,))
    assert "mkldnn" not in str(program.graph)
    torch.testing.assert_close(program.module()(PIXEL_VALUES).logits, run(model).logits, rtol=1e-5, atol=1e-5)


def test_changed_weights_are_never_served_stale():
    model = fixture_model("r34")
    with torch.no_grad():
        model(PIXEL_VALUES)
    other = fixture_model("r34")
    with torch.no_grad():
        for param in other.parameters():
            param.mul_(0.9)
    model.load_state_dict(other.state_dict())  # in-place copy: same tensors, new versions
    with torch.no_grad():
        served = model(PIXEL_VALUES).logits
    assert within_1e4(served, run(other).logits)
    assert not within_1e4(served, run(fixture_model("r34")).logits)


def test_forward_hooks_see_the_plain_layers_run():
    """Feature extraction through hooks keeps working: a hooked model is not served by the fast copy."""
    model = fixture_model("r50")
    with torch.no_grad():
        model(PIXEL_VALUES)  # a fast copy exists now
    captured = []
    hook = model.i3d.stages[1].register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        with torch.no_grad():
            logits = model(PIXEL_VALUES).logits
    finally:
        hook.remove()
    assert len(captured) == 1
    torch.testing.assert_close(logits, run(model).logits, rtol=0, atol=0)


def test_switching_eval_train_eval_trains_the_plain_model_and_leaves_the_state_dict_alone():
    """eval (fast copy) -> train -> eval: train mode computes exactly what a copy that never met the accelerator
    computes (logits, loss, gradients, the optimizer step), the accelerated eval leaves every parameter and buffer
    bit-identical, and the eval after training serves the updated weights."""
    model = fixture_model("r34")
    untouched = copy.deepcopy(model)  # never run in eval mode: no fast copy was ever made from it
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        first_eval = model(PIXEL_VALUES).logits
    assert model in inference._ACCELERATED and untouched not in inference._ACCELERATED
    assert within_1e4(first_eval, run(untouched).logits)
    state = model.state_dict()
    assert state.keys() == before.keys()
    for name, tensor in state.items():  # bit-identical: same dtype, same bits
        assert tensor.dtype == before[name].dtype and torch.equal(tensor, before[name]), name

    labels = torch.tensor([0, 1])
    outputs = {}
    for key, net in (("switched", model), ("untouched", untouched)):
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(0)  # the same dropout masks
        result = net(PIXEL_VALUES, labels=labels)
        result.loss.backward()
        grads = {name: param.grad.clone() for name, param in net.named_parameters()}
        optimizer.step()
        outputs[key] = (result.logits.detach(), result.loss.detach(), grads)
    for got, expected in zip(outputs["switched"][:2], outputs["untouched"][:2]):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    for name, grad in outputs["switched"][2].items():
        torch.testing.assert_close(grad, outputs["untouched"][2][name], rtol=0, atol=0)

    model.eval()
    untouched.eval()
    with torch.no_grad():
        second_eval = model(PIXEL_VALUES).logits
    for name, tensor in model.state_dict().items():  # the training step and the second eval: no difference either
        assert torch.equal(tensor, untouched.state_dict()[name]), name
    assert within_1e4(second_eval, run(untouched).logits)  # a fresh copy of the trained weights, not the stale one
    assert not within_1e4(second_eval, first_eval)


# Winograd F(4x4, 3x3) (winograd_conv3d): the fast path's kx3x3 convolutions where it is faster (the rule below)


@pytest.mark.parametrize(
    "taps, size, relu, residual",
    [(3, (5, 16, 16), True, False), (1, (3, 16, 15), False, True), (3, (4, 17, 14), True, True)],
    ids=["3x3x3-relu", "1x3x3-residual-odd-width", "3x3x3-residual-relu-odd-height"],
)
def test_winograd_convolution_matches_float64(taps, size, relu, residual):
    torch.manual_seed(0)
    in_channels, out_channels = 24, 40
    x = torch.randn(2, in_channels, *size).contiguous(memory_format=torch.channels_last_3d)
    weight = torch.randn(out_channels, in_channels, taps, 3, 3) / (in_channels * taps * 9) ** 0.5
    bias = torch.randn(out_channels)
    skip = torch.randn(2, out_channels, *size) if residual else None
    expected = F.conv3d(x.double(), weight.double(), bias.double(), padding=(taps // 2, 1, 1))
    if skip is not None:
        expected = expected + skip.double()
    if relu:
        expected = expected.relu()
    transformed = winograd_weight(weight)
    got = winograd_conv3d(x, transformed, bias, relu=relu, residual=skip)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    # bit-identical sample by sample: the batch never changes a result (FVD over several processes relies on it)
    rest = winograd_conv3d(x[1:], transformed, bias, relu=relu, residual=None if skip is None else skip[1:])
    assert torch.equal(got[1:], rest)
    assert got.is_contiguous(memory_format=torch.channels_last_3d)  # what the next oneDNN convolution reads
    # float32 Winograd F(4x4, 3x3) rounds a few times more than a direct convolution: 3e-6 to 6e-6 of the output scale
    # measured here and on the model layers (benchmarks/bench_winograd.py), against 1e-6 for oneDNN's direct kernel
    assert float((got.double() - expected).abs().max() / expected.abs().max()) < 2e-5


@pytest.mark.parametrize(
    "in_channels, out_channels, taps, size",
    [(128, 128, 1, (4, 32, 32)), (96, 128, 3, (8, 28, 28)), (40, 24, 3, (3, 13, 18))],
    ids=["r50-stage2-256", "inception-mixed3b", "odd"],
)
def test_winograd_sample_results_do_not_depend_on_the_batch(in_channels, out_channels, taps, size, monkeypatch):
    # The samples of a batch share the matrix products (frames x samples x tiles rows); each sample's output must be
    # bit for bit what it gets alone or in another group (window features and FVD promise batch-independent results)
    generator = torch.Generator().manual_seed(in_channels)
    x = torch.randn(4, in_channels, *size, generator=generator).contiguous(memory_format=torch.channels_last_3d)
    weight = torch.randn(out_channels, in_channels, taps, 3, 3, generator=generator) / (in_channels * taps * 9) ** 0.5
    transformed, bias = winograd_weight(weight), torch.randn(out_channels, generator=generator)
    together = winograd_conv3d(x, transformed, bias, relu=True)
    for index in range(4):
        alone = winograd_conv3d(x[index : index + 1], transformed, bias, relu=True)
        assert torch.equal(alone, together[index : index + 1])
    monkeypatch.setattr(inference, "_WINOGRAD_GROUP_BYTES", 1)  # one sample per group
    assert torch.equal(winograd_conv3d(x, transformed, bias, relu=True), together)
    frames, height, width = size
    tiles = -(-height // 4) * -(-width // 4)
    per_sample = 4 * 36 * tiles * ((frames + taps - 1) * in_channels + frames * out_channels)
    monkeypatch.setattr(inference, "_WINOGRAD_GROUP_BYTES", 3 * per_sample)  # groups of 3 and 1
    assert torch.equal(winograd_conv3d(x, transformed, bias, relu=True), together)


@pytest.mark.parametrize(
    "kernel, stride, padding, channels, shape, applies",
    [
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), (64, 192), (1, 8, 56, 56), True),  # Inception Conv3d_2c at 16x224: 8.3 GMAC
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), (128, 192), (1, 32, 28, 28), True),  # Mixed_3c at 64x224: 16.6 GMAC
        ((1, 3, 3), (1, 1, 1), (0, 1, 1), (128, 128), (1, 4, 28, 28), True),  # I3D-R50 stage 2 at 32x224: 0.46 GMAC
        ((1, 3, 3), (1, 1, 1), (0, 1, 1), (256, 256), (1, 1, 14, 14), False),  # R50 stage 3, 8x224 clip: 0.12 GMAC
        ((1, 3, 3), (1, 1, 1), (0, 1, 1), (256, 256), (16, 1, 14, 14), False),  # the size counts per sample
        ((1, 3, 3), (1, 1, 1), (0, 1, 1), (64, 64), (16, 8, 56, 56), False),  # R50 stage 1: kt * C_in = 64, slower
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), (32, 128), (8, 8, 28, 28), False),  # kt * C_in = 96
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), (128, 32), (8, 8, 28, 28), False),  # C_out = 32
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), (192, 384), (8, 8, 7, 7), False),  # 7x7: 4x4 tiles cover 8x8
        ((3, 3, 3), (1, 2, 2), (1, 1, 1), (64, 192), (1, 8, 56, 56), False),  # strided
        ((3, 3, 3), (1, 1, 1), (0, 0, 0), (64, 192), (1, 8, 56, 56), False),  # no 'same' padding
        ((3, 1, 1), (1, 1, 1), (1, 0, 0), (256, 256), (8, 4, 28, 28), False),  # not a 3x3 kernel
    ],
)
def test_winograd_rule(kernel, stride, padding, channels, shape, applies, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # the rule measured on AVX2
    in_channels, out_channels = channels
    weight = torch.zeros(out_channels, in_channels, *kernel)
    conv = FoldedConv3d(weight, torch.zeros(out_channels), stride, padding, (1, 1, 1), 1, winograd=True)
    batch, *size = shape
    x = torch.empty(batch, in_channels, *size, device="meta")  # the rule reads shapes only
    assert conv._winograd_applies(x, *conv._weight_and_padding(False)) is applies
    assert not FoldedConv3d(weight, torch.zeros(out_channels), stride, padding, (1, 1, 1), 1).winograd
    bf16 = FoldedConv3d(
        weight, torch.zeros(out_channels), stride, padding, (1, 1, 1), 1, winograd=True, dtype=torch.bfloat16
    )
    assert not bf16.winograd  # float32 only


@pytest.mark.parametrize(
    "capability, in_channels, out_channels, kernel, shape, applies",
    [
        # AVX-512: oneDNN's direct kernels are twice as fast; only kt * C_in >= 256 on maps of 28 x 28 and more gain
        ("AVX512", 128, 192, (3, 3, 3), (1, 32, 28, 28), True),  # Inception Mixed_3c branch 1
        ("AVX512", 96, 128, (3, 3, 3), (1, 8, 28, 28), True),  # Mixed_3b branch 1
        ("AVX512", 64, 192, (3, 3, 3), (1, 8, 56, 56), False),  # Conv3d_2c: kt * C_in = 192
        ("AVX512", 128, 128, (1, 3, 3), (1, 4, 28, 28), False),  # I3D-R50 stage 2
        ("AVX512", 160, 320, (3, 3, 3), (1, 16, 14, 14), False),  # Mixed_4f branch 1: a 14x14 map
        ("AVX2", 128, 128, (1, 3, 3), (1, 4, 28, 28), True),
        ("DEFAULT", 128, 128, (1, 3, 3), (1, 4, 28, 28), True),  # a CPU without a measured row takes AVX2's
    ],
)
def test_winograd_rule_by_cpu(capability, in_channels, out_channels, kernel, shape, applies, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    padding = tuple(k // 2 for k in kernel)
    weight = torch.zeros(out_channels, in_channels, *kernel)
    conv = FoldedConv3d(weight, torch.zeros(out_channels), (1, 1, 1), padding, (1, 1, 1), 1, winograd=True)
    batch, *size = shape
    x = torch.empty(batch, in_channels, *size, device="meta")
    assert conv._winograd_applies(x, *conv._weight_and_padding(False)) is applies


def _random_norms_(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in model.modules():
            if isinstance(norm, nn.BatchNorm3d):
                if norm.bias is not None:
                    norm.bias.normal_(0.0, 0.1, generator=generator)
                norm.running_mean.normal_(0.0, 0.1, generator=generator)
                norm.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


@pytest.mark.parametrize("family", ["inception", "r18", "r50"])
def test_winograd_fast_path_gives_the_plain_logits(family, monkeypatch):
    # Small models whose wide layers meet the rule but for its size threshold (lifted here): Inception I3D with DeepMind's widths up to Mixed_3c (Conv3d_2c_3x3
    # and two 3x3x3 branches of Mixed_3b/3c run as Winograd, later blocks narrow), I3D-R18 (every 3x3x3 of stages 1-2,
    # with the residual addition), I3D-R50 (the 1x3x3 convolutions of stage 2).
    torch.manual_seed(0)
    if family == "inception":
        widths = {
            name: (list(width) if name in ("Mixed_3b", "Mixed_3c") else [8] * 6)
            for name, width in InceptionI3DConfig().mixed_channels.items()
        }
        model = InceptionI3DForVideoClassification(
            InceptionI3DConfig(num_labels=5, mixed_channels=widths, num_frames=9, image_size=193)
        )
        shape, expected_calls = (1, 9, 3, 193, 193), 3
    else:
        depth, frames = (18, 16) if family == "r18" else (50, 8)  # R18: 2 frames left in stage 1, full 3x3x3 taps
        model = I3DForVideoClassification(I3DConfig(depth=depth, num_labels=5, num_frames=frames, image_size=112))
        shape, expected_calls = (1, frames, 3, 112, 112), (7 if family == "r18" else 3)
    model = _random_norms_(model, 1)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(2))
    pixel_values = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    calls = []

    def counting(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return original(*args, **kwargs)

    original = inference.winograd_conv3d
    monkeypatch.setattr(inference, "winograd_conv3d", counting)
    monkeypatch.setattr(inference, "WINOGRAD_MIN_MACS", 0)  # small models: below the default size threshold
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # the same layers on every CPU
    plain = run(model, pixel_values).logits
    assert plain.abs().max() > 0.5  # not a degenerate comparison
    direct = run(optimize_for_inference(model, winograd=False), pixel_values).logits
    assert calls == []
    fast = run(optimize_for_inference(model), pixel_values).logits  # winograd=True is the default
    assert len(calls) == expected_calls
    assert within_1e4(fast, plain) and within_1e4(direct, plain)
