"""Non-local blocks of the ResNet3d family: config meaning (mmaction2 ``non_local``/``non_local_cfg``), init, and
the fast inference copy. Logits parity with mmaction2 is in ``test_convert_mmaction.py``."""

import pytest
import torch

from hf_i3d import I3DConfig, I3DForVideoClassification
from hf_i3d.inference import optimize_for_inference
from hf_i3d.modeling_i3d import I3DNonLocalBlock

NL_MAP = ((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0))
PUBLISHED_CFG = {"sub_sample": True, "use_scale": False, "norm_cfg": {"type": "BN3d", "requires_grad": True}}


def non_local_blocks(model) -> list[I3DNonLocalBlock]:
    return [m for m in model.modules() if isinstance(m, I3DNonLocalBlock)]


def test_config_fills_mmcv_defaults_and_expands_the_map(tmp_path):
    config = I3DConfig(non_local=(0, 1, 1, 0), non_local_cfg={"mode": "dot_product"})
    assert config.non_local == [[0, 0, 0], [1, 1, 1, 1], [1] * 6, [0, 0, 0]]
    assert config.non_local_cfg == {
        "mode": "dot_product",
        "sub_sample": False,
        "use_scale": True,
        "reduction": 2,
        "norm_cfg": None,
        "zeros_init": True,
        "std": 0.01,
    }
    config.save_pretrained(tmp_path)
    reloaded = I3DConfig.from_pretrained(tmp_path)
    assert reloaded.non_local == config.non_local and reloaded.non_local_cfg == config.non_local_cfg
    assert I3DConfig().non_local == [[0, 0, 0], [0] * 4, [0] * 6, [0, 0, 0]]  # default: no non-local block


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"non_local_cfg": {"mode": "concatenation"}}, "I3DConfig.non_local_cfg.mode must be one of"),
        (
            {"non_local_cfg": {"sub_sampel": True}},
            "I3DConfig.non_local_cfg has unknown key(s) ['sub_sampel']",
        ),
        ({"non_local_cfg": {"norm_cfg": {"type": "GN"}}}, "I3DConfig.non_local_cfg.norm_cfg must be None or"),
        ({"non_local": ((0, 1), 0, 0, 0)}, "I3DConfig.non_local[0] has 2 entries but stage 1"),
    ],
)
def test_config_refuses_what_it_cannot_build(kwargs, message):
    with pytest.raises(ValueError) as error:
        I3DConfig(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("mode", ["dot_product", "embedded_gaussian", "gaussian"])
def test_fresh_blocks_are_the_identity_with_zeros_init(mode):
    """mmcv ``NonLocal3d.init_weights(zeros_init=True)``: the output BN starts at zero, so a new model computes what
    the same model without non-local blocks computes; g/theta/phi get N(0, std) weights and zero biases."""
    torch.manual_seed(0)
    config = I3DConfig(
        base_channels=4, num_labels=5, non_local=NL_MAP, non_local_cfg={**PUBLISHED_CFG, "mode": mode}
    )
    model = I3DForVideoClassification(config).eval()
    plain = I3DForVideoClassification(I3DConfig(base_channels=4, num_labels=5)).eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and all(".non_local." in key for key in unexpected) and unexpected
    for block in non_local_blocks(model):
        assert torch.count_nonzero(block.norm.weight) == 0 and torch.count_nonzero(block.norm.bias) == 0
        assert (
            float(block.g.weight.detach().std()) == pytest.approx(0.01, rel=0.5)
            and torch.count_nonzero(block.g.bias) == 0
        )
    x = torch.randn(1, 16, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model(x).logits, plain(x).logits, rtol=0, atol=0)


def test_zeros_init_off_and_no_norm_follow_mmcv():
    config = I3DConfig(
        base_channels=4, non_local=(0, 1, 0, 0), non_local_cfg={"zeros_init": False, "std": 0.05}
    )
    block = non_local_blocks(I3DForVideoClassification(config))[0]
    assert block.norm is None and block.conv_out.bias is not None  # no norm_cfg: conv_out has a bias
    assert float(block.conv_out.weight.detach().std()) == pytest.approx(
        0.05, rel=0.3
    )  # normal_init(conv_out, std)
    assert block.theta is not None and block.pool is None


def test_fast_inference_copy_keeps_the_non_local_blocks():
    torch.manual_seed(0)
    config = I3DConfig(
        base_channels=4,
        num_labels=5,
        non_local=NL_MAP,
        non_local_cfg={**PUBLISHED_CFG, "mode": "dot_product"},
    )
    model = I3DForVideoClassification(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.running_mean.normal_(0.0, 0.1)
    x = torch.randn(2, 16, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x).logits
        fast = optimize_for_inference(model)
        torch.testing.assert_close(fast(x).logits, expected, rtol=0, atol=1e-4)


def test_gradient_checkpointing_covers_the_blocks():
    torch.manual_seed(0)
    config = I3DConfig(
        base_channels=4, num_labels=5, non_local=NL_MAP, non_local_cfg={**PUBLISHED_CFG, "mode": "gaussian"}
    )
    model = I3DForVideoClassification(config).train()
    x = torch.randn(2, 16, 3, 64, 64)
    labels = torch.tensor([1, 3])
    torch.manual_seed(1)
    loss = model(x, labels=labels).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if ".non_local." in n}
    model.zero_grad()
    model.activation_checkpointing_enable()
    torch.manual_seed(1)
    model(x, labels=labels).loss.backward()
    for name, grad in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_inflating_2d_weights_leaves_the_non_local_blocks_at_their_init():
    """As mmaction2's ``pretrained2d=True`` (the published non-local configs): every ResNet weight comes from the 2D
    model, the non-local blocks (no 2D counterpart) keep mmcv's init, so they start as the identity."""
    import torchvision

    from hf_i3d.convert.inflate import inflate_2d_weights

    torch.manual_seed(0)
    config = I3DConfig(non_local=NL_MAP, non_local_cfg={**PUBLISHED_CFG, "mode": "embedded_gaussian"})
    with torch.device("meta"):
        sizes = {k: v.shape for k, v in I3DForVideoClassification(config).state_dict().items()}
    assert len(sizes) == 380  # mmaction2 1.2.0's state dict of this model (fixture json: 380 entries)
    model = I3DForVideoClassification(config)
    report = inflate_2d_weights(model, torchvision.models.resnet50(weights=None))
    assert report.not_loaded and all(".non_local." in key for key in report.not_loaded)
    assert (
        len(report.not_loaded) == 5 * 11
    )  # five blocks: g/theta/phi weight+bias, conv_out weight, 4 BN tensors
    for block in non_local_blocks(model):
        assert torch.count_nonzero(block.norm.weight) == 0
