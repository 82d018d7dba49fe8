"""hf_i3d: I3D video action-recognition models for the Hugging Face ecosystem.

Importing the package registers its configs, models and video processor with the transformers ``Auto*`` classes,
so ``AutoModelForVideoClassification.from_pretrained(folder)`` and ``pipeline("video-classification", model=folder)``
work for folders this package wrote, and installs the zoo-name resolver (``hub.resolve_pretrained_name``) on the
config and processor classes, so ``I3DForVideoClassification.from_pretrained("i3d-r50-kinetics400")`` works. Every
saved folder carries its model's code, so it loads with ``trust_remote_code=True`` where ``hf_i3d`` is not
installed; that code takes paths and Hub ids only.

This module is the top of the package's import graph for the model classes: the models and configurations import
nothing from ``hf_i3d`` but each other, and name resolution (which needs the hub and the converters, which need the
models) is handed to them here.
"""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from .configuration_i3d import I3DConfig
from .configuration_inception_i3d import InceptionI3DConfig
from .hub import resolve_model, resolve_pretrained_name
from .inference import accelerated_copy
from .modeling_i3d import I3DForVideoClassification, I3DModel, I3DPreTrainedModel
from .modeling_inception_i3d import (
    InceptionI3DForVideoClassification,
    InceptionI3DModel,
    InceptionI3DPreTrainedModel,
)
from .zoo import ZOO, get_entry, list_models

__version__ = "0.1.0"

for _config, _base, _classifier in (
    (I3DConfig, I3DModel, I3DForVideoClassification),
    (InceptionI3DConfig, InceptionI3DModel, InceptionI3DForVideoClassification),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _base, exist_ok=True)
    AutoModelForVideoClassification.register(_config, _classifier, exist_ok=True)
    _config.name_resolver = staticmethod(resolve_pretrained_name)
for _pretrained in (I3DPreTrainedModel, InceptionI3DPreTrainedModel):
    _pretrained.inference_accelerator = staticmethod(accelerated_copy)

try:  # the processor needs the `video` extra (Pillow, torchvision, decoders); the models need torch only
    from transformers import AutoVideoProcessor

    from .video_processing_i3d import I3DVideoProcessor
except ImportError:  # pragma: no cover - exercised only without the video extra
    I3DVideoProcessor = None
else:
    AutoVideoProcessor.register(I3DConfig, I3DVideoProcessor, exist_ok=True)
    AutoVideoProcessor.register(InceptionI3DConfig, I3DVideoProcessor, exist_ok=True)
    I3DVideoProcessor.name_resolver = staticmethod(resolve_pretrained_name)

__all__ = [
    "ZOO",
    "I3DConfig",
    "I3DForVideoClassification",
    "I3DModel",
    "I3DPreTrainedModel",
    "I3DVideoProcessor",
    "InceptionI3DConfig",
    "InceptionI3DForVideoClassification",
    "InceptionI3DModel",
    "InceptionI3DPreTrainedModel",
    "get_entry",
    "list_models",
    "resolve_model",
]
