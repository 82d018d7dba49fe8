"""Configuration of DeepMind's Inception-v1 I3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", 2017)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import ClassVar

from transformers import PreTrainedConfig

# The named endpoints of DeepMind's ``InceptionI3d`` (kinetics-i3d ``i3d.py``, ``VALID_ENDPOINTS``), in order, up to
# Mixed_5c; ``InceptionI3DModel`` returns one hidden state per name with ``output_hidden_states=True``.
ENDPOINT_NAMES: tuple[str, ...] = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)

# Output channels of the branches of each Mixed (Inception) block: [b0, b1a, b1b, b2a, b2b, b3], where Branch_1 and
# Branch_2 are a 1x1x1 reduction (b1a, b2a) followed by a 3x3x3 convolution, and Branch_3 is a 3x3x3 max-pool
# followed by a 1x1x1 convolution. The block output concatenates b0 + b1b + b2b + b3 channels.
MIXED_CHANNELS: dict[str, list[int]] = {
    "Mixed_3b": [64, 96, 128, 16, 32, 32],
    "Mixed_3c": [128, 128, 192, 32, 96, 64],
    "Mixed_4b": [192, 96, 208, 16, 48, 64],
    "Mixed_4c": [160, 112, 224, 24, 64, 64],
    "Mixed_4d": [128, 128, 256, 24, 64, 64],
    "Mixed_4e": [112, 144, 288, 32, 64, 64],
    "Mixed_4f": [256, 160, 320, 32, 128, 128],
    "Mixed_5b": [256, 160, 320, 32, 128, 128],
    "Mixed_5c": [384, 192, 384, 48, 128, 128],
}


class InceptionI3DConfig(PreTrainedConfig):
    r"""Configuration of the original I3D: an inflated Inception-v1 with DeepMind's logits head.

    The defaults are DeepMind's RGB Kinetics-400 model (kinetics-i3d ``i3d.py``, ``InceptionI3d``): 64-frame 224x224
    clips in [-1, 1], Sonnet-v1 BatchNorm without scale (eps 1e-3, decay 0.999), 400 classes. Labels default to the
    generic ``LABEL_i`` names; the DeepMind converter sets the Kinetics-400 names.

    Args:
        num_channels: input channels (3 for RGB).
        num_frames: clip length the model expects (read by the video-classification pipeline). Must be >= 9 at run
            time so that Mixed_5c has the two time steps the (2, 7, 7) logits pool needs.
        image_size: crop size (224). Any height/width from 193 to 224 gives the 7x7 Mixed_5c grid the head needs.
        mixed_channels: the branch widths ``[b0, b1a, b1b, b2a, b2b, b3]`` of each of the nine Mixed blocks.
        dropout_prob: dropout before the logits convolution (DeepMind trained with keep probability 0.5).
        bn_eps: BatchNorm epsilon (Sonnet v1 ``snt.BatchNorm`` default 1e-3).
        bn_momentum: BatchNorm momentum in the PyTorch convention (0.001 = Sonnet decay 0.999; training only).
        initializer_range: std of the normal initialisation of a new classifier (e.g. for fine-tuning).
        average_clips: how the classifier merges several views of a video: 'prob' (mean softmax) or 'score' (mean
            logits), as mmaction2's ``average_clips``.
        max_views_per_batch: eval mode runs the views of a 6-D input this many at a time (mmaction2's
            ``max_testing_views``): the memory of a few views, the one-batch logits up to rounding; None: one batch.
        zoo_name: the model-zoo entry this config comes from (its data settings live in ``hf_i3d.zoo``), if any.
    """

    model_type = "inception_i3d"
    # Maps a name given to ``from_pretrained`` (e.g. a zoo name) to what to load; installed by ``hf_i3d`` (its
    # ``hub.resolve_pretrained_name``), None where this file runs as a saved folder's remote code.
    name_resolver: ClassVar[Callable | None] = None
    endpoint_names = ENDPOINT_NAMES

    num_channels: int = 3
    num_frames: int = 64
    image_size: int = 224
    mixed_channels: dict[str, list[int]] = field(
        default_factory=lambda: {k: list(v) for k, v in MIXED_CHANNELS.items()}
    )
    dropout_prob: float = 0.5
    bn_eps: float = 1e-3
    bn_momentum: float = 0.001
    initializer_range: float = 0.02
    average_clips: str = "prob"
    max_views_per_batch: int | None = 6
    zoo_name: str | None = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedConfig.from_pretrained`` that also takes zoo names where ``name_resolver`` is installed."""
        if cls.name_resolver is not None:
            pretrained_model_name_or_path = cls.name_resolver(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def __post_init__(self, **kwargs):
        if self.average_clips not in ("prob", "score"):
            raise ValueError(
                f"InceptionI3DConfig.average_clips must be 'prob' or 'score', got {self.average_clips!r}"
            )
        views = self.max_views_per_batch
        if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
            raise ValueError(f"InceptionI3DConfig.max_views_per_batch must be a positive int or None, got {views!r}")
        names = [name for name in ENDPOINT_NAMES if name.startswith("Mixed_")]
        if sorted(self.mixed_channels) != sorted(names):
            raise ValueError(
                f"InceptionI3DConfig.mixed_channels must have exactly the keys {names}, got {sorted(self.mixed_channels)}"
            )
        channels = {}
        for name in names:
            widths = [int(w) for w in self.mixed_channels[name]]
            if len(widths) != 6 or min(widths) < 1:
                raise ValueError(
                    f"InceptionI3DConfig.mixed_channels[{name!r}] must be 6 positive widths "
                    f"[b0, b1a, b1b, b2a, b2b, b3], got {self.mixed_channels[name]!r}"
                )
            channels[name] = widths
        self.mixed_channels = channels
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        """Channels of Mixed_5c, i.e. of the pooled clip features (1024)."""
        b0, _, b1, _, b2, b3 = self.mixed_channels["Mixed_5c"]
        return b0 + b1 + b2 + b3


InceptionI3DConfig.register_for_auto_class()  # a saved config carries this file and an ``auto_map`` entry for it

__all__ = ["InceptionI3DConfig", "ENDPOINT_NAMES", "MIXED_CHANNELS"]
