"""Deployment: a model as an ONNX file (onnxruntime, TensorRT, OpenVINO ...) or a torch.export ``ExportedProgram``
(``.pt2``), checked against the PyTorch model on random input every time one is written.

The exported graph takes ``pixel_values`` (batch, frames, 3, height, width), normalised as the model's video processor
does, and returns ``logits`` (batch, num_labels) and, with ``features=True``, ``pooler_output`` (batch, hidden_size),
the clip features the classifier reads. Height and width are fixed at export; batch and frames are fixed or dynamic:

* batch: dynamic with ``dynamic_batch=True`` (any batch >= 1);
* frames: the ResNet3d family (``I3DConfig``) takes any frame count from :func:`min_frames` up (5 for the zoo's
  2020 stem with pool2, 2 for the heavy model), so its frame axis is dynamic unless a fixed ``num_frames`` is asked
  for; pytorchvideo's R50 (8 frames for its (4, 7, 7) head pool) exports with a fixed frame count. The Inception I3D needs at least 9 frames (Mixed_5c must have two time steps for the (2, 7, 7) logits pool)
  and is exported with a fixed frame count: with a symbolic frame count torch.export cannot prove that T >= 9 leaves
  the logits pool two time steps (``ceil(ceil(ceil(T/2)/2)/2) >= 2``).

What the export changes, and why it is still the same model: ``modeling_i3d.I3DConv3d`` runs a one-frame input with
the centre tap of its temporal kernel only (the other taps meet zero padding); with a symbolic frame count that is a
branch on the shape, so the exported copy uses plain ``nn.Conv3d`` (the skipped products are exact zeros) and
torch's size-oblivious shape reasoning (``backed_size_oblivious``), so no dynamic axis is specialised to 1. The
parity check (:func:`check_parity`) then runs the written file, with onnxruntime for ONNX and torch for the
``ExportedProgram``, against the original model: float32 logits within 1e-4 (relative to the logit scale where that
exceeds 1), float16 / bfloat16 against the float32 model within 1e-2 / 5e-2.

This module sits above the models, the processor and the hub, below the CLI (``hf-i3d export``).
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .configuration_i3d import I3DConfig
from .configuration_inception_i3d import InceptionI3DConfig
from .inference import plain_forward
from .modeling_i3d import I3DConv3d
from .modeling_inception_i3d import MIN_FRAMES as INCEPTION_MIN_FRAMES
from .zoo import canonical_name

FORMATS = {"onnx": "model.onnx", "exported-program": "model.pt2"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Largest |exported - reference| allowed, relative to max(1, max |reference logit|); the reference is the float32
# model (float16 / bfloat16 exports are compared with it on the same, rounded, input).
TOLERANCES = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}
BFLOAT16_MIN_OPSET = 22  # ONNX Conv / MaxPool / AveragePool take bfloat16 from opset 22 on
MIN_OPSET = 18  # torch's ONNX exporter (dynamo=True) writes opset 18 and later
INPUT_NAME = "pixel_values"
OUTPUT_NAMES = ("logits", "pooler_output")


class ExportError(ValueError):
    """The model cannot be exported as asked, or the written file does not compute what the model computes."""


@dataclass(frozen=True)
class InputSpec:
    """The input an exported model takes: ``pixel_values`` (batch, frames, 3, height, width) of ``dtype``.

    ``batch_size`` / ``num_frames`` are the traced sizes; ``dynamic_batch`` / ``dynamic_frames`` say whether the
    exported graph takes any other (batch >= 1, frames >= ``min_frames``).
    """

    batch_size: int
    num_frames: int
    height: int
    width: int
    num_channels: int
    dtype: torch.dtype
    dynamic_batch: bool
    dynamic_frames: bool
    min_frames: int

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def shape_text(self) -> str:
        batch = "batch" if self.dynamic_batch else str(self.batch_size)
        frames = "frames" if self.dynamic_frames else str(self.num_frames)
        return f"({batch}, {frames}, {self.num_channels}, {self.height}, {self.width})"

    def axes_text(self) -> list[str]:
        """One line per axis: what the exported graph accepts there."""
        batch = "any batch size >= 1" if self.dynamic_batch else f"fixed at {self.batch_size}"
        frames = (
            f"any frame count >= {self.min_frames}"
            if self.dynamic_frames
            else f"fixed at {self.num_frames} (the model takes >= {self.min_frames})"
        )
        return [
            f"batch: {batch}",
            f"frames: {frames}",
            f"channels: {self.num_channels} (RGB)",
            f"height x width: fixed at {self.height} x {self.width}",
        ]


@dataclass(frozen=True)
class ParityCheck:
    """One comparison of the exported model with the PyTorch model on a random input of ``shape``."""

    shape: tuple[int, ...]
    output: str
    max_abs_diff: float
    scale: float  # max |reference|
    tolerance: float  # allowed max_abs_diff (already scaled)

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= self.tolerance

    def __str__(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return f"{self.output} {shape}: max |diff| {self.max_abs_diff:.2e} (tolerance {self.tolerance:.1e})"


@dataclass
class ExportResult:
    """What was written (``path``), the input it takes, its outputs and the parity checks it passed."""

    path: Path | None
    format: str
    spec: InputSpec
    outputs: tuple[str, ...]
    checks: list[ParityCheck] = field(default_factory=list)
    runtime: str = ""  # what ran the checks
    notes: list[str] = field(default_factory=list)
    opset: int | None = None
    program: Any = None  # the torch.export.ExportedProgram


# -- what each family accepts -------------------------------------------------------------------------------------
def _resnet3d_frames_out(config: I3DConfig, frames: int) -> int:
    """Time steps of the last stage for a ``frames``-frame clip (0 when a layer runs out of frames)."""

    def conv(size: int, kernel: int, stride: int, padding: int) -> int:
        return (size + 2 * padding - kernel) // stride + 1

    kernel = config.conv1_kernel[0]
    size = conv(frames, kernel, config.conv1_stride_t, (kernel - 1) // 2)  # stem conv
    size = conv(size, 1, config.pool1_stride_t, 0)  # stem max-pool, kernel (1, 3, 3)
    for stage in range(config.num_stages):
        if size < 1:
            return 0
        size = conv(
            size, 1, config.temporal_strides[stage], 0
        )  # first block: stride on a padded 'same' kernel
        if stage == 0 and config.with_pool2:
            size = conv(size, 2, 2, 0)  # (2, 1, 1) max-pool
    return max(size, 0)


def _head_window(config: I3DConfig) -> int:
    """Time steps the head needs: the window of pytorchvideo's head pool (``head_pool_kernel_size``), else 1."""
    kernel = getattr(config, "head_pool_kernel_size", None)
    return int(kernel[0]) if kernel else 1


def min_frames(config: Any) -> int:
    """The fewest frames the model classifies: 9 for the Inception I3D (Mixed_5c needs two time steps), and for the
    ResNet3d family the fewest that leave every layer at least one time step and the head its window (5 with the 2020
    stem and pool2, 2 for the heavy model, 4 for pytorchvideo's R50 and its (4, 7, 7) head pool)."""
    if isinstance(config, InceptionI3DConfig):
        return INCEPTION_MIN_FRAMES
    if isinstance(config, I3DConfig):
        return next(t for t in range(1, 4097) if _resnet3d_frames_out(config, t) >= _head_window(config))
    raise ExportError(
        f"cannot export a {type(config).__name__} model: hf_i3d exports I3D and Inception I3D models"
    )


def dynamic_frames_problem(config: Any) -> str | None:
    """Why the frame axis of this family cannot be dynamic, or None when it can."""
    if isinstance(config, InceptionI3DConfig):
        return (
            "the Inception I3D exports with a fixed frame count: torch.export cannot prove that a symbolic frame "
            "count >= 9 leaves the logits pool its 2 time steps (ceil(ceil(ceil(T/2)/2)/2) >= 2)"
        )
    if isinstance(config, I3DConfig) and _head_window(config) > 1:
        return (
            "a ResNet3d with pytorchvideo's head window exports with a fixed frame count: torch.export specialises the "
            "frame axis where the window leaves one time step"
        )
    return None


def input_spec(
    model: nn.Module,
    *,
    batch_size: int = 1,
    num_frames: int | None = None,
    image_size: int | None = None,
    dynamic_batch: bool = False,
    dynamic_frames: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> InputSpec:
    """The input the export of ``model`` takes; ``dynamic_frames=None`` makes frames dynamic where the family allows
    it (:func:`dynamic_frames_problem`). Defaults: ``config.num_frames`` frames of ``config.image_size`` pixels."""
    config = model.config
    least = min_frames(config)
    frames = int(num_frames if num_frames is not None else config.num_frames)
    if frames < least:
        raise ExportError(
            f"{type(model).__name__} needs at least {least} frames, got num_frames={frames}"
            + (
                " (Mixed_5c needs two time steps for the (2, 7, 7) logits pool)"
                if isinstance(config, InceptionI3DConfig)
                else ""
            )
        )
    problem = dynamic_frames_problem(config)
    if dynamic_frames and problem:
        raise ExportError(f"cannot export a dynamic frame count: {problem}")
    if dtype not in TOLERANCES:
        raise ExportError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
    if batch_size < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    size = int(image_size if image_size is not None else config.image_size)
    return InputSpec(
        batch_size=batch_size,
        num_frames=frames,
        height=size,
        width=size,
        num_channels=config.num_channels,
        dtype=dtype,
        dynamic_batch=dynamic_batch,
        dynamic_frames=problem is None if dynamic_frames is None else bool(dynamic_frames),
        min_frames=least,
    )


def _notes(model: nn.Module, dynamic_frames: bool | None) -> list[str]:
    """Why the frame axis stayed fixed where the caller left it to the family (``dynamic_frames=None``)."""
    problem = dynamic_frames_problem(model.config)
    return [problem] if dynamic_frames is None and problem else []


# -- the module that gets exported --------------------------------------------------------------------------------
class ExportableModel(nn.Module):
    """``pixel_values -> logits`` (or ``(logits, pooler_output)``) of an eval copy of a classification model.

    The pooled features are taken from the backbone's output with a forward hook, so the classifier head runs as the
    model's own ``forward`` runs it. ``I3DConv3d`` layers become plain ``nn.Conv3d`` (module docstring).
    """

    def __init__(self, model: nn.Module, features: bool = False, dtype: torch.dtype = torch.float32):
        super().__init__()
        model = copy.deepcopy(model).eval().to(dtype)
        for module in model.modules():
            if isinstance(module, I3DConv3d):  # also hf_i3d.cpu_training.CPUTrainingConv3d
                module.__class__ = nn.Conv3d
        self.model = model
        self.features = features
        self._pooled: list[torch.Tensor] = []
        if features:
            model.base_model.register_forward_hook(
                lambda _m, _i, output: self._pooled.append(output.pooler_output)
            )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(pixel_values=pixel_values, return_dict=True).logits
        if not self.features:
            return logits
        pooled = self._pooled.pop()
        return logits, pooled


@contextlib.contextmanager
def _size_oblivious():
    """torch's size-oblivious shape reasoning: a dynamic axis is not specialised because a later size could be 1."""
    try:
        from torch.fx.experimental import _config as fx_config
    except ImportError:  # pragma: no cover - older torch
        yield
        return
    with fx_config.patch(backed_size_oblivious=True):
        yield


def _dynamic_shapes(spec: InputSpec) -> dict[str, dict[int, Any]] | None:
    axes: dict[int, Any] = {}
    if spec.dynamic_batch:
        axes[0] = torch.export.Dim("batch", min=1)
    if spec.dynamic_frames:
        axes[1] = torch.export.Dim("frames", min=spec.min_frames)
    return {INPUT_NAME: axes} if axes else None


def _example(
    spec: InputSpec, batch: int | None = None, frames: int | None = None, seed: int = 0
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch or spec.batch_size, frames or spec.num_frames, spec.num_channels, spec.height, spec.width)
    return torch.randn(shape, generator=generator).to(spec.dtype)


def _trace(model: nn.Module, spec: InputSpec, features: bool) -> tuple[ExportableModel, Any]:
    exportable = ExportableModel(model, features=features, dtype=spec.dtype)
    # A traced size of 1 on a dynamic axis, or on a size derived from it, would be specialised: trace with batch 2
    # and with enough frames that every ResNet3d stage keeps two time steps; the parity check covers size 1.
    batch = max(spec.batch_size, 2) if spec.dynamic_batch else spec.batch_size
    frames = spec.num_frames
    if spec.dynamic_frames and isinstance(model.config, I3DConfig):
        need = _head_window(model.config) + 1
        frames = next(
            t for t in range(frames, frames + 4096) if _resnet3d_frames_out(model.config, t) >= need
        )
    with _size_oblivious(), torch.no_grad(), plain_forward():
        program = torch.export.export(
            exportable,
            (_example(spec, batch=batch, frames=frames),),
            dynamic_shapes=_dynamic_shapes(spec),
            strict=False,
        )
    return exportable, program


# -- parity -------------------------------------------------------------------------------------------------------
def check_shapes(spec: InputSpec) -> list[tuple[int, int]]:
    """(batch, frames) of the parity inputs: the traced shape, plus batch 2 with a dynamic batch and the fewest
    frames the model takes with dynamic frames."""
    shapes = [(spec.batch_size, spec.num_frames)]
    if spec.dynamic_batch:
        shapes.append((2 if spec.batch_size != 2 else 1, spec.num_frames))
    if spec.dynamic_frames and spec.min_frames != spec.num_frames:
        shapes.append((spec.batch_size, spec.min_frames))
    return shapes


def check_parity(
    model: nn.Module,
    run: Callable[[torch.Tensor], Sequence[np.ndarray]],
    spec: InputSpec,
    *,
    features: bool = False,
    shapes: Sequence[tuple[int, int]] | None = None,
) -> list[ParityCheck]:
    """Compare ``run(pixel_values)`` (the exported model's outputs as arrays) with the float32 PyTorch model on random
    inputs of each (batch, frames) in ``shapes``; raises :class:`ExportError` naming the worst output beyond the
    tolerance of ``spec.dtype`` (:data:`TOLERANCES`)."""
    reference_model = copy.deepcopy(model).eval().float()
    checks = []
    for index, (batch, frames) in enumerate(shapes or check_shapes(spec)):
        pixel_values = _example(spec, batch=batch, frames=frames, seed=index + 1)
        with torch.no_grad(), plain_forward():  # the plain computation, not the cached fast copy
            output = reference_model(pixel_values=pixel_values.float(), return_dict=True)
            references = [output.logits]
            if features:
                references.append(
                    reference_model.base_model(pixel_values.float(), return_dict=True).pooler_output
                )
        results = run(pixel_values)
        for name, reference, result in zip(OUTPUT_NAMES, references, results):
            reference = reference.numpy()
            result = np.asarray(result, dtype=np.float32)
            if result.shape != reference.shape:
                raise ExportError(
                    f"exported {name} has shape {result.shape} for input {tuple(pixel_values.shape)}, the model "
                    f"gives {reference.shape}"
                )
            scale = float(np.abs(reference).max())
            diff = float(np.abs(result - reference).max())
            checks.append(
                ParityCheck(
                    tuple(pixel_values.shape), name, diff, scale, TOLERANCES[spec.dtype] * max(1.0, scale)
                )
            )
    failed = [check for check in checks if not check.ok]
    if failed:
        worst = max(
            failed, key=lambda c: c.max_abs_diff / c.tolerance if np.isfinite(c.max_abs_diff) else np.inf
        )
        raise ExportError(f"parity check failed: {worst}")
    return checks


def _program_runner(program: Any) -> Callable[[torch.Tensor], list[np.ndarray]]:
    module = program.module()

    def run(pixel_values: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            outputs = module(pixel_values)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return [output.float().numpy() for output in outputs]

    return run


def _onnx_runner(path: Path) -> tuple[Callable[[torch.Tensor], list[np.ndarray]], str]:
    try:
        import onnxruntime
    except ImportError as error:
        raise ExportError(
            "checking the ONNX file needs onnxruntime: pip install 'hf_i3d[export]' (or pass check=False / "
            "--no-check to write it unchecked)"
        ) from error
    available = onnxruntime.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(
            f"onnxruntime {onnxruntime.__version__} ({', '.join(providers)}) cannot run the exported model: "
            f"{first_line}; pass check=False / --no-check to write it unchecked"
        ) from error

    def run(pixel_values: torch.Tensor) -> list[np.ndarray]:
        if pixel_values.dtype == torch.bfloat16:
            import ml_dtypes

            array = pixel_values.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        else:
            array = pixel_values.numpy()
        return session.run(None, {INPUT_NAME: array})

    return run, f"onnxruntime {onnxruntime.__version__} ({session.get_providers()[0]})"


# -- writing ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _atomic_path(path: Path):
    """A temporary file name next to ``path``, moved onto ``path`` when the block succeeds (removed otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-", suffix=path.suffix)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _onnx_program(program: Any, spec: InputSpec, features: bool, opset: int | None) -> tuple[Any, int | None]:
    """``program`` through torch's ONNX exporter (one file, weights inside), and the opset it wrote."""
    with _size_oblivious(), plain_forward():
        onnx_program = torch.onnx.export(
            program,
            (_example(spec),),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES[: 1 + features]),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    written_opset = next(
        (entry.version for entry in onnx_program.model_proto.opset_import if entry.domain in ("", "ai.onnx")),
        opset,
    )
    return onnx_program, written_opset


def _input_spec_args(arguments: dict[str, Any]) -> dict[str, Any]:
    """The :func:`input_spec` arguments among an exporter's own (its ``locals()``): both exporters take the same."""
    names = ("batch_size", "num_frames", "image_size", "dynamic_batch", "dynamic_frames", "dtype")
    return {name: arguments[name] for name in names}


def _export(
    model: nn.Module,
    path: str | os.PathLike | None,
    format: str,
    shape: dict[str, Any],
    *,
    features: bool,
    check: bool,
    check_shapes: Sequence[tuple[int, int]] | None,
    opset: int | None = None,
) -> ExportResult:
    """The one export path of both formats: the input spec (``shape``: the :func:`input_spec` arguments), the trace,
    the file written through a temporary name and, with ``check``, the parity check of what was written (the ONNX
    file in onnxruntime, the program in torch) before it is moved into place, so a file that fails is never left."""
    spec = input_spec(model, **shape)
    if format == "onnx":
        try:
            import onnx  # noqa: F401  (torch's exporter needs onnx and onnxscript)
            import onnxscript  # noqa: F401
        except ImportError as error:
            raise ExportError(
                f"ONNX export needs onnx, onnxscript and onnxruntime ({error.name} is missing): pip install 'hf_i3d[export]'"
            ) from error
    _, program = _trace(model, spec, features)
    result = ExportResult(
        path=None,
        format=format,
        spec=spec,
        outputs=OUTPUT_NAMES[: 1 + features],
        program=program,
        notes=_notes(model, shape["dynamic_frames"]),
    )
    if format == "onnx":
        onnx_program, result.opset = _onnx_program(program, spec, features, opset)
    with contextlib.ExitStack() as stack:  # no file at all without a path (ExportedProgram only)
        tmp = None if path is None else stack.enter_context(_atomic_path(Path(path)))
        if format == "onnx":
            onnx_program.save(str(tmp), external_data=False)
        elif tmp is not None:
            torch.export.save(program, tmp)
        if check:
            if format == "onnx":
                run, result.runtime = _onnx_runner(tmp)
            else:
                run, result.runtime = (
                    _program_runner(program),
                    f"torch {torch.__version__} (ExportedProgram.module())",
                )
            result.checks = check_parity(model, run, spec, features=features, shapes=check_shapes)
    result.path = None if path is None else Path(path)
    return result


def export_program(
    model: nn.Module,
    path: str | os.PathLike | None = None,
    *,
    batch_size: int = 1,
    num_frames: int | None = None,
    image_size: int | None = None,
    dynamic_batch: bool = False,
    dynamic_frames: bool | None = None,
    dtype: torch.dtype = torch.float32,
    features: bool = False,
    check: bool = True,
    check_shapes: Sequence[tuple[int, int]] | None = None,
) -> ExportResult:
    """``model`` (an I3D or Inception I3D classification model) as a ``torch.export.ExportedProgram``, saved to
    ``path`` (``.pt2``, ``torch.export.save``) when given; ``result.program`` holds it. See :func:`input_spec` for the
    shape arguments; with ``check`` the program runs on random inputs against ``model`` (:func:`check_parity`)."""
    shape = _input_spec_args(locals())
    return _export(
        model, path, "exported-program", shape, features=features, check=check, check_shapes=check_shapes
    )


def onnx_opset(dtype: torch.dtype, opset: int | None) -> int | None:
    """The opset to ask torch's exporter for: ``opset`` checked (>= 18; >= 22 for bfloat16, the first opset whose
    Conv takes it), 22 for bfloat16 when not given, else None (torch's default)."""
    if dtype == torch.bfloat16:
        if opset is not None and opset < BFLOAT16_MIN_OPSET:
            raise ExportError(
                f"a bfloat16 ONNX model needs opset >= {BFLOAT16_MIN_OPSET} (Conv), got {opset}"
            )
        opset = opset or BFLOAT16_MIN_OPSET
    if opset is not None and opset < MIN_OPSET:
        raise ExportError(f"opset must be >= {MIN_OPSET} (torch's ONNX exporter), got {opset}")
    return opset


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    batch_size: int = 1,
    num_frames: int | None = None,
    image_size: int | None = None,
    dynamic_batch: bool = False,
    dynamic_frames: bool | None = None,
    dtype: torch.dtype = torch.float32,
    features: bool = False,
    opset: int | None = None,
    check: bool = True,
    check_shapes: Sequence[tuple[int, int]] | None = None,
) -> ExportResult:
    """``model`` as an ONNX file at ``path`` (one file, weights inside), through torch.export and torch's ONNX
    exporter; with ``check`` it runs in onnxruntime on random inputs against ``model`` (:func:`check_parity`) before
    it is moved into place, so a file that fails is never written. ``opset`` defaults to torch's (22 for
    bfloat16, the first opset whose Conv takes it)."""
    opset = onnx_opset(dtype, opset)
    shape = _input_spec_args(locals())
    return _export(
        model, path, "onnx", shape, features=features, check=check, check_shapes=check_shapes, opset=opset
    )


# -- a deployable folder (hf-i3d export) --------------------------------------------------------------------------
def export_folder(
    model_name_or_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    format: str = "onnx",
    overwrite: bool = False,
    num_frames: int | None = None,
    image_size: int | None = None,
    **kwargs: Any,
) -> ExportResult:
    """Export a zoo name, a model folder (converted or a training checkpoint) or a Hub id into ``output_dir``:
    ``model.onnx`` or ``model.pt2`` next to ``config.json`` (labels), ``video_preprocessor_config.json`` (how to make
    ``pixel_values``) and a ``README.md`` of the input/output contract; written atomically (a temporary folder
    renamed into place). Frames and size default to the processor's single-view clip (``num_frames``,
    ``crop_size``); a folder without a processor (a Trainer checkpoint) exports when both are given, and its export
    then has no processor config either. ``kwargs`` go to :func:`export_onnx` / :func:`export_program`."""
    from .predict import load_classifier

    if format not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())) and not overwrite:
        raise ExportError(f"{output_dir} already exists and is not empty (pass --overwrite to replace it)")
    if format == "onnx":  # refuse a bad opset before loading anything
        onnx_opset(kwargs.get("dtype", torch.float32), kwargs.get("opset"))
    name = os.fspath(model_name_or_path)
    if not os.path.isdir(name) and canonical_name(name) is None and name.count("/") != 1:
        raise ExportError(
            f"cannot load {name!r} (a zoo name, a model folder or a Hub id): no such folder or zoo name "
            "(`hf-i3d zoo` lists the names)"
        )
    try:
        shape_given = num_frames is not None and image_size is not None
        classifier = load_classifier(name, optimize=False, require_processor=not shape_given)
    except OSError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(
            f"cannot load {name!r} (a zoo name, a model folder or a Hub id): {first_line}"
        ) from error
    model, processor = classifier.model, classifier.processor
    num_frames = num_frames if num_frames is not None else processor.num_frames
    if image_size is None:
        crop = processor.crop_size
        image_size = int(crop if isinstance(crop, int) else crop["height"])
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.tmp-"))
    try:
        target = tmp_dir / FORMATS[format]
        exporter = export_onnx if format == "onnx" else export_program
        result = exporter(model, target, num_frames=num_frames, image_size=image_size, **kwargs)
        model.config.to_json_file(tmp_dir / "config.json")
        if processor is not None:
            processor.to_json_file(tmp_dir / "video_preprocessor_config.json")
        (tmp_dir / "README.md").write_text(
            export_readme(result, os.fspath(model_name_or_path), model.config, processor), encoding="utf-8"
        )
        if output_dir.exists():
            shutil.rmtree(output_dir) if output_dir.is_dir() else output_dir.unlink()
        os.replace(tmp_dir, output_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    result.path = output_dir / FORMATS[format]
    return result


def export_readme(result: ExportResult, model_name: str, config: Any, processor: Any | None) -> str:
    """The README of an export folder: the input/output contract, what each axis takes, and the parity checks."""
    spec = result.spec
    family = "Inception I3D" if isinstance(config, InceptionI3DConfig) else "I3D ResNet3d"
    if processor is not None:
        mean, std = list(processor.image_mean), list(processor.image_std)
        preprocessing = (
            "frames normalised as `video_preprocessor_config.json` says: sample `num_frames` frames `frame_interval` "
            "apart (the centred clip), resize the short side, centre-crop `crop_size`, then `(x * (rescale_factor if "
            f"do_rescale else 1) - image_mean) / image_std` per channel (here mean {mean}, std {std})."
        )
    else:
        preprocessing = (
            "frames prepared as the model was trained; the exported folder (a training checkpoint) had no "
            "`video_preprocessor_config.json`, so sampling, crop and normalisation are not recorded here."
        )
    lines = [
        f"# {model_name}: {'ONNX' if result.format == 'onnx' else 'torch.export ExportedProgram'}",
        "",
        f"Exported by hf_i3d (`hf-i3d export`) from `{model_name}` ({family}, {config.num_labels} labels).",
        "",
        "## Input",
        "",
        f"`{INPUT_NAME}`: {spec.dtype_name} {spec.shape_text()}, i.e. (batch, frames, channels, height, width), RGB "
        + preprocessing,
        "",
        *[f"- {line}" for line in spec.axes_text()],
        "",
        "## Outputs",
        "",
        f"- `logits`: {spec.dtype_name} (batch, {config.num_labels}), raw class scores (softmax for probabilities); "
        "label names in `config.json` `id2label`.",
    ]
    if "pooler_output" in result.outputs:
        lines.append(
            f"- `pooler_output`: {spec.dtype_name} (batch, {config.hidden_size}), the pooled clip features the "
            "classifier reads."
        )
    lines += ["", "## Checked on export", ""]
    if result.checks:
        lines.append(
            f"Random inputs, exported model ({result.runtime}) against the PyTorch model in float32:"
        )
        lines.append("")
        lines += [f"- {check}" for check in result.checks]
    else:
        lines.append("Not checked (written with --no-check).")
    if result.opset is not None:
        lines += ["", f"ONNX opset {result.opset}."]
    lines += [
        "",
        "## Run",
        "",
        "With onnxruntime, without hf_i3d: see the hf_i3d README, section *Exporting for deployment*."
        if result.format == "onnx"
        else "`program = torch.export.load('model.pt2'); logits = program.module()(pixel_values)`",
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "DTYPES",
    "FORMATS",
    "TOLERANCES",
    "ExportError",
    "ExportResult",
    "ExportableModel",
    "InputSpec",
    "ParityCheck",
    "check_parity",
    "dynamic_frames_problem",
    "export_folder",
    "export_onnx",
    "export_program",
    "input_spec",
    "min_frames",
    "onnx_opset",
]
