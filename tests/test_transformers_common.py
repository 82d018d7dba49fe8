"""transformers' own common tests against both model families and the video processor.

``ModelTesterMixin``, ``ConfigTester`` and ``VideoProcessingTestMixin`` run as transformers runs them for its models,
on three configurations (R18 with basic blocks, R50 with bottlenecks inflated 3x3x3, the Inception I3D) and on
``I3DVideoProcessor``. The mixins are not in the transformers wheel: they are taken from the sdist of the installed
version (``pip download`` once, cached under ``$HF_I3D_CACHE`` or ``~/.cache/hf_i3d``) and imported as a package.
Three modules they import are missing from the sdist; the package gets stand-ins: ``GenerationTesterMixin`` is empty
(these models do not generate), ``config_common_kwargs`` sets every common ``PreTrainedConfig`` field to a
non-default value, and ``ExportTesterMixin`` is this project's own ``torch.export`` check (the exported program, with a
dynamic batch and, where the family allows, dynamic frames and size, gives the eager outputs).

Skipped, as transformers' ``tests/models/resnet/test_modeling_resnet.py`` skips them for ResNet (a CNN without
embeddings, attention or text): ``test_inputs_embeds``, ``test_model_get_set_embeddings``,
``test_feed_forward_chunking``, and the attention tests through ``has_attentions = False``. ResNet also replaces
``test_hidden_states_output`` and ``test_initialization`` with versions for feature maps and convolutions; so does this
file. Tests that need a GPU or a package not installed here skip themselves, as they do in transformers' CI.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from torch import nn

from hf_i3d import (
    I3DConfig,
    I3DForVideoClassification,
    I3DModel,
    I3DVideoProcessor,
    InceptionI3DConfig,
    InceptionI3DForVideoClassification,
    InceptionI3DModel,
)
from hf_i3d.video_processing_i3d import I3DVideoProcessorKwargs

PACKAGE = "transformers_common_tests"


def _cache_root() -> Path:
    base = Path(os.environ.get("HF_I3D_CACHE", Path.home() / ".cache" / "hf_i3d"))
    return base / f"transformers-{transformers.__version__}-tests"


def _fetch_common_tests(root: Path) -> None:
    """The top-level ``tests/*.py`` of the transformers sdist of the installed version, as package ``PACKAGE``
    (written to a temporary folder, then moved into place)."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*command, f"transformers=={transformers.__version__}", "-d", tmp], check=True)
        [sdist] = Path(tmp).glob("transformers-*.tar.gz")
        staging = Path(tmp) / PACKAGE
        staging.mkdir()
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) == 3 and parts[1] == "tests" and parts[2].endswith(".py") and member.isfile():
                    (staging / parts[2]).write_bytes(tar.extractfile(member).read())
        (staging / "__init__.py").touch()
        try:
            os.replace(staging, root / PACKAGE)
        except OSError:  # another process put it there first
            if not (root / PACKAGE / "test_modeling_common.py").is_file():
                raise


# PreTrainedConfig's common fields, each set to a value other than its default
CONFIG_COMMON_KWARGS = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["I3DModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}


class ExportTesterMixin:
    """Stand-in for transformers' ``tests/exporters/test_export.py`` (not in the sdist): every model class exports
    with ``torch.export`` and the exported program gives the eager outputs, with static shapes and with a dynamic
    batch (and dynamic frames and size where ``dynamic_video_axes`` says the family supports them)."""

    dynamic_video_axes = True

    def _export_and_compare(self, dynamic: bool) -> None:
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        pixel_values = inputs["pixel_values"]
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            with torch.no_grad():
                expected = model(pixel_values).to_tuple()
            shapes = None
            if dynamic:
                axes = {0: torch.export.Dim("batch", min=1, max=64)}
                if self.dynamic_video_axes:
                    axes.update(
                        {1: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO, 4: torch.export.Dim.AUTO}
                    )
                shapes = {"pixel_values": axes}
            program = torch.export.export(model, (), {"pixel_values": pixel_values}, dynamic_shapes=shapes)
            with torch.no_grad():
                exported = program.module()(pixel_values=pixel_values).to_tuple()
            for got, want in zip(exported, expected):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
            if dynamic:  # another batch size runs through the same program
                doubled = torch.cat([pixel_values, pixel_values])
                with torch.no_grad():
                    out = program.module()(pixel_values=doubled).to_tuple()[0]
                torch.testing.assert_close(out, torch.cat([expected[0], expected[0]]), rtol=1e-4, atol=1e-5)

    def test_torch_export(self):
        self._export_and_compare(dynamic=False)

    def test_torch_export_dynamic(self):
        self._export_and_compare(dynamic=True)


def _common(root: Path):
    """``(test_modeling_common, test_configuration_common, test_video_processing_common)`` from the sdist."""
    if not (root / PACKAGE / "test_modeling_common.py").is_file():
        _fetch_common_tests(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    for name, attribute, value in (
        ("exporters.test_export", "ExportTesterMixin", ExportTesterMixin),
        ("generation.test_utils", "GenerationTesterMixin", type("GenerationTesterMixin", (), {})),
        ("utils.test_configuration_utils", "config_common_kwargs", CONFIG_COMMON_KWARGS),
    ):
        package, _, module = name.partition(".")
        for qualified in (f"{PACKAGE}.{package}", f"{PACKAGE}.{name}"):
            sys.modules.setdefault(qualified, types.ModuleType(qualified))
        sys.modules[f"{PACKAGE}.{package}"].__path__ = []
        setattr(sys.modules[f"{PACKAGE}.{name}"], attribute, value)
    return tuple(
        importlib.import_module(f"{PACKAGE}.{module}")
        for module in ("test_modeling_common", "test_configuration_common", "test_video_processing_common")
    )


COMMON_TESTS_ROOT = _cache_root()  # fixed at collection: tests may point $HF_I3D_CACHE elsewhere later
modeling_common, configuration_common, video_processing_common = _common(COMMON_TESTS_ROOT)
# The mixins know transformers' models by the class names of its auto mappings (base models are not trained, video
# classifiers get labels); hf_i3d registers its classes with the Auto classes at run time, so they are added to the
# test module's copies of those mappings (transformers' own dicts stay untouched).
for _name, _classes in (
    ("MODEL_MAPPING_NAMES", {"i3d": "I3DModel", "inception_i3d": "InceptionI3DModel"}),
    (
        "MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES",
        {"i3d": "I3DForVideoClassification", "inception_i3d": "InceptionI3DForVideoClassification"},
    ),
):
    setattr(modeling_common, _name, {**getattr(modeling_common, _name), **_classes})
floats_tensor = modeling_common.floats_tensor
ids_tensor = modeling_common.ids_tensor


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------
class VideoModelTester:
    """What ``ModelTesterMixin`` asks of a model tester, for one tiny configuration."""

    def __init__(self, parent, config_class, config_kwargs, num_frames, image_size, num_stages, batch_size=2):
        self.parent = parent
        self.config_class, self.config_kwargs = config_class, config_kwargs
        self.batch_size, self.num_frames, self.image_size = batch_size, num_frames, image_size
        self.num_channels, self.num_labels, self.num_stages = 3, 3, num_stages
        self.is_training = True

    def get_config(self):
        return self.config_class(
            num_labels=self.num_labels,
            num_frames=self.num_frames,
            image_size=self.image_size,
            **self.config_kwargs,
        )

    def prepare_config_and_inputs(self):
        shape = [self.batch_size, self.num_frames, self.num_channels, self.image_size, self.image_size]
        return self.get_config(), floats_tensor(shape), ids_tensor([self.batch_size], self.num_labels)

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, _ = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


class _VideoModelTest(modeling_common.ModelTesterMixin):
    """``ModelTesterMixin`` with ResNet's choices for a convolutional video classifier."""

    has_attentions = False
    test_resize_embeddings = False
    test_torch_exportable = True
    config_class = None
    config_kwargs: dict = {}
    num_frames, image_size, num_stages = 8, 32, 4
    common_properties = ["num_channels", "num_frames", "image_size", "hidden_sizes"]

    def setUp(self):
        self.model_tester = VideoModelTester(
            self, self.config_class, self.config_kwargs, self.num_frames, self.image_size, self.num_stages
        )
        self.config_tester = configuration_common.ConfigTester(
            self,
            config_class=self.config_class,
            has_text_modality=False,
            common_properties=list(self.common_properties),
            **self.config_kwargs,
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        config, pixel_values, _ = self.model_tester.prepare_config_and_inputs()
        base_class = self.all_model_classes[0]
        with torch.no_grad():
            out = base_class(config).eval()(pixel_values)
        # (B, C, T', H', W') feature maps and (B, C) pooled features, C the last hidden size
        assert out.last_hidden_state.shape[:2] == (self.model_tester.batch_size, self._channels(config)[-1])
        assert out.pooler_output.shape == (self.model_tester.batch_size, self._channels(config)[-1])

    def test_for_video_classification(self):
        config, pixel_values, labels = self.model_tester.prepare_config_and_inputs()
        model = self.all_model_classes[1](config).eval()
        out = model(pixel_values, labels=labels)
        assert out.logits.shape == (self.model_tester.batch_size, self.model_tester.num_labels)
        torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, labels))

    def test_forward_signature(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            names = list(inspect.signature(model_class(config).forward).parameters)
            assert names[:1] == ["pixel_values"]

    def test_hidden_states_output(self):
        """ResNet's version: one hidden state per stage plus the stem, feature maps of the stage widths."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            for how in ("argument", "config"):
                config.output_hidden_states = how == "config"
                kwargs = {"output_hidden_states": True} if how == "argument" else {}
                with torch.no_grad():
                    out = model_class(config).eval()(**inputs, **kwargs)
                assert len(out.hidden_states) == len(self._channels(config))
                assert [h.shape[1] for h in out.hidden_states] == self._channels(config)
            config.output_hidden_states = False

    def test_initialization(self):
        """ResNet's version: BatchNorm weights 1 and biases 0 (affine ones), convolutions not all zero."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            for name, module in model.named_modules():
                if isinstance(module, nn.BatchNorm3d) and module.affine:
                    assert torch.all(module.bias == 0), name
                    assert torch.all(module.weight == 1), name
                elif isinstance(module, nn.Conv3d):
                    assert module.weight.abs().sum() > 0, name

    @unittest.skip(reason="like ResNet: no inputs_embeds")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="like ResNet: no input or output embeddings")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(reason="like ResNet: no feed-forward chunking")
    def test_feed_forward_chunking(self):
        pass


class I3DR18ModelTest(_VideoModelTest, unittest.TestCase):
    all_model_classes = (I3DModel, I3DForVideoClassification)
    config_class = I3DConfig
    config_kwargs = {"depth": 18, "base_channels": 4}

    @staticmethod
    def _channels(config):
        return list(config.hidden_sizes)


class I3DR50ModelTest(I3DR18ModelTest):
    config_kwargs = {"depth": 50, "base_channels": 2, "inflate_style": "3x3x3", "conv1_kernel": [3, 7, 7]}


class InceptionI3DModelTest(_VideoModelTest, unittest.TestCase):
    all_model_classes = (InceptionI3DModel, InceptionI3DForVideoClassification)
    config_class = InceptionI3DConfig
    config_kwargs = {"mixed_channels": {name: [2] * 6 for name in InceptionI3DConfig().mixed_channels}}
    num_frames, image_size = 9, 193
    common_properties = ["num_channels", "num_frames", "image_size", "hidden_size"]

    @staticmethod
    def _channels(config):
        """Widths of DeepMind's 16 endpoints: the stem (64, 64, 64, 192, 192), then each Mixed block's
        b0 + b1b + b2b + b3, the max-pools before Mixed_4b and Mixed_5b keeping the width before them."""
        mixed = {name: w[0] + w[2] + w[4] + w[5] for name, w in config.mixed_channels.items()}
        order = ["Mixed_3b", "Mixed_3c", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"]
        return [64, 64, 64, 192, 192] + [mixed[name] for name in order + ["Mixed_4f", "Mixed_5b", "Mixed_5c"]]


# ---------------------------------------------------------------------------------------------------------------
# Video processor
# ---------------------------------------------------------------------------------------------------------------
class I3DVideoProcessingTester:
    """What ``VideoProcessingTestMixin`` asks of a video processing tester."""

    def __init__(
        self, parent, batch_size=3, num_frames=8, num_channels=3, min_resolution=30, max_resolution=80
    ):
        self.parent = parent
        self.batch_size, self.num_frames, self.num_channels = batch_size, num_frames, num_channels
        self.min_resolution, self.max_resolution = min_resolution, max_resolution
        self.size, self.crop_size = {"shortest_edge": 20}, {"height": 18, "width": 18}

    def prepare_video_processor_dict(self):
        # transformers' frame rule (num_frames spread over the video, refusing more than it has): the mixin checks it
        return {"size": self.size, "crop_size": self.crop_size, "do_sample_frames": False, "sampler": "even"}

    def expected_output_video_shape(self, videos):
        return self.num_frames, 3, self.crop_size["height"], self.crop_size["width"]

    def prepare_video_inputs(self, equal_resolution=False, return_tensors="pil"):
        return video_processing_common.prepare_video_inputs(
            batch_size=self.batch_size,
            num_frames=self.num_frames,
            num_channels=self.num_channels,
            min_resolution=self.min_resolution,
            max_resolution=self.max_resolution,
            equal_resolution=equal_resolution,
            return_tensors=return_tensors,
        )


class I3DVideoProcessingTest(video_processing_common.VideoProcessingTestMixin, unittest.TestCase):
    fast_video_processing_class = I3DVideoProcessor
    input_name = "pixel_values"

    def setUp(self):
        super().setUp()
        self.video_processor_tester = I3DVideoProcessingTester(self)

    @property
    def video_processor_dict(self):
        return self.video_processor_tester.prepare_video_processor_dict()


def test_the_mixins_come_from_the_installed_transformers_version():
    assert modeling_common.__file__.startswith(str(COMMON_TESTS_ROOT))
    assert I3DVideoProcessor.valid_kwargs is I3DVideoProcessorKwargs
    assert issubclass(I3DR18ModelTest, modeling_common.ModelTesterMixin)


@pytest.mark.parametrize("family", ["i3d", "inception"])
def test_the_models_were_tested_on_real_numbers(family):
    """The three configurations are not degenerate: distinct videos give distinct logits."""
    tester = {"i3d": I3DR50ModelTest, "inception": InceptionI3DModelTest}[family]()
    tester.setUp()
    config, inputs = tester.model_tester.prepare_config_and_inputs_for_common()
    with torch.no_grad():
        logits = tester.all_model_classes[1](config).eval()(**inputs).logits
    assert np.isfinite(logits.numpy()).all() and not torch.allclose(logits[0], logits[1])


# ---------------------------------------------------------------------------------------------------------------
# What the mixins found beyond their own checks
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "depth, blocks", [(18, [2, 2, 2, 2]), (34, [3, 4, 6, 3]), (101, [3, 4, 23, 3]), (152, [3, 8, 36, 3])]
)
def test_every_documented_depth_builds_with_all_blocks_inflated(depth, blocks):
    config = I3DConfig(depth=depth)
    assert [len(stage) for stage in config.inflate] == blocks and all(all(stage) for stage in config.inflate)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_frozen_stages_with_gradient_checkpointing_train_the_rest(use_reentrant):
    """Behind frozen stages, checkpointed (reentrant or not) trainable blocks get the gradients of a plain step."""
    config = I3DConfig(depth=18, base_channels=4, num_labels=3, num_frames=8, image_size=32, frozen_stages=1)
    config.dropout_prob = 0.0
    pixel_values, labels = torch.randn(2, 8, 3, 32, 32), torch.tensor([0, 2])

    def gradients(checkpointing):
        torch.manual_seed(0)
        model = I3DForVideoClassification(config)
        if checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": use_reentrant}
            )
        model.train()
        model(pixel_values, labels=labels).loss.backward()
        return {name: param.grad for name, param in model.named_parameters() if param.requires_grad}

    plain, checkpointed = gradients(False), gradients(True)
    assert len(plain) == 47 and all(grad is not None for grad in checkpointed.values())
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=0, atol=0, msg=name)


def test_inception_runs_in_bfloat16_on_cpu(tmp_path):
    """bf16 logits within 0.05 of float32 on logits of magnitude ~1; ``from_pretrained(dtype=...)`` gives the same
    bf16 model as ``.to``. One clip: bf16 3D convolutions are slow on CPUs without bf16 units."""
    tester = InceptionI3DModelTest()
    tester.setUp()
    config, inputs = tester.model_tester.prepare_config_and_inputs_for_common()
    pixel_values = inputs["pixel_values"][:1]
    torch.manual_seed(0)
    model = InceptionI3DForVideoClassification(config).eval()
    model.save_pretrained(tmp_path)
    loaded = InceptionI3DForVideoClassification.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    with torch.no_grad():
        reference = model(pixel_values).logits
        cast = model.to(torch.bfloat16)(pixel_values.bfloat16()).logits
    assert cast.dtype == torch.bfloat16
    torch.testing.assert_close(cast.float(), reference, rtol=0, atol=0.05)
    loaded_state, cast_state = loaded.state_dict(), model.state_dict()
    assert loaded_state.keys() == cast_state.keys()
    for name, tensor in loaded_state.items():
        assert tensor.dtype == cast_state[name].dtype and torch.equal(tensor, cast_state[name]), name
