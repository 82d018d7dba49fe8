"""hf_i3d: I3D video action-recognition models for the Hugging Face ecosystem.

Importing the package registers its configs, models and video processor with the transformers ``Auto*`` classes,
so ``AutoModelForVideoClassification.from_pretrained(folder)`` and ``pipeline("video-classification", model=folder)``
work for folders this package wrote. Folders saved by the package also carry their code, so they load with
``trust_remote_code=True`` where ``hf_i3d`` is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from .configuration_i3d import I3DConfig
from .hub import resolve_model
from .modeling_i3d import I3DForVideoClassification, I3DModel, I3DPreTrainedModel
from .zoo import ZOO, get_entry, list_models

__version__ = "0.1.0"

AutoConfig.register(I3DConfig.model_type, I3DConfig, exist_ok=True)
AutoModel.register(I3DConfig, I3DModel, exist_ok=True)
AutoModelForVideoClassification.register(I3DConfig, I3DForVideoClassification, exist_ok=True)

__all__ = [
    "ZOO",
    "I3DConfig",
    "I3DForVideoClassification",
    "I3DModel",
    "I3DPreTrainedModel",
    "get_entry",
    "list_models",
    "resolve_model",
]
