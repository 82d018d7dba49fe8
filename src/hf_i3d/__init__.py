"""hf_i3d: I3D video action-recognition models for the Hugging Face ecosystem."""

__version__ = "0.1.0"
