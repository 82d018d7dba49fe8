"""Configuration of the I3D ResNet3d family (mmaction2 ``ResNet3d`` backbone + ``I3DHead``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from transformers import PreTrainedConfig

# Block type and number of blocks per stage for each supported depth (mmaction2 ``ResNet3d.arch_settings``).
DEPTH_SETTINGS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
# Default inflation per depth: the I3D map of mmaction2's 2020 R50 configs (which block of each stage gets a
# temporal kernel); every other depth inflates all blocks, as mmaction2's ``ResNet3d`` default ``inflate=(1, 1, 1, 1)``.
DEFAULT_INFLATE: dict[int, int | tuple] = {50: ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))}
# Field names of configs saved before 0.2 (mmaction2's ``I3DHead`` names), read as their current names.
RENAMED_FIELDS = {"dropout_ratio": "dropout_prob", "init_std": "initializer_range"}
INFLATE_STYLES = ("3x1x1", "3x3x3")
# mmcv ``NonLocal3d`` pairwise functions this port implements ('concatenation' is not used by any I3D model).
NON_LOCAL_MODES = ("embedded_gaussian", "dot_product", "gaussian")
# mmcv ``NonLocal3d`` defaults: what an mmaction2 ``non_local_cfg`` leaves out means these.
NON_LOCAL_DEFAULTS: dict = {
    "mode": "embedded_gaussian",
    "sub_sample": False,
    "use_scale": True,
    "reduction": 2,
    "norm_cfg": None,
    "zeros_init": True,
    "std": 0.01,
}


class I3DConfig(PreTrainedConfig):
    r"""Configuration of an I3D ResNet3d video classifier, option for option as mmaction2's ``ResNet3d``/``I3DHead``.

    The defaults are the 2020 I3D-R50 of the mmaction2 model zoo (``i3d_r50_32x2x1_100e_kinetics400_rgb``): stem
    (5, 7, 7) with temporal stride 2, pool1 temporal stride 2, pool2 on, the I3D inflation map, '3x1x1' inflation.
    mmaction2 changed the ``ResNet3d`` defaults in 2021 (PR #939); every published I3D checkpoint uses these.

    Args:
        depth: ResNet depth, one of 18, 34, 50, 101, 152 (BasicBlock for 18/34, Bottleneck otherwise).
        num_channels: input channels (3 for RGB).
        base_channels: width of the stem and of the first stage (64 in every published model).
        num_stages: number of residual stages used (1 to 4).
        conv1_kernel: (t, h, w) kernel of the stem convolution.
        conv1_stride_t: temporal stride of the stem convolution (spatial stride is 2).
        pool1_stride_t: temporal stride of the stem max-pool (kernel (1, 3, 3), spatial stride 2).
        with_pool2: apply a (2, 1, 1) temporal max-pool after the first stage.
        spatial_strides / temporal_strides / dilations: per stage, applied by the first block of the stage.
        inflate: which blocks get a temporal kernel; an int for all blocks, or one entry per stage, each an int for
            all its blocks or one 0/1 per block. Stored normalised as one list of 0/1 per stage. ``None`` (default):
            the I3D map of the published R50 models for depth 50, every block for the other depths.
        inflate_style: '3x1x1' (temporal kernel on the first 1x1 of a bottleneck) or '3x3x3' (on its 3x3);
            BasicBlocks always inflate both convolutions to 3x3x3, as in mmaction2.
        non_local: which blocks end with a non-local block (mmaction2 ``ResNet3d.non_local``): an int for all
            blocks, or one entry per stage, each an int for all its blocks or one 0/1 per block; stored normalised
            as one list of 0/1 per stage like ``inflate``. Default 0: none.
        non_local_cfg: mmaction2's ``non_local_cfg``, the keyword arguments of mmcv's ``NonLocal3d``: ``mode``
            ('embedded_gaussian', 'dot_product' or 'gaussian'), ``sub_sample`` (a (1, 2, 2) max-pool on the keys
            and values), ``use_scale`` (divide the embedded-gaussian logits by sqrt(inter channels)), ``reduction``
            (inter channels = channels // reduction), ``norm_cfg`` (``None`` or ``{"type": "BN3d"}``: a BatchNorm
            after the output convolution, which then has no bias), ``zeros_init`` (start the output BN, or the
            output convolution without a BN, at zero so the block starts as the identity) and ``std`` (normal
            init of the other convolutions). Keys left out take mmcv's defaults; stored with every key filled in.
        frozen_stages: stages to freeze during training (-1: none, 0: the stem, k: the stem and stages 1..k).
        norm_eval: keep every BatchNorm in eval mode during training.
        zero_init_residual: initialise the last BatchNorm of each block to zero (only for training from scratch).
        bn_eps / bn_momentum: BatchNorm epsilon and momentum (PyTorch convention; mmcv's BN3d defaults).
        head_pool_kernel_size: ``None`` (default, mmaction2 ``I3DHead``): the clip feature is the global average of
            the last feature map. A (t, h, w) kernel: pytorchvideo's ``ResNetBasicHead`` with
            ``output_with_global_average``: an ``AvgPool3d`` of that kernel with stride 1, the classifier at every
            window, then the mean over windows; computed as the classifier of the mean window (the same numbers,
            since the classifier is affine). pytorchvideo's ``i3d_r50`` uses (4, 7, 7): on its 8x224x224 training
            clips that is the global average, on 256-pixel test crops the mean of 2x2 overlapping 7x7 windows.
        dropout_prob: dropout before the classifier (mmaction2 ``I3DHead.dropout_ratio``; configs saved with that
            name still load).
        initializer_range: std of the normal initialisation of the classifier (mmaction2 ``I3DHead.init_std``;
            likewise).
        num_frames: clip length the model expects (read by the video-classification pipeline).
        image_size: training crop size (test crops may be larger: the network is fully convolutional).
        average_clips: how the classifier merges several views of a video, as mmaction2's ``average_clips``:
            'prob' (mean softmax, mmaction2's default since Oct 2020) or 'score' (mean logits, the 2020 numbers).
        max_views_per_batch: views of a 6-D input per forward in eval mode (mmaction2's ``max_testing_views``).
        zoo_name: the model-zoo entry this config comes from (its data settings live in ``hf_i3d.zoo``), if any.
    """

    model_type = "i3d"
    # Maps a name given to ``from_pretrained`` (e.g. a zoo name) to what to load; installed by ``hf_i3d`` (its
    # ``hub.resolve_pretrained_name``), None where this file runs as a saved folder's remote code.
    name_resolver: ClassVar[Callable | None] = None

    depth: int = 50
    num_channels: int = 3
    base_channels: int = 64
    num_stages: int = 4
    conv1_kernel: list[int] | tuple[int, ...] = (5, 7, 7)
    conv1_stride_t: int = 2
    pool1_stride_t: int = 2
    with_pool2: bool = True
    spatial_strides: list[int] | tuple[int, ...] = (1, 2, 2, 2)
    temporal_strides: list[int] | tuple[int, ...] = (1, 1, 1, 1)
    dilations: list[int] | tuple[int, ...] = (1, 1, 1, 1)
    inflate: int | list | tuple | None = None
    inflate_style: str = "3x1x1"
    non_local: int | list | tuple = 0
    non_local_cfg: dict | None = None
    frozen_stages: int = -1
    norm_eval: bool = False
    zero_init_residual: bool = False
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    head_pool_kernel_size: list[int] | tuple[int, ...] | None = None
    dropout_prob: float = 0.5
    initializer_range: float = 0.01
    num_frames: int = 32
    image_size: int = 224
    average_clips: str = "prob"
    max_views_per_batch: int | None = 6
    zoo_name: str | None = None

    def __post_init__(self, **kwargs):
        for old, new in RENAMED_FIELDS.items():
            if old in kwargs:
                setattr(self, new, kwargs.pop(old))
        if self.depth not in DEPTH_SETTINGS:
            raise ValueError(f"I3DConfig.depth must be one of {sorted(DEPTH_SETTINGS)}, got {self.depth!r}")
        if not 1 <= self.num_stages <= 4:
            raise ValueError(f"I3DConfig.num_stages must be between 1 and 4, got {self.num_stages!r}")
        if self.inflate_style not in INFLATE_STYLES:
            raise ValueError(
                f"I3DConfig.inflate_style must be one of {INFLATE_STYLES}, got {self.inflate_style!r}"
            )
        self.conv1_kernel = [int(k) for k in self.conv1_kernel]
        if len(self.conv1_kernel) != 3:
            raise ValueError(
                f"I3DConfig.conv1_kernel must have 3 entries (t, h, w), got {self.conv1_kernel!r}"
            )
        for name in ("spatial_strides", "temporal_strides", "dilations"):
            values = [int(v) for v in getattr(self, name)]
            if len(values) < self.num_stages:
                raise ValueError(
                    f"I3DConfig.{name} needs one entry per stage ({self.num_stages}), got {len(values)}: {values}"
                )
            setattr(self, name, values)
        if self.head_pool_kernel_size is not None:
            self.head_pool_kernel_size = [int(k) for k in self.head_pool_kernel_size]
            if len(self.head_pool_kernel_size) != 3 or min(self.head_pool_kernel_size) < 1:
                raise ValueError(
                    "I3DConfig.head_pool_kernel_size must be None or 3 positive ints (t, h, w), got "
                    f"{self.head_pool_kernel_size!r}"
                )
        if self.average_clips not in ("prob", "score"):
            raise ValueError(f"I3DConfig.average_clips must be 'prob' or 'score', got {self.average_clips!r}")
        views = self.max_views_per_batch
        if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
            raise ValueError(f"I3DConfig.max_views_per_batch must be a positive int or None, got {views!r}")
        if self.inflate is None:
            self.inflate = DEFAULT_INFLATE.get(self.depth, 1)
        self.inflate = self._normalise_inflate(self.inflate)
        self.non_local = self._normalise_inflate(self.non_local, "non_local")
        self.non_local_cfg = self._normalise_non_local_cfg(self.non_local_cfg)
        super().__post_init__(**kwargs)

    def _normalise_inflate(self, inflate, name: str = "inflate") -> list[list[int]]:
        """Expand ``inflate`` (or ``non_local``) to one 0/1 per block and stage, as mmaction2's
        ``ResNet3d``/``make_res_layer`` do."""
        stage_blocks = self.stage_blocks
        if isinstance(inflate, int):
            inflate = [inflate] * self.num_stages
        inflate = list(inflate)
        if len(inflate) < self.num_stages:
            raise ValueError(
                f"I3DConfig.{name} needs one entry per stage ({self.num_stages}), got {inflate!r}"
            )
        normalised = []
        for stage, (entry, blocks) in enumerate(zip(inflate[: self.num_stages], stage_blocks)):
            entry = [int(entry)] * blocks if isinstance(entry, int) else [int(v) for v in entry]
            if len(entry) != blocks:
                raise ValueError(
                    f"I3DConfig.{name}[{stage}] has {len(entry)} entries but stage {stage + 1} of a depth-"
                    f"{self.depth} ResNet3d has {blocks} blocks"
                )
            normalised.append([1 if v == 1 else 0 for v in entry])
        return normalised

    @staticmethod
    def _normalise_non_local_cfg(non_local_cfg: dict | None) -> dict:
        """mmaction2's ``non_local_cfg`` with mmcv ``NonLocal3d``'s defaults filled in, checked key by key."""
        given = dict(non_local_cfg or {})
        unknown = sorted(set(given) - set(NON_LOCAL_DEFAULTS) - {"conv_cfg"})
        if unknown:
            raise ValueError(
                f"I3DConfig.non_local_cfg has unknown key(s) {unknown}; known: {sorted(NON_LOCAL_DEFAULTS)}"
            )
        conv_cfg = given.pop("conv_cfg", None)
        if conv_cfg is not None and dict(conv_cfg).get("type") != "Conv3d":
            raise ValueError(f"I3DConfig.non_local_cfg.conv_cfg must be {{'type': 'Conv3d'}}, got {conv_cfg!r}")
        cfg = {**NON_LOCAL_DEFAULTS, **given}
        if cfg["mode"] not in NON_LOCAL_MODES:
            raise ValueError(f"I3DConfig.non_local_cfg.mode must be one of {NON_LOCAL_MODES}, got {cfg['mode']!r}")
        norm_cfg = cfg["norm_cfg"]
        if norm_cfg is not None:
            norm_cfg = dict(norm_cfg)
            if norm_cfg.get("type") not in ("BN3d", "BN") or not norm_cfg.get("requires_grad", True):
                raise ValueError(
                    "I3DConfig.non_local_cfg.norm_cfg must be None or {'type': 'BN3d', 'requires_grad': True}, "
                    f"got {cfg['norm_cfg']!r}"
                )
            cfg["norm_cfg"] = {"type": "BN3d", "requires_grad": True}
        cfg["reduction"] = int(cfg["reduction"])
        if cfg["reduction"] < 1:
            raise ValueError(f"I3DConfig.non_local_cfg.reduction must be >= 1, got {cfg['reduction']!r}")
        for key in ("sub_sample", "use_scale", "zeros_init"):
            cfg[key] = bool(cfg[key])
        cfg["std"] = float(cfg["std"])
        return cfg

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedConfig.from_pretrained`` that also takes zoo names where ``name_resolver`` is installed."""
        if cls.name_resolver is not None:
            pretrained_model_name_or_path = cls.name_resolver(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @property
    def block_type(self) -> str:
        """'basic' (depth 18/34) or 'bottleneck' (depth 50+)."""
        return DEPTH_SETTINGS[self.depth][0]

    @property
    def stage_blocks(self) -> list[int]:
        """Number of blocks of each used stage."""
        return list(DEPTH_SETTINGS[self.depth][1][: self.num_stages])

    @property
    def hidden_sizes(self) -> list[int]:
        """Output channels of the stem and of each stage."""
        expansion = BLOCK_EXPANSION[self.block_type]
        return [self.base_channels] + [self.base_channels * 2**i * expansion for i in range(self.num_stages)]

    @property
    def hidden_size(self) -> int:
        """Channels of the final feature map (the pooled clip feature size)."""
        return self.hidden_sizes[-1]


I3DConfig.register_for_auto_class()  # a saved config carries this file and an ``auto_map`` entry for it

__all__ = ["I3DConfig"]
