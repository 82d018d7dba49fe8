"""The mmaction2 1.2.0 side of a benchmark case, run by ``benchmarks/run.py`` with a reference venv's python.

Builds the unmodified ``Recognizer3D`` (``ResNet3d`` + ``I3DHead``) through mmaction2's registry, loads the shared
mmaction2-format weights strictly, and times the case's step in plain eager PyTorch as mmaction2 runs it:

* forward: ``cls_head(backbone(x))`` in eval mode under ``torch.inference_mode`` (the raw logits, docs/mmaction2-port.md §9);
* train step: ``Recognizer3D.loss`` (backbone, head, ``CrossEntropyLoss``) -> ``backward`` -> ``SGD.step`` ->
  ``zero_grad``, with the SGD of the I3D configs (lr 0.01, momentum 0.9, weight decay 1e-4) as mmengine's
  ``OptimWrapper`` builds it (``torch.optim.SGD`` with default options). Gradient clipping of the configs is left
  out on both sides.

Never imported by hf_i3d or its tests; it runs only in the reference environment (see benchmarks/README.md).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _protocol import keep_freed_memory, serve  # noqa: E402

SGD_ARGS = dict(lr=0.01, momentum=0.9, weight_decay=1e-4)
# The 2020 I3D-R50 of the model zoo (i3d_r50_32x2x1_100e_kinetics400_rgb), with mmaction2 1.x's names.
BACKBONE = dict(
    type="ResNet3d",
    pretrained2d=False,
    pretrained=None,
    depth=50,
    conv1_kernel=(5, 7, 7),
    conv1_stride_t=2,
    pool1_stride_t=2,
    with_pool2=True,
    inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
    inflate_style="3x1x1",
    zero_init_residual=False,
    norm_eval=False,
)
CLS_HEAD = dict(
    type="I3DHead",
    num_classes=400,
    in_channels=2048,
    spatial_type="avg",
    dropout_ratio=0.5,
    init_std=0.01,
    average_clips="prob",
)

# The 30-view test of the I3D config: its data preprocessor and test pipeline (decord, 10 clips x 3 crops).
TEST_PREPROCESSOR = dict(
    type="ActionDataPreprocessor",
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    format_shape="NCTHW",
)
TEST_PIPELINE = (
    dict(type="DecordInit"),
    dict(type="SampleFrames", clip_len=32, frame_interval=2, num_clips=10, test_mode=True),
    dict(type="DecordDecode"),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
)


def import_mmaction() -> tuple:
    """Import mmaction2 1.2.0 with the stubs its wheel needs (tests/fixtures/mmaction/README.md, docs/mmaction2-port.md §9)."""
    drn = types.ModuleType("mmaction.models.localizers.drn")
    drn_drn = types.ModuleType("mmaction.models.localizers.drn.drn")

    class DRN:  # placeholder: the 1.2.0 wheel lacks the drn package that localizers/__init__.py imports
        pass

    drn.DRN = drn_drn.DRN = DRN
    drn.drn = drn_drn
    sys.modules[drn.__name__] = drn
    sys.modules[drn_drn.__name__] = drn_drn
    try:
        import transformers  # noqa: F401
    except ImportError:
        pass
    else:  # multimodal imports APIs that transformers 5 removed
        sys.modules["mmaction.models.multimodal"] = types.ModuleType("mmaction.models.multimodal")

    import mmaction
    import mmaction.models  # noqa: F401
    import mmcv
    import mmengine
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    versions = dict(
        side="mmaction2",
        mmaction=mmaction.__version__,
        mmcv=mmcv.__version__,
        mmengine=mmengine.__version__,
        torch=str(torch.__version__),
    )
    return MODELS, versions


def build_model(spec: dict, **extra) -> torch.nn.Module:
    """The ``Recognizer3D`` with the shared weights (loaded strictly)."""
    model = MODELS.build(dict(type="Recognizer3D", backbone=dict(BACKBONE), cls_head=dict(CLS_HEAD), **extra))
    checkpoint = torch.load(spec["files"]["weights"], map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model


def build_video_test(spec: dict):
    """The 30-view test of one video as mmaction2 runs it: ``inference_recognizer`` with the I3D config's test
    pipeline (DecordInit -> SampleFrames(32, 2, 10, test_mode) -> DecordDecode -> Resize(-1, 256) ->
    ThreeCrop(256) -> FormatShape NCTHW -> PackActionInputs), ``ActionDataPreprocessor`` normalisation, all 30
    views in one batch (no ``max_testing_views``), 'prob' averaging. The check is ``pred_score``."""
    from mmaction.apis import inference_recognizer
    from mmengine.dataset import Compose

    model = build_model(spec, data_preprocessor=dict(TEST_PREPROCESSOR)).eval()
    pipeline = Compose([dict(step) for step in TEST_PIPELINE])
    video = spec["files"]["input"]
    scores = {}

    def step():
        scores["last"] = inference_recognizer(model, video, test_pipeline=pipeline).pred_score

    return step, lambda: {"scores": scores["last"]}


def build_train_clips(videos: list[str]):
    """16 training clips through mmaction2's own pipeline (``bench_data_pipeline._mmaction``)."""
    from bench_data_pipeline import _mmaction, clips_step

    return clips_step(lambda: _mmaction(videos))


def build(spec: dict):
    if spec["model"] != "i3d_r50" or spec["variant"] not in ("eager", "eager+malloc"):
        raise ValueError(
            f"the mmaction2 side has only the eager I3D-R50, not {spec['model']}/{spec['variant']}"
        )
    if spec["variant"] == "eager+malloc":  # the allocator setting of our '+malloc' variants, for comparison
        assert keep_freed_memory()
    if spec["task"] == "video_test":
        return build_video_test(spec)
    if spec["task"] == "train_clips":
        return build_train_clips(spec["files"]["input"].split(os.pathsep))
    model = build_model(spec)
    inputs = torch.load(spec["files"]["input"], weights_only=True).contiguous()  # NCTHW
    if spec["task"] == "forward":
        model.eval()
        logits = {}

        def step():
            with torch.inference_mode():
                logits["last"] = model.cls_head(model.backbone(inputs))

        return step, lambda: {"logits": logits["last"]}
    if spec["task"] == "train_step":
        from mmaction.structures import ActionDataSample

        labels = torch.load(spec["files"]["labels"], weights_only=True)
        data_samples = [ActionDataSample().set_gt_label(int(label)) for label in labels]
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), **SGD_ARGS)
        first = {}

        def step():
            if not first:
                torch.manual_seed(0)  # the same dropout mask as our first step
            # Recognizer3D.extract_feat takes (batch, num_clips, C, T, H, W).
            loss = model.loss(inputs.unsqueeze(1), data_samples)["loss_cls"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if not first:
                first["loss"] = loss.detach()
                first["stem_weight"] = model.backbone.conv1.conv.weight.detach().clone()
                first["classifier_weight"] = model.cls_head.fc_cls.weight.detach().clone()

        return step, lambda: first
    raise ValueError(f"unknown task {spec['task']!r}")


if __name__ == "__main__":
    MODELS, versions = import_mmaction()
    serve(build, versions)
