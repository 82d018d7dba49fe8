"""hf_i3d.cpu_training: the fast CPU training step computes what the plain model and torch's SGD compute.

The convolutions are compared in float64, where another summation order moves results by ~1e-15 relative: in
float32 the gradients of these randomly initialised networks are ill-conditioned (BatchNorm over two clips on 4x4
maps), so that the plain model's own float32 gradients are up to 17% away from float64 on some weights, whatever
the kernel. The optimiser is compared bit for bit.
"""

import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from _ports import free_port
from torch.nn.parallel import DistributedDataParallel

from hf_i3d import I3DConfig, I3DForVideoClassification
from hf_i3d.cpu_training import (
    ChannelsLastSGD,
    CPUTrainingConv3d,
    _PatchMatmulConv,
    _PlainForwardConv,
    _TemporalKernelConv,
    optimize_for_cpu_training,
)
from hf_i3d.export import ExportableModel
from hf_i3d.modeling_i3d import I3DConv3d
from hf_i3d.zoo import ZOO

CL = torch.channels_last_3d


def small_r50(**config) -> I3DForVideoClassification:
    """An I3D-R50 (or the zoo ``config``) with 8 base channels: the full network's maps and layer kinds at a fraction
    of the work."""
    torch.manual_seed(0)
    return I3DForVideoClassification(I3DConfig(**{**config, "base_channels": 8}, num_labels=10)).train()


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same memory order (strides of size-1 dimensions do not matter): autograd hands such a gradient over as is."""
    return a.shape == b.shape and all(a.stride(d) == b.stride(d) for d in range(a.dim()) if a.shape[d] > 1)


CLIPS = torch.randn(2, 8, 3, 112, 112, generator=torch.Generator().manual_seed(1))
LABELS = torch.tensor([3, 7])


def assert_gradients_close(got, expected, inputs, grad_output) -> tuple[torch.Tensor, ...]:
    """``got``'s gradients with respect to ``inputs`` equal ``expected``'s (float64, to 1e-12); returns ``got``'s."""
    got_grads = torch.autograd.grad(got, inputs, grad_output)
    expected_grads = torch.autograd.grad(expected, inputs, grad_output)
    for got_grad, expected_grad in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(got_grad, expected_grad, rtol=1e-12, atol=1e-12)
    return got_grads


@pytest.mark.parametrize(
    "kernel, stride, padding, frames, size, tap",
    [
        ((1, 1, 1), (1, 1, 1), (0, 0, 0), 2, (5, 5), 0),  # 1x1x1
        ((1, 1, 1), (1, 2, 2), (0, 0, 0), 1, (7, 7), 0),  # a strided shortcut
        ((1, 3, 3), (1, 1, 1), (0, 1, 1), 2, (4, 4), 0),
        ((1, 3, 3), (1, 2, 2), (0, 1, 1), 1, (7, 7), 0),  # a strided 3x3 (out 4x4)
        ((1, 3, 3), (1, 1, 1), (0, 1, 1), 1, (3, 5), 0),  # not square
        ((3, 1, 1), (1, 1, 1), (1, 0, 0), 1, (4, 4), 1),  # inflated, one frame: the centre tap only
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), 1, (4, 4), 1),
    ],
)
@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_patch_matmul_conv_is_conv3d(kernel, stride, padding, frames, size, tap, layout, input_grad):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, frames, *size, dtype=torch.float64, generator=generator)
    weight = torch.randn(12, 8, *kernel, dtype=torch.float64, generator=generator)
    if layout == "channels_last":
        x, weight = x.contiguous(memory_format=CL), weight.contiguous(memory_format=CL)
    x.requires_grad_(input_grad)
    weight.requires_grad_()
    expected = F.conv3d(x, weight, None, stride, padding)
    got = _PatchMatmulConv.apply(x, weight, tap, stride[1:], padding[1:])
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert got.is_contiguous(memory_format=CL)  # what the next oneDNN convolution reads without a reorder
    grad_output = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    got_grads = assert_gradients_close(got, expected, (x, weight) if input_grad else (weight,), grad_output)
    if layout == "channels_last":  # handed to the parameter without a copy
        assert same_layout(got_grads[-1], weight)


def layers_taking(model: I3DForVideoClassification, clips: torch.Tensor, applies) -> list[str]:
    """The convolutions for which ``applies(module, input)`` holds in a forward of ``clips`` (in the caller's
    autograd and autocast state)."""
    names = {module: name for name, module in model.named_modules()}
    taken = []
    hooks = [
        module.register_forward_pre_hook(
            lambda module, args: taken.append(names[module]) if applies(module, args[0]) else None
        )
        for module in model.modules()
        if isinstance(module, CPUTrainingConv3d)
    ]
    model(clips, labels=LABELS)
    for hook in hooks:
        hook.remove()
    return taken


def matmul_layers(model: I3DForVideoClassification, clips: torch.Tensor) -> list[str]:
    """The convolutions that take the matrix-product path in a forward of ``clips``."""
    return layers_taking(model, clips, lambda module, x: module._matmul_tap(x) is not None)


@pytest.mark.parametrize("input_layout", ["clips", "contiguous", "channels_last"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_plain_forward_conv_is_conv3d(input_layout, input_grad):
    """The stem's geometry (5x7x7, stride 2, RGB input): the output and both gradients are ``F.conv3d``'s, whatever
    the input's layout (the model reads a permuted (batch, frames, 3, H, W) tensor); the output and the weight
    gradient come back channels-last."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 3, 13, 12, dtype=torch.float64, generator=generator).permute(0, 2, 1, 3, 4)
    if input_layout != "clips":
        x = x.contiguous(memory_format=CL if input_layout == "channels_last" else torch.contiguous_format)
    weight = torch.randn(8, 3, 5, 7, 7, dtype=torch.float64, generator=generator).contiguous(memory_format=CL)
    x.requires_grad_(input_grad)
    weight.requires_grad_()
    geometry = ((2, 2, 2), (2, 3, 3), (1, 1, 1))
    expected = F.conv3d(x, weight, None, *geometry)
    got = _PlainForwardConv.apply(x, weight, *geometry)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert got.is_contiguous(memory_format=CL)
    grad_output = torch.randn(expected.shape, dtype=torch.float64, generator=generator).contiguous(
        memory_format=CL
    )
    got_grads = assert_gradients_close(got, expected, (x, weight) if input_grad else (weight,), grad_output)
    assert same_layout(got_grads[-1], weight)  # handed to the parameter without a copy


@pytest.mark.parametrize(
    "batch, frames, kernel_t, padding_t",
    [
        (2, 2, 3, 1),  # the I3D-R50's stage 1 at 8-frame clips
        (1, 2, 3, 1),  # one clip: each tap one matrix product
        (2, 4, 3, 1),
        (2, 3, 5, 2),  # the outer taps meet one frame each
        (2, 4, 3, 0),  # no temporal padding: fewer output frames
        (2, 2, 5, 2),  # taps that meet only padding: zero gradient
    ],
)
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("matmul_taps", [False, True])
def test_temporal_kernel_conv_is_conv3d(batch, frames, kernel_t, padding_t, input_grad, matmul_taps):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 8, frames, 5, 4, dtype=torch.float64, generator=generator).contiguous(
        memory_format=CL
    )
    weight = torch.randn(12, 8, kernel_t, 1, 1, dtype=torch.float64, generator=generator).contiguous(
        memory_format=CL
    )
    x.requires_grad_(input_grad)
    weight.requires_grad_()
    expected = F.conv3d(x, weight, None, 1, (padding_t, 0, 0))
    got = _TemporalKernelConv.apply(x, weight, padding_t, matmul_taps)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert got.is_contiguous(memory_format=CL) or not matmul_taps
    grad_output = torch.randn(expected.shape, dtype=torch.float64, generator=generator).contiguous(
        memory_format=CL
    )
    got_grads = assert_gradients_close(got, expected, (x, weight) if input_grad else (weight,), grad_output)
    assert same_layout(got_grads[-1], weight)


@pytest.fixture(params=[1, 2], ids=["one_thread", "two_threads"])
def threads(request):
    """One and two intra-op threads for one test (restored after). On one thread PyTorch sends convolutions with 1x1
    spatial kernels and batches under 16 to its reference kernel, which returns the default layout:
    ``CPUTrainingConv3d`` then takes every 1x1x1 convolution as a matrix product and the (3, 1, 1) ones as matrix
    products over frame-shifted rows, so that the activations stay channels-last."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_which_convolutions_take_the_temporal_kernel_path(threads):
    """At 2x8x112x112 the inflated 3x1x1 convolutions of stage 1 (two frames), on one thread or two; from stage 2 on
    (one frame) they take the matrix product of their centre tap. Stage 1's activations stay channels-last."""
    model = optimize_for_cpu_training(small_r50())
    outputs = []
    hooks = [
        layer.register_forward_hook(lambda module, args, output: outputs.append(output))
        for layer in model.i3d.stages[0].layers
    ]
    taken = layers_taking(model, CLIPS, CPUTrainingConv3d._temporal_kernel_applies)
    for hook in hooks:
        hook.remove()
    assert taken == [f"i3d.stages.0.layers.{block}.conv1.conv" for block in range(3)]
    assert len(outputs) == 3 and all(output.is_contiguous(memory_format=CL) for output in outputs)
    with torch.no_grad():
        assert layers_taking(model, CLIPS, CPUTrainingConv3d._temporal_kernel_applies) == []


def test_only_the_rgb_stem_takes_the_plain_forward():
    """The stem of an optimized model reads the clips with a forward in the default layout; no other convolution
    does, nor the stem outside a float training step or of a model left in the default layout."""
    model = optimize_for_cpu_training(small_r50())
    stem = model.i3d.stem.conv.conv
    clips = CLIPS.permute(0, 2, 1, 3, 4)
    assert layers_taking(model, CLIPS, CPUTrainingConv3d._plain_forward_applies) == ["i3d.stem.conv.conv"]
    with torch.no_grad():
        assert not stem._plain_forward_applies(clips)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not stem._plain_forward_applies(clips)
    stem.to(memory_format=torch.contiguous_format)  # its forward is in the default layout already
    assert not stem._plain_forward_applies(clips)


def test_which_convolutions_take_the_matrix_product(threads):
    """At 2x8x112x112 (stage 1 at 2x28x28, stages 2-4 at one frame of 14x14, 7x7 and 4x4): every 1x1x1 and
    one-frame 3x1x1 convolution of stages 2-4 (at most 1568 rows) and stage 4's 3x3 ones (4x4 maps, 32 rows); on
    one thread also stage 1's 1x1x1 ones (3136 rows)."""
    model = optimize_for_cpu_training(small_r50())
    taken = matmul_layers(model, CLIPS)
    expected = []
    for stage, blocks in enumerate(model.config.stage_blocks):
        for block in range(blocks):
            prefix = f"i3d.stages.{stage}.layers.{block}"
            if stage >= 1:
                expected.append(f"{prefix}.conv1.conv")
            if stage >= 1 or threads == 1:
                expected.append(f"{prefix}.conv3.conv")
                if stage == 3:
                    expected.append(f"{prefix}.conv2.conv")
                if block == 0:
                    expected.append(f"{prefix}.shortcut.conv")
    assert sorted(taken) == sorted(expected)
    with torch.no_grad():  # inference keeps oneDNN
        assert matmul_layers(model, CLIPS) == []
    with torch.autocast("cpu", dtype=torch.bfloat16):  # and so does bf16 training (--bf16)
        assert matmul_layers(model, CLIPS) == []


@pytest.mark.parametrize(
    "zoo_name",
    [
        "i3d-r50-kinetics400",
        "i3d-r34-kinetics400",  # basic blocks
        "i3d-r50-heavy",  # 3x3x3 kernels: the centre 3x3 tap on one frame
        "i3d-r50-nl-embedded-gaussian-kinetics400",  # non-local blocks (their 1x1x1 convolutions have a bias)
    ],
)
def test_optimized_model_computes_the_plain_loss_and_gradients(zoo_name):
    """Every kind of ResNet3d in the zoo, 8 base channels. Some gradients are exact zeros in exact arithmetic
    (a non-local block's last BatchNorm bias): there both sides are rounding noise, hence ``atol``."""
    plain = small_r50(**ZOO[zoo_name].config).double()
    optimized = optimize_for_cpu_training(copy.deepcopy(plain))
    assert any(isinstance(module, CPUTrainingConv3d) for module in optimized.modules())
    assert optimized.i3d.stem.conv.conv.weight.is_contiguous(memory_format=CL)
    # the same state dict: same keys, same values
    plain_state, optimized_state = plain.state_dict(), optimized.state_dict()
    assert list(plain_state) == list(optimized_state)
    assert all(torch.equal(plain_state[key], optimized_state[key]) for key in plain_state)
    losses = []
    for model in (plain, optimized):
        torch.manual_seed(3)  # the same dropout mask
        loss = model(CLIPS.double(), labels=LABELS).loss
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=0)
    for (name, plain_param), optimized_param in zip(
        plain.named_parameters(), optimized.parameters(), strict=True
    ):
        torch.testing.assert_close(optimized_param.grad, plain_param.grad, rtol=1e-9, atol=1e-12, msg=name)
        assert same_layout(optimized_param.grad, optimized_param), name
    for (
        key,
        value,
    ) in optimized.state_dict().items():  # BatchNorm's running statistics, from the same activations
        torch.testing.assert_close(value, plain.state_dict()[key], rtol=1e-12, atol=1e-12, msg=key)


def test_optimized_model_evaluates_and_saves_as_the_plain_model(tmp_path):
    plain = small_r50()
    optimized = optimize_for_cpu_training(copy.deepcopy(plain))
    plain.eval(), optimized.eval()
    with torch.no_grad():  # the eval fast path, built from the optimized model's modules
        torch.testing.assert_close(optimized(CLIPS).logits, plain(CLIPS).logits, rtol=1e-4, atol=1e-5)
    optimized.save_pretrained(tmp_path)
    reloaded = I3DForVideoClassification.from_pretrained(tmp_path)
    assert not any(isinstance(module, CPUTrainingConv3d) for module in reloaded.modules())
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), plain.state_dict().values()))
    # the export sees plain convolutions
    exported = ExportableModel(optimized)
    assert not any(isinstance(module, I3DConv3d) for module in exported.modules())


def sgd_pair(model, **options):
    """The same (channels-last) parameters under torch's SGD and ours, with the same options."""
    reference_model = copy.deepcopy(model)
    reference = torch.optim.SGD(reference_model.parameters(), **options)
    ours = ChannelsLastSGD(model.parameters(), **options)
    return reference_model, reference, ours


@pytest.mark.parametrize(
    "options",
    [
        dict(lr=0.01, momentum=0.9, weight_decay=1e-4, fused=True),  # the recipe, as the Trainer creates it
        dict(lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=True),
        dict(lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=False),
        dict(lr=0.05, momentum=0.9, nesterov=True, fused=True),
        dict(lr=0.05, momentum=0.0, fused=True),
    ],
)
def test_channels_last_sgd_is_sgd_bit_for_bit(options):
    model = small_r50().to(memory_format=CL)
    model.classifier.weight.requires_grad_(False)  # a parameter without a gradient is left alone
    reference_model, reference, ours = sgd_pair(model, **options)
    generator = torch.Generator().manual_seed(0)

    def step(steps: int, optimizer: ChannelsLastSGD) -> None:
        for _ in range(steps):
            for reference_param, param in zip(reference_model.parameters(), model.parameters(), strict=True):
                if param.requires_grad:
                    grad = torch.randn(param.shape, generator=generator).contiguous(
                        memory_format=CL if param.dim() == 5 else torch.contiguous_format
                    )
                    reference_param.grad, param.grad = grad.clone(), grad.clone()
            reference.step()
            optimizer.step()

    step(3, ours)
    for reference_param, param in zip(reference_model.parameters(), model.parameters(), strict=True):
        assert torch.equal(param, reference_param)
        assert same_layout(param, reference_param)
        if options["momentum"]:
            buffer = ours.state[param].get("momentum_buffer")
            if param.requires_grad:
                assert torch.equal(buffer, reference.state[reference_param]["momentum_buffer"])
                assert same_layout(buffer, param)  # kept in the parameter's layout
    # a resumed optimiser (state dict saved and loaded, as the Trainer's checkpoints do) goes on the same way
    resumed = ChannelsLastSGD(model.parameters(), **options)
    resumed.load_state_dict(copy.deepcopy(ours.state_dict()))
    step(2, resumed)
    for reference_param, param in zip(reference_model.parameters(), model.parameters(), strict=True):
        assert torch.equal(param, reference_param)


def _ddp_rank(rank: int, port: int, state: dict, folder: str) -> None:
    """One of two gloo ranks: the optimized model under DDP, one backward of its own clip."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = small_r50().double()
        model.load_state_dict(state)
        ddp = DistributedDataParallel(optimize_for_cpu_training(model))
        torch.manual_seed(3)
        ddp(CLIPS[rank : rank + 1].double(), labels=LABELS[rank : rank + 1]).loss.backward()
        torch.save({name: param.grad for name, param in model.named_parameters()}, f"{folder}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_optimized_model_under_ddp_averages_the_plain_gradients(tmp_path):
    """Two DDP ranks (gloo, as ``accelerate launch`` on CPUs) of the optimized model: every rank ends with the mean
    of the plain model's gradients on each rank's clip (the matrix-product gradients go through DDP's buckets)."""
    plain = small_r50().double()
    expected = {name: torch.zeros_like(param) for name, param in plain.named_parameters()}
    for rank in range(2):
        plain.zero_grad()
        torch.manual_seed(3)
        plain(CLIPS[rank : rank + 1].double(), labels=LABELS[rank : rank + 1]).loss.backward()
        for name, param in plain.named_parameters():
            expected[name] += param.grad / 2
    mp.spawn(_ddp_rank, args=(free_port(), small_r50().double().state_dict(), str(tmp_path)), nprocs=2)
    for rank in range(2):
        grads = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        for name, grad in grads.items():
            # absolute tolerance at the gradient's scale: one clip per rank makes BatchNorm's statistics (and
            # so the stem's gradient, its forward summed in another order) the most ill-conditioned here
            scale = max(1.0, float(expected[name].abs().max()))
            torch.testing.assert_close(
                grad, expected[name], rtol=1e-9, atol=1e-12 * scale, msg=f"rank {rank}: {name}"
            )
