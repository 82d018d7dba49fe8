"""The fused TF1 resize + strided stem (``hf_i3d._resize_stem``) equals resizing to 224x224 and convolving."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_i3d._resize_stem import ResizedStem, fused_stem_cost
from hf_i3d.fvd import resize_bilinear_tf1
from hf_i3d.modeling_inception_i3d import _same_padding


def _resize_then_convolve(frames: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The definition: every frame TF1-resized to 224x224, then the SAME-padded stride-2 convolution and ReLU."""
    resized = resize_bilinear_tf1(frames, (224, 224)).permute(0, 4, 1, 2, 3)
    padded = F.pad(resized, _same_padding(tuple(resized.shape[-3:]), weight.shape[-3:], (2, 2, 2)))
    return F.conv3d(padded, weight, bias, stride=2).relu()


@pytest.mark.parametrize(
    ("frames", "height", "width"),
    [(16, 64, 64), (10, 96, 64), (9, 128, 128), (9, 112, 112)],
)
def test_fused_stem_equals_resize_then_convolution(frames, height, width):
    generator = torch.Generator().manual_seed(height * width + frames)
    weight = torch.randn(4, 3, 7, 7, 7, generator=generator) * 0.05
    bias = torch.randn(4, generator=generator) * 0.1
    video = torch.rand(2, frames, height, width, 3, generator=generator) * 2 - 1
    expected = _resize_then_convolve(video, weight, bias)
    got = ResizedStem(weight, bias, (2, 2, 2), (height, width))(video)
    assert got.shape == expected.shape == (2, 4, -(-frames // 2), 112, 112)
    assert got.is_contiguous(memory_format=torch.channels_last_3d)
    # TF1 computes each source position as y * (in / out) in float32 (the reference does too): up to ~1e-5 off the
    # exact interpolation weights the fused kernels are built from, which is all that separates the two here
    assert (got - expected).abs().max() <= 2e-5 * expected.abs().max()
    # a video's output does not depend on the batch it is in (FVD split over processes equals one process)
    alone = ResizedStem(weight, bias, (2, 2, 2), (height, width))(video[:1])
    assert torch.equal(alone, got[:1])


def test_fused_stem_borders_are_computed_not_assumed():
    """A frame that is one bright pixel in a corner: the rows and columns where SAME padding and the resize's clamp
    break the periodic pattern are the only non-zero outputs, and they are right."""
    weight = torch.rand(4, 3, 7, 7, 7, generator=torch.Generator().manual_seed(0))
    bias = torch.zeros(4)
    for row, col in ((0, 0), (63, 63)):
        video = torch.zeros(1, 9, 64, 64, 3)
        video[:, :, row, col] = 1.0
        expected = _resize_then_convolve(video, weight, bias)
        got = ResizedStem(weight, bias, (2, 2, 2), (64, 64))(video)
        assert expected.abs().max() > 0.1
        assert (got - expected).abs().max() <= 2e-5 * expected.abs().max()  # TF1's float32 weights, as above


def test_fused_stem_cost_says_where_it_saves_work():
    """Multiply-adds per output relative to the 7x7 stem on 224x224 frames (4x4 source taps for 64x64)."""
    assert fused_stem_cost((64, 64), (7, 7), (2, 2)) == pytest.approx(16 / 49)
    assert fused_stem_cost((128, 128), (7, 7), (2, 2)) == pytest.approx(36 / 49)
    assert fused_stem_cost((224, 224), (7, 7), (2, 2)) >= 1
    assert fused_stem_cost((256, 256), (7, 7), (2, 2)) > 1
    assert (
        fused_stem_cost((50, 70), (7, 7), (2, 2)) is None
    )  # 56 x 8 row x column phases: too many small GEMMs
