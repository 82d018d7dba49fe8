"""I3D ResNet3d video classifiers: a port of mmaction2's ``ResNet3d`` backbone and ``I3DHead``.

Follows ``mmaction/models/backbones/resnet3d.py`` (``BasicBlock3d``, ``Bottleneck3d``, ``ResNet3d``) and
``mmaction/models/heads/i3d_head.py`` of mmaction2 v0.5.0 .. 1.2.0, with the 2020 stem of the published checkpoints.
Every convolution is conv (no bias) -> BatchNorm3d -> optional ReLU, like mmcv's ``ConvModule``. Bottlenecks are
'pytorch' style (the spatial stride sits on the 3x3 convolution). The read order is top to bottom: conv layer ->
blocks -> stage -> stem -> pretrained base -> ``I3DModel`` -> ``I3DForVideoClassification``.
"""

from __future__ import annotations

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

from .configuration_i3d import BLOCK_EXPANSION, I3DConfig


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value, value)


def centre_tap_only(frames: int, kernel_t: int, stride_t: int, padding_t: int, dilation_t: int) -> bool:
    """Whether a temporal kernel reads real data with its centre tap only: on a one-frame input an odd kernel with
    'same' temporal padding (stride and dilation 1) meets zero padding with every other tap."""
    return (
        frames == 1
        and kernel_t > 1
        and kernel_t % 2 == 1
        and padding_t == kernel_t // 2
        and stride_t == 1
        and dilation_t == 1
    )


def centre_tap(weight: torch.Tensor, padding: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The (1, k, k) kernel and padding that compute what ``weight`` computes where :func:`centre_tap_only` holds."""
    kernel_t = weight.shape[2]
    return weight[:, :, kernel_t // 2 : kernel_t // 2 + 1], (0, *padding[1:])


def merge_view_logits(
    view_logits: torch.Tensor, mode: str = "prob", *, multi_label: bool = False
) -> torch.Tensor:
    """Per-video logits ``(B, K)`` from per-view logits ``(B, V, K)``, as mmaction2 ``BaseHead.average_clip`` averages
    views: 'score' is the mean logits; 'prob' the log of the mean softmax (or the logit of the mean sigmoid for
    multi-label), so the usual activation of the result gives mmaction2's averaged probabilities."""
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


class I3DConv3d(nn.Conv3d):
    """``nn.Conv3d`` that skips the temporal taps which can only meet zero padding: on a one-frame input a
    (3, k, k) kernel with temporal padding 1 reads real data with its centre tap only, so it runs as (1, k, k) with
    the centre slice of the weight: the same numbers up to float rounding (the skipped products are exact zeros) for
    a third of the work. With the 2020 stem that is every inflated convolution of stages 2-4 on 8-frame clips.
    Gradients reach only the centre slice, as before.
    """

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if (
            input.dim() == 5  # (C, T, H, W) unbatched input has its frames at dim 1
            and self.padding_mode == "zeros"
            and centre_tap_only(
                input.shape[2], self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0]
            )
        ):
            centre, padding = centre_tap(weight, self.padding)
            return F.conv3d(input, centre, bias, self.stride, padding, self.dilation, self.groups)
        return super()._conv_forward(input, weight, bias)


class I3DConvLayer(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> optional ReLU: mmcv ``ConvModule`` with ``BN3d``."""

    def __init__(
        self,
        config: I3DConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        dilation: int | tuple[int, int, int] = 1,
        activation: bool = True,
    ):
        super().__init__()
        self.conv = I3DConv3d(
            in_channels,
            out_channels,
            kernel_size=_triple(kernel_size),
            stride=_triple(stride),
            padding=_triple(padding),
            dilation=_triple(dilation),
            bias=False,
        )
        self.norm = nn.BatchNorm3d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.activation = nn.ReLU(inplace=True) if activation else nn.Identity()

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(hidden_state)))


class I3DShortCut(I3DConvLayer):
    """1x1x1 projection of the residual (mmaction2 ``downsample``): conv with the block's stride, BN, no ReLU."""

    def __init__(self, config: I3DConfig, in_channels: int, out_channels: int, stride: tuple[int, int, int]):
        super().__init__(config, in_channels, out_channels, kernel_size=1, stride=stride, activation=False)


class I3DNonLocalBlock(nn.Module):
    """mmcv ``NonLocal3d`` as mmaction2's ``ResNet3d`` appends it to a block (``non_local_cfg``):
    ``x + norm(conv_out(f(theta(x), phi(x)) @ g(x)))`` over all T*H*W positions.

    ``g``, ``theta`` and ``phi`` are 1x1x1 convolutions with bias to ``channels // reduction`` channels; 'gaussian'
    has no ``theta``/``phi`` and compares the input itself. The pairwise function ``f`` is a softmax of the dot
    products ('embedded_gaussian', divided by sqrt(inter channels) first with ``use_scale``; 'gaussian', never
    scaled) or the dot products divided by the number of keys ('dot_product'). ``sub_sample`` max-pools keys and
    values (``g`` and ``phi``) by (1, 2, 2). ``conv_out`` has a bias only without a BatchNorm. Follows
    ``mmcv/cnn/bricks/non_local.py`` (mmcv 2.1.0) operation for operation.
    """

    def __init__(self, config: I3DConfig, channels: int):
        super().__init__()
        cfg = config.non_local_cfg
        self.mode = cfg["mode"]
        self.use_scale = cfg["use_scale"]
        self.channels = channels
        self.inter_channels = max(channels // cfg["reduction"], 1)
        self.g = nn.Conv3d(channels, self.inter_channels, kernel_size=1)
        self.g.init_std = cfg["std"]
        if self.mode != "gaussian":
            self.theta = nn.Conv3d(channels, self.inter_channels, kernel_size=1)
            self.phi = nn.Conv3d(channels, self.inter_channels, kernel_size=1)
            self.theta.init_std = self.phi.init_std = cfg["std"]
        else:
            self.theta = self.phi = None
        self.pool = nn.MaxPool3d(kernel_size=(1, 2, 2)) if cfg["sub_sample"] else None
        with_norm = cfg["norm_cfg"] is not None
        self.conv_out = nn.Conv3d(self.inter_channels, channels, kernel_size=1, bias=not with_norm)
        self.norm = (
            nn.BatchNorm3d(channels, eps=config.bn_eps, momentum=config.bn_momentum) if with_norm else None
        )
        # mmcv ``NonLocal3d.init_weights(std, zeros_init)``: the block starts as the identity with ``zeros_init``
        last = self.norm if with_norm else self.conv_out
        last.zero_init = cfg["zeros_init"]
        last.init_std = cfg["std"]

    def _pooled(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return hidden_state if self.pool is None else self.pool(hidden_state)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        batch = hidden_state.shape[0]
        values = self._pooled(self.g(hidden_state)).reshape(batch, self.inter_channels, -1).transpose(1, 2)
        if self.mode == "gaussian":
            queries = hidden_state.reshape(batch, self.channels, -1).transpose(1, 2)
            keys = self._pooled(hidden_state).reshape(batch, self.channels, -1)
        else:
            queries = self.theta(hidden_state).reshape(batch, self.inter_channels, -1).transpose(1, 2)
            keys = self._pooled(self.phi(hidden_state)).reshape(batch, self.inter_channels, -1)
        weights = torch.matmul(queries, keys)
        if self.mode == "dot_product":
            weights = weights / weights.shape[-1]
        else:
            if self.mode == "embedded_gaussian" and self.use_scale:
                weights = weights / queries.shape[-1] ** 0.5
            weights = weights.softmax(dim=-1)
        context = torch.matmul(weights, values).transpose(1, 2).reshape(
            batch, self.inter_channels, *hidden_state.shape[2:]
        )
        out = self.conv_out(context)
        if self.norm is not None:
            out = self.norm(out)
        return hidden_state + out


class I3DBasicLayer(GradientCheckpointingLayer):
    """mmaction2 ``BasicBlock3d``: two 3x3 convolutions, both 3x3x3 when inflated; the stride is on the first."""

    expansion = 1

    def __init__(
        self,
        config: I3DConfig,
        in_channels: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        dilation: int = 1,
        inflate: bool = True,
        non_local: bool = False,
    ):
        super().__init__()
        kernel_t, pad_t = (3, 1) if inflate else (1, 0)
        self.conv1 = I3DConvLayer(
            config,
            in_channels,
            planes,
            kernel_size=(kernel_t, 3, 3),
            stride=(temporal_stride, spatial_stride, spatial_stride),
            padding=(pad_t, dilation, dilation),
            dilation=(1, dilation, dilation),
        )
        self.conv2 = I3DConvLayer(
            config, planes, planes, kernel_size=(kernel_t, 3, 3), padding=(pad_t, 1, 1), activation=False
        )
        self.conv2.norm.zero_init = config.zero_init_residual
        self.shortcut = _make_shortcut(config, in_channels, planes, spatial_stride, temporal_stride)
        self.activation = nn.ReLU(inplace=True)
        self.non_local = I3DNonLocalBlock(config, planes) if non_local else None

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        residual = hidden_state if self.shortcut is None else self.shortcut(hidden_state)
        hidden_state = self.conv2(self.conv1(hidden_state))
        hidden_state = self.activation(hidden_state + residual)
        return hidden_state if self.non_local is None else self.non_local(hidden_state)


class I3DBottleneckLayer(GradientCheckpointingLayer):
    """mmaction2 ``Bottleneck3d`` ('pytorch' style): 1x1 -> 3x3 (strided) -> 1x1 expanding by 4.

    Inflated with '3x1x1' the first 1x1 becomes 3x1x1; with '3x3x3' the 3x3 becomes 3x3x3.
    """

    expansion = 4

    def __init__(
        self,
        config: I3DConfig,
        in_channels: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        dilation: int = 1,
        inflate: bool = True,
        non_local: bool = False,
    ):
        super().__init__()
        conv1_t = 3 if inflate and config.inflate_style == "3x1x1" else 1
        conv2_t = 3 if inflate and config.inflate_style == "3x3x3" else 1
        self.conv1 = I3DConvLayer(
            config, in_channels, planes, kernel_size=(conv1_t, 1, 1), padding=((conv1_t - 1) // 2, 0, 0)
        )
        self.conv2 = I3DConvLayer(
            config,
            planes,
            planes,
            kernel_size=(conv2_t, 3, 3),
            stride=(temporal_stride, spatial_stride, spatial_stride),
            padding=((conv2_t - 1) // 2, dilation, dilation),
            dilation=(1, dilation, dilation),
        )
        self.conv3 = I3DConvLayer(config, planes, planes * self.expansion, kernel_size=1, activation=False)
        self.conv3.norm.zero_init = config.zero_init_residual
        self.shortcut = _make_shortcut(
            config, in_channels, planes * self.expansion, spatial_stride, temporal_stride
        )
        self.activation = nn.ReLU(inplace=True)
        self.non_local = I3DNonLocalBlock(config, planes * self.expansion) if non_local else None

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        residual = hidden_state if self.shortcut is None else self.shortcut(hidden_state)
        hidden_state = self.conv3(self.conv2(self.conv1(hidden_state)))
        hidden_state = self.activation(hidden_state + residual)
        return hidden_state if self.non_local is None else self.non_local(hidden_state)


def _make_shortcut(
    config: I3DConfig, in_channels: int, out_channels: int, spatial_stride: int, temporal_stride: int
) -> I3DShortCut | None:
    """A projection when the spatial stride or the width changes; the temporal stride alone does not trigger one
    (mmaction2 ``ResNet3d.make_res_layer``)."""
    if spatial_stride == 1 and in_channels == out_channels:
        return None
    return I3DShortCut(
        config, in_channels, out_channels, stride=(temporal_stride, spatial_stride, spatial_stride)
    )


BLOCK_CLASSES = {"basic": I3DBasicLayer, "bottleneck": I3DBottleneckLayer}


class I3DStage(nn.Module):
    """One residual stage (mmaction2 ``layerN``); only its first block strides or projects."""

    def __init__(self, config: I3DConfig, stage_index: int, in_channels: int):
        super().__init__()
        block_class = BLOCK_CLASSES[config.block_type]
        planes = config.base_channels * 2**stage_index
        inflate = config.inflate[stage_index]
        non_local = config.non_local[stage_index]
        dilation = config.dilations[stage_index]
        blocks = []
        for block_index in range(config.stage_blocks[stage_index]):
            first = block_index == 0
            blocks.append(
                block_class(
                    config,
                    in_channels if first else planes * block_class.expansion,
                    planes,
                    spatial_stride=config.spatial_strides[stage_index] if first else 1,
                    temporal_stride=config.temporal_strides[stage_index] if first else 1,
                    dilation=dilation,
                    inflate=inflate[block_index] == 1,
                    non_local=non_local[block_index] == 1,
                )
            )
        self.layers = nn.ModuleList(blocks)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden_state = layer(hidden_state)
        return hidden_state


class I3DStem(nn.Module):
    """mmaction2 ``conv1`` + ``maxpool``: a (t, 7, 7) convolution with stride (conv1_stride_t, 2, 2), then a
    (1, 3, 3) max-pool with stride (pool1_stride_t, 2, 2)."""

    def __init__(self, config: I3DConfig):
        super().__init__()
        kernel = tuple(config.conv1_kernel)
        self.conv = I3DConvLayer(
            config,
            config.num_channels,
            config.base_channels,
            kernel_size=kernel,
            stride=(config.conv1_stride_t, 2, 2),
            padding=tuple((k - 1) // 2 for k in kernel),
        )
        self.pool = nn.MaxPool3d(
            kernel_size=(1, 3, 3), stride=(config.pool1_stride_t, 2, 2), padding=(0, 1, 1)
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(pixel_values))


class I3DPreTrainedModel(PreTrainedModel):
    config_class = I3DConfig
    base_model_prefix = "i3d"
    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True
    _no_split_modules = ["I3DBasicLayer", "I3DBottleneckLayer"]

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
        """``PreTrainedModel.from_pretrained`` that also takes zoo names (``"i3d-r50-kinetics400"``, aliases) where
        ``hf_i3d`` installed ``I3DConfig.name_resolver``: a local folder of that name, the zoo's Hub repo, or the
        original checkpoint converted once into the cache."""
        if cls.config_class.name_resolver is not None:
            pretrained_model_name_or_path = cls.config_class.name_resolver(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained``; a folder saved with its code also maps ``AutoModel`` to the backbone,
        since transformers writes only the saved class into ``auto_map``."""
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoModel": "modeling_i3d.I3DModel",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """mmaction2 initialisation from scratch: Kaiming-normal (fan_out) convolutions, BN weight 1 / bias 0 (0 / 0 for
        the last BN of a block when ``zero_init_residual``), and N(0, ``initializer_range``) classifier with zero bias."""
        if isinstance(module, nn.Conv3d):
            if getattr(module, "zero_init", False):  # a non-local block's output conv without BN (zeros_init)
                init.zeros_(module.weight)
            elif getattr(module, "init_std", None) is not None:  # non-local g/theta/phi (mmcv normal_init)
                init.normal_(module.weight, mean=0.0, std=module.init_std)
            else:
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm3d):
            if getattr(module, "zero_init", False):
                init.zeros_(module.weight)
            elif getattr(module, "init_std", None) is not None:  # non-local output BN without zeros_init
                init.normal_(module.weight, mean=0.0, std=module.init_std)
            else:
                init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            if module.num_batches_tracked is not None:
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)


def _check_pixel_values(pixel_values: torch.Tensor, config: I3DConfig) -> None:
    if pixel_values.dim() != 5:
        raise ValueError(
            "pixel_values must have shape (batch, frames, channels, height, width), or (batch, views, frames, "
            f"channels, height, width) for the classification model, got {tuple(pixel_values.shape)}"
        )
    if pixel_values.shape[2] != config.num_channels:
        raise ValueError(
            f"pixel_values has {pixel_values.shape[2]} channels in dim 2 but the model expects "
            f"config.num_channels={config.num_channels}; the layout is (batch, frames, channels, height, width)"
        )


class I3DModel(I3DPreTrainedModel):
    """The ResNet3d backbone with a global average pool: clip features for classification or extraction."""

    def __init__(self, config: I3DConfig):
        super().__init__(config)
        self.stem = I3DStem(config)
        in_channels = config.base_channels
        stages = []
        for stage_index in range(config.num_stages):
            stage = I3DStage(config, stage_index, in_channels)
            stages.append(stage)
            in_channels = config.base_channels * 2**stage_index * BLOCK_EXPANSION[config.block_type]
        self.stages = nn.ModuleList(stages)
        self.pool2 = (
            nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1)) if config.with_pool2 else nn.Identity()
        )
        self.pooler = nn.AdaptiveAvgPool3d((1, 1, 1))
        # pytorchvideo ``ResNetBasicHead``: a stride-1 window average before the global one (head_pool_kernel_size)
        self.window_pool = (
            nn.AvgPool3d(tuple(config.head_pool_kernel_size), stride=(1, 1, 1))
            if config.head_pool_kernel_size is not None
            else nn.Identity()
        )
        self.post_init()

    def train(self, mode: bool = True) -> I3DModel:
        """Switch modes, keeping frozen stages and (with ``norm_eval``) every BatchNorm in eval, as mmaction2 does."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.config.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm3d):
                    module.eval()
        return self

    def _freeze_stages(self) -> None:
        """``frozen_stages = k >= 0`` puts the stem and stages 1..k in eval mode without gradients."""
        if self.config.frozen_stages < 0:
            return
        frozen = [self.stem] + list(self.stages[: self.config.frozen_stages])
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def post_init(self) -> None:
        super().post_init()
        self._freeze_stages()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
            Normalised clips, as produced by `I3DVideoProcessor`.

        Returns `last_hidden_state` of shape (batch, channels, frames', height', width'), `pooler_output` of shape
        (batch, channels) and, with `output_hidden_states`, the stem output followed by the output of each stage.
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
        hidden_state = self.stem(pixel_values.permute(0, 2, 1, 3, 4))
        hidden_states = (hidden_state,) if output_hidden_states else None
        for stage_index, stage in enumerate(self.stages):
            checkpointed = getattr(stage.layers[0], "gradient_checkpointing", False)  # the fast copy has none
            if checkpointed and torch.is_grad_enabled() and not hidden_state.requires_grad:
                # behind frozen layers the input carries no gradient, and reentrant checkpointing would then cut this
                # stage's parameters off from the loss; a leaf that asks for one keeps them connected
                hidden_state.requires_grad_()
            hidden_state = stage(hidden_state)
            if output_hidden_states:
                hidden_states += (hidden_state,)
            if stage_index == 0:
                hidden_state = self.pool2(hidden_state)
        pooled = self.pooler(self.window_pool(hidden_state)).flatten(1)
        if not return_dict:
            return tuple(v for v in (hidden_state, pooled, hidden_states) if v is not None)
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden_state, pooler_output=pooled, hidden_states=hidden_states
        )


class I3DForVideoClassification(I3DPreTrainedModel):
    """I3D with mmaction2's ``I3DHead``: global average pool -> dropout -> linear, giving raw logits per clip."""

    def __init__(self, config: I3DConfig):
        super().__init__(config)
        self.i3d = I3DModel(config)
        self.dropout = nn.Dropout(p=config.dropout_prob) if config.dropout_prob > 0 else nn.Identity()
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
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
            Normalised clips, as produced by `I3DVideoProcessor`. With several views per video,
            `(batch_size, num_views, num_frames, num_channels, height, width)`: the views' logits are merged as
            `config.average_clips` says ('prob': log of the averaged softmax, 'score': mean logits; see
            `merge_view_logits`) and `hidden_states` are per view.
        labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Class indices (cross-entropy) or multi-hot targets (binary cross-entropy), the transformers way.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        accelerated = self._accelerated()
        if accelerated is not None:
            return accelerated(
                pixel_values, labels, output_hidden_states=output_hidden_states, return_dict=return_dict, **kwargs
            )
        num_views = pixel_values.shape[1] if pixel_values.dim() == 6 else None
        if num_views is not None:
            pixel_values = pixel_values.flatten(0, 1)
        chunk = self.config.max_views_per_batch if num_views is not None and not self.training else None
        logits, hidden_states = [], []
        for views in pixel_values.split(chunk) if chunk else (pixel_values,):  # mmaction2's max_testing_views
            outputs = self.i3d(views, output_hidden_states=output_hidden_states, return_dict=True)
            logits.append(self.classifier(self.dropout(outputs.pooler_output)))
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
I3DModel.register_for_auto_class("AutoModel")
I3DForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

__all__ = [
    "I3DPreTrainedModel",
    "I3DModel",
    "I3DForVideoClassification",
    "I3DNonLocalBlock",
    "merge_view_logits",
]
