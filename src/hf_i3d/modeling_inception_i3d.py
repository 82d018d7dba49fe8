"""DeepMind's Inception-v1 I3D: a faithful port of ``InceptionI3d`` from kinetics-i3d ``i3d.py`` (@0667e88).

Follows the TF/Sonnet original (and its Flax port in i3d-jax 0.0.1 ``i3d_jax/i3d.py``) operation for operation:

* every convolution and max-pool uses TF ``'SAME'`` padding, computed from the actual input size with the extra
  padding at the END (``_same_padding``); a symmetric ``k // 2`` padding gets the shapes right and moves the logits
  by 4 to 12;
* ``Unit3D`` is conv (no bias) -> Sonnet-v1 BatchNorm (offset only, eps 1e-3) -> ReLU;
* the logits head is DeepMind's: a VALID (2, 7, 7) stride-1 average pool of Mixed_5c, dropout, a 1x1x1 convolution
  with bias, then the mean over the remaining time steps (not a global average pool: for T > 16 the first and last
  Mixed_5c time steps get half weight).

Read order: padding -> BatchNorm -> Unit3D -> max-pool -> Mixed block -> pooler -> pretrained base ->
``InceptionI3DModel`` -> ``InceptionI3DForVideoClassification``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_inception_i3d import ENDPOINT_NAMES, InceptionI3DConfig


def merge_view_logits(
    view_logits: torch.Tensor, mode: str = "prob", *, multi_label: bool = False
) -> torch.Tensor:
    """Per-video logits ``(B, K)`` from per-view logits ``(B, V, K)`` as mmaction2 ``BaseHead.average_clip`` averages
    views; the same function as ``modeling_i3d.merge_view_logits``, repeated because a saved folder carries one model
    file (tests check the two agree)."""
    if mode == "score":
        return view_logits.float().mean(dim=1).to(view_logits.dtype)
    scores = (torch.sigmoid if multi_label else partial(torch.softmax, dim=2))(view_logits.float()).mean(
        dim=1
    )
    merged = (
        torch.logit(scores, eps=1e-7)
        if multi_label
        else scores.clamp_min(torch.finfo(scores.dtype).tiny).log()
    )
    return merged.to(view_logits.dtype)


# Mixed_5c is (T/8, H/32, W/32) (rounded up) and the logits pool is a VALID (2, 7, 7) window.
LOGITS_POOL = (2, 7, 7)
MIN_FRAMES = 9
MIN_SIZE, MAX_SIZE = 193, 224

# The layers between the Mixed blocks (kinetics-i3d ``InceptionI3d._build``): convolutions as
# (out_channels, kernel, stride) and max-pools as (kernel, stride).
STEM_CONVS: dict[str, tuple[int, tuple[int, int, int], tuple[int, int, int]]] = {
    "Conv3d_1a_7x7": (64, (7, 7, 7), (2, 2, 2)),
    "Conv3d_2b_1x1": (64, (1, 1, 1), (1, 1, 1)),
    "Conv3d_2c_3x3": (192, (3, 3, 3), (1, 1, 1)),
}
STEM_POOLS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}


def _same_padding(
    sizes: tuple[int, ...], kernel_size: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[int, ...]:
    """TF/XLA 'SAME' padding as an ``F.pad`` tuple (last dimension first): ``out = ceil(in / stride)``,
    ``total = max((out - 1) * stride + k - in, 0)``, ``before = total // 2``, the rest after."""
    pads: list[int] = []
    for size, k, s in zip(reversed(sizes), reversed(kernel_size), reversed(stride)):
        # (ceil(in / s) - 1) * s + k - in in integers: a shape function torch.export traces with symbolic sizes
        total = torch.sym_max(k - s + (-size) % s, 0) if s > 1 else max(k - 1, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _pad_same(
    hidden_state: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...], value: float
) -> torch.Tensor:
    pads = _same_padding(tuple(hidden_state.shape[-3:]), kernel_size, stride)
    static_zero = all(isinstance(pad, int) and pad == 0 for pad in pads)
    return hidden_state if static_zero else F.pad(hidden_state, pads, value=value)


class InceptionI3DBatchNorm(nn.BatchNorm3d):
    """Sonnet v1 ``snt.BatchNorm()`` as DeepMind used it: a learned offset (beta) but NO scale (``use_scale=False``).

    The scale is left out entirely (``weight`` is ``None``, which ``F.batch_norm`` treats as 1) rather than stored as
    a frozen tensor, so the parameter count is exactly what the original trains (12,689,984 for Kinetics-400) and no
    optimiser or weight-decay rule can touch it. State: ``bias``, ``running_mean``, ``running_var``,
    ``num_batches_tracked``.
    """

    def __init__(self, num_features: int, eps: float, momentum: float):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False)
        self.bias = nn.Parameter(torch.zeros(num_features))


class InceptionI3DUnit3D(nn.Module):
    """DeepMind's ``Unit3D``: Conv3d with TF 'SAME' zero padding and no bias -> BatchNorm (no scale) -> ReLU."""

    def __init__(
        self,
        config: InceptionI3DConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
    ):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel_size, self.stride, bias=False)
        self.bn = InceptionI3DBatchNorm(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.activation = nn.ReLU()

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        hidden_state = _pad_same(hidden_state, self.kernel_size, self.stride, 0.0)
        return self.activation(self.bn(self.conv(hidden_state)))


class InceptionI3DMaxPool3d(nn.Module):
    """Max-pool with TF 'SAME' padding; padded cells are -inf (XLA ``reduce_window``), so they never win."""

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        hidden_state = _pad_same(hidden_state, self.kernel_size, self.stride, float("-inf"))
        return F.max_pool3d(hidden_state, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='SAME'"


class InceptionI3DMixedBlock(GradientCheckpointingLayer):
    """DeepMind's ``Mixed_*`` Inception block: four branches concatenated on channels.

    Branch_0: 1x1x1; Branch_1 and Branch_2: 1x1x1 then 3x3x3; Branch_3: 3x3x3 stride-1 max-pool then 1x1x1. Module
    names follow the original variable scopes (``Branch_1/Conv3d_0b_3x3`` -> ``branch_1.conv3d_0b_3x3``).
    """

    def __init__(self, config: InceptionI3DConfig, in_channels: int, widths: list[int]):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        unit = InceptionI3DUnit3D
        self.branch_0 = nn.Sequential(OrderedDict(conv3d_0a_1x1=unit(config, in_channels, b0)))
        self.branch_1 = nn.Sequential(
            OrderedDict(
                conv3d_0a_1x1=unit(config, in_channels, b1a), conv3d_0b_3x3=unit(config, b1a, b1b, (3, 3, 3))
            )
        )
        self.branch_2 = nn.Sequential(
            OrderedDict(
                conv3d_0a_1x1=unit(config, in_channels, b2a), conv3d_0b_3x3=unit(config, b2a, b2b, (3, 3, 3))
            )
        )
        self.branch_3 = nn.Sequential(
            OrderedDict(
                maxpool3d_0a_3x3=InceptionI3DMaxPool3d((3, 3, 3), (1, 1, 1)),
                conv3d_0b_1x1=unit(config, in_channels, b3),
            )
        )
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        branches = (self.branch_0, self.branch_1, self.branch_2, self.branch_3)
        return torch.cat([branch(hidden_state) for branch in branches], dim=1)


class InceptionI3DPooler(nn.Module):
    """The first op of DeepMind's ``Logits`` scope: VALID (2, 7, 7) stride-1 average pool of Mixed_5c.

    Returns one feature vector per time window, (batch, channels, windows, 1, 1) with ``windows = T' - 1`` for the
    T' Mixed_5c time steps; the model averages them over time (the logits conv is linear, so averaging the features
    before it equals DeepMind's averaging of the logits after it).
    """

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        if hidden_state.dtype == torch.bfloat16 and hidden_state.device.type == "cpu":  # no bf16 CPU kernel
            return F.avg_pool3d(hidden_state.float(), kernel_size=LOGITS_POOL, stride=1).to(torch.bfloat16)
        return F.avg_pool3d(hidden_state, kernel_size=LOGITS_POOL, stride=1)


def _check_pixel_values(pixel_values: torch.Tensor, config: InceptionI3DConfig) -> None:
    """Refuse inputs the original cannot classify, instead of DeepMind's silent NaN (T < 9) or squeeze error."""
    if pixel_values.dim() != 5:
        raise ValueError(
            "pixel_values must have shape (batch, frames, channels, height, width), got "
            f"{tuple(pixel_values.shape)}"
        )
    frames, channels, height, width = pixel_values.shape[1:]
    if channels != config.num_channels:
        raise ValueError(
            f"pixel_values has {channels} channels in dim 2 but the model expects config.num_channels="
            f"{config.num_channels}; the layout is (batch, frames, channels, height, width)"
        )
    if frames < MIN_FRAMES:
        raise ValueError(
            f"InceptionI3D needs clips of at least {MIN_FRAMES} frames, got {frames} (pixel_values shape "
            f"{tuple(pixel_values.shape)}): Mixed_5c has ceil(frames / 8) time steps and the (2, 7, 7) logits pool "
            f"needs 2 of them (DeepMind's model returns NaN logits here). Sample num_frames >= {MIN_FRAMES} "
            f"(config.num_frames = {config.num_frames})."
        )
    if not (MIN_SIZE <= height <= MAX_SIZE and MIN_SIZE <= width <= MAX_SIZE):
        raise ValueError(
            f"InceptionI3D needs a height and width between {MIN_SIZE} and {MAX_SIZE} pixels (224 in DeepMind's "
            f"model) so that Mixed_5c is 7x7 for the (2, 7, 7) logits pool; got height {height} and width {width} "
            f"(Mixed_5c would be {math.ceil(height / 32)}x{math.ceil(width / 32)}). Crop to config.image_size = "
            f"{config.image_size}."
        )


class InceptionI3DPreTrainedModel(PreTrainedModel):
    config_class = InceptionI3DConfig
    base_model_prefix = "inception_i3d"
    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InceptionI3DMixedBlock"]

    # An eval-only equivalent of a model that computes the same outputs faster (BatchNorm folded into the
    # convolutions, fused oneDNN kernels): installed by hf_i3d (``inference.accelerated_copy``, which answers None
    # where it does not apply); None where this file is a saved folder's code. ``forward`` runs through it in eval
    # mode without autograd, outside tracing and export, so the fast path needs no extra call; training, gradients
    # and exported graphs always see the plain computation.
    inference_accelerator: ClassVar[Callable | None] = None

    def _accelerated(self) -> nn.Module | None:
        if (
            self.inference_accelerator is None
            or self.training
            or torch.is_grad_enabled()
            or torch.compiler.is_compiling()
            or torch.jit.is_tracing()
        ):
            return None
        return self.inference_accelerator(self)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained`` that also takes zoo names (``"i3d-inception-kinetics400"``) where
        ``hf_i3d`` installed ``InceptionI3DConfig.name_resolver``: a local folder of that name, the zoo's Hub repo,
        or DeepMind's weights converted once into the cache."""
        if cls.config_class.name_resolver is not None:
            pretrained_model_name_or_path = cls.config_class.name_resolver(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained``; a folder saved with its code also maps ``AutoModel`` to the backbone,
        since transformers writes only the saved class into ``auto_map``."""
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoModel": "modeling_inception_i3d.InceptionI3DModel",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Sonnet v1 defaults for training from scratch: ``Unit3D`` kernels from a normal with std 1/sqrt(fan_in)
        truncated at 2 std (``snt.Conv3D``'s ``create_weight_initializer``), BN offset 0 with fresh statistics; the
        logits conv (the only conv with a bias) N(0, ``initializer_range``) with zero bias, the transformers default
        for a new classification head."""
        if isinstance(module, nn.Conv3d):
            if module.bias is None:
                fan_in = module.in_channels * math.prod(module.kernel_size)
                std = 1.0 / math.sqrt(fan_in)
                init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            else:
                init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
                init.zeros_(module.bias)
        elif isinstance(module, InceptionI3DBatchNorm):
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)


class InceptionI3DModel(InceptionI3DPreTrainedModel):
    """The I3D trunk up to Mixed_5c, with the clip features that feed DeepMind's logits conv as ``pooler_output``.

    ``endpoint_names`` lists the original endpoints; with ``output_hidden_states=True`` the output holds one tensor
    per endpoint, in that order, each (batch, channels, frames, height, width)
    (``hidden_states[model.endpoint_names.index("Mixed_4f")]``). Submodules are named after them in lower case.
    """

    endpoint_names = ENDPOINT_NAMES

    def __init__(self, config: InceptionI3DConfig):
        super().__init__(config)
        in_channels = config.num_channels
        for name in self.endpoint_names:
            if name in config.mixed_channels:
                layer = InceptionI3DMixedBlock(config, in_channels, config.mixed_channels[name])
                in_channels = layer.out_channels
            elif name in STEM_POOLS:
                layer = InceptionI3DMaxPool3d(*STEM_POOLS[name])
            else:
                out_channels, kernel_size, stride = STEM_CONVS[name]
                layer = InceptionI3DUnit3D(config, in_channels, out_channels, kernel_size, stride)
                in_channels = out_channels
            self.add_module(name.lower(), layer)
        self.pooler = InceptionI3DPooler()
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
            RGB clips scaled to [-1, 1] (`x / 127.5 - 1`), at least 9 frames of 193..224 pixels (224 normally).

        Returns `last_hidden_state`, the Mixed_5c output of shape (batch, 1024, ceil(T/8), 7, 7); `pooler_output`
        (batch, 1024), the VALID (2, 7, 7) average pool of Mixed_5c averaged over time; and, with
        `output_hidden_states`, the 16 endpoints named in `endpoint_names`.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        accelerated = self._accelerated()
        if accelerated is not None:
            return accelerated(
                pixel_values, output_hidden_states=output_hidden_states, return_dict=return_dict
            )
        _check_pixel_values(pixel_values, self.config)
        hidden_state = pixel_values.permute(0, 2, 1, 3, 4)
        hidden_states = () if output_hidden_states else None
        for name in self.endpoint_names:
            hidden_state = getattr(self, name.lower())(hidden_state)
            if output_hidden_states:
                hidden_states += (hidden_state,)
        pooled = self.pooler(hidden_state).mean(dim=2).flatten(1)
        if not return_dict:
            return tuple(v for v in (hidden_state, pooled, hidden_states) if v is not None)
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden_state, pooler_output=pooled, hidden_states=hidden_states
        )


class InceptionI3DForVideoClassification(InceptionI3DPreTrainedModel):
    """I3D with DeepMind's logits head: VALID (2, 7, 7) average pool -> dropout -> 1x1x1 conv with bias (the
    original ``Logits/Conv3d_0c_1x1``) on every time window -> mean of the logits over time."""

    def __init__(self, config: InceptionI3DConfig):
        super().__init__(config)
        self.inception_i3d = InceptionI3DModel(config)
        self.dropout = nn.Dropout(p=config.dropout_prob)
        self.classifier = nn.Conv3d(config.hidden_size, config.num_labels, kernel_size=1, bias=True)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
            RGB clips scaled to [-1, 1] (`x / 127.5 - 1`), at least 9 frames of 193..224 pixels (224 normally).
            With several views per video, `(batch_size, num_views, num_frames, num_channels, height, width)`: the
            views' logits are merged as `config.average_clips` says (see `merge_view_logits`).
        labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Class indices (cross-entropy) or multi-hot targets (binary cross-entropy), the transformers way.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        accelerated = self._accelerated()
        if accelerated is not None:
            return accelerated(
                pixel_values,
                labels,
                output_hidden_states=output_hidden_states,
                return_dict=return_dict,
                **kwargs,
            )
        num_views = pixel_values.shape[1] if pixel_values.dim() == 6 else None
        if num_views is not None:
            pixel_values = pixel_values.flatten(0, 1)
        chunk = self.config.max_views_per_batch if num_views is not None and not self.training else None
        logits, hidden_states = [], []
        for views in pixel_values.split(chunk) if chunk else (pixel_values,):  # mmaction2's max_testing_views
            outputs = self.inception_i3d(views, output_hidden_states=output_hidden_states, return_dict=True)
            windows = self.inception_i3d.pooler(outputs.last_hidden_state)
            logits.append(self.classifier(self.dropout(windows)).flatten(2).mean(dim=2))
            hidden_states.append(outputs.hidden_states)
        joined = len(logits) > 1 and hidden_states[0] is not None  # views in chunks: put them back together
        logits = torch.cat(logits) if len(logits) > 1 else logits[0]
        hidden_states = tuple(map(torch.cat, zip(*hidden_states))) if joined else hidden_states[0]
        if num_views is not None:
            logits = merge_view_logits(
                logits.view(-1, num_views, logits.shape[-1]),
                self.config.average_clips,
                multi_label=self.config.problem_type == "multi_label_classification",
            )
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        if not return_dict:
            output = (logits,) + ((hidden_states,) if hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=hidden_states)


# Saved models carry this file (and their config's) with ``auto_map`` entries, so a folder written by a plain
# ``save_pretrained`` / ``push_to_hub`` loads with ``trust_remote_code=True`` where hf_i3d is not installed.
InceptionI3DModel.register_for_auto_class("AutoModel")
InceptionI3DForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

__all__ = [
    "InceptionI3DPreTrainedModel",
    "InceptionI3DModel",
    "InceptionI3DForVideoClassification",
]
