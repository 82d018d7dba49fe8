"""The synthetic-task training of ``tests/test_training.py`` in float32 and with ``--bf16`` (issue 18).

Trains the tests' tiny I3D (ResNet3d-18 at 1/4 width, 8-frame 32x32 clips of moving squares, which only a model
that sees motion can classify) with the example script, same seed and arguments, once per precision, and prints the
wall time, the Trainer's ``train_runtime`` and the validation top-1 after epochs 5, 10 and 12 of each::

    python benchmarks/bf16_training.py --workdir /tmp/bf16 --output /tmp/bf16.json

On a CPU without bf16 units PyTorch emulates bf16 convolutions (slow); the accuracy column is what matters there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="scratch folder (data, checkpoints)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(TESTS))
    import test_training
    from _synthetic import write_moving_square_dataset

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = write_moving_square_dataset(args.workdir / "squares", {"train": 96, "validation": 48})
    results = {"cpu_bf16_kernels": _cpu_has_bf16()}
    for name, extra in (("fp32", []), ("bf16", ["--bf16"])):
        output = args.workdir / name
        script_args = test_training.script_args(
            data, output, "--do_train", "--do_eval", "--num_train_epochs", "12", "--lr_milestones", "8", "11",
            "--learning_rate", "0.8", "--dataloader_num_workers", "0", "--logging_steps", "12", *extra,
        )  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(args.workdir / "hf_home")}
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, str(test_training.EXAMPLE), *script_args],
            cwd=args.workdir, env=env, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if run.returncode:
            raise SystemExit(f"{name} run failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        history = json.loads((output / "trainer_state.json").read_text())["log_history"]
        results[name] = {
            "wall_s": round(wall, 1),
            "train_runtime_s": next(log["train_runtime"] for log in history if "train_runtime" in log),
            "eval_top1_acc": {log["epoch"]: log["eval_top1_acc"] for log in history if "eval_top1_acc" in log},
        }
        print(name, results[name], flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))
    return results


def _cpu_has_bf16() -> bool:
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


if __name__ == "__main__":
    main()
