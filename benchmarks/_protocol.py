"""The worker end of ``benchmarks/run.py``: one process per (side, case, variant), driven over stdin/stdout.

Runs unchanged in our venv (``ours_side.py``) and in the mmaction2 reference venvs (``mmaction_side.py``), so it
imports nothing but the standard library and torch. Library output (mmengine, warnings) goes to stderr, which
``run.py`` sends to a log file; stdout carries only the protocol, one JSON object per line:

    worker -> {"ready": true, "setup_s": ..., "versions": {...}}
    run N  -> {"times": [N seconds], "cpu": [N seconds]}   one call of the step each: wall (perf_counter) and
                                                           process CPU time (user + system, all threads)
    check  -> {"saved": path}                 the step's check tensors, saved with torch.save
    memory -> {"peak_rss_mib": ..., "setup_rss_mib": ...}
    quit   -> (exit)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


def parse_worker_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="benchmark worker (started by benchmarks/run.py)")
    parser.add_argument("--spec", required=True, help="JSON: case, model, task, shape, variant, files")
    parser.add_argument("--threads", type=int, required=True)
    return parser.parse_args()


def current_rss_mib() -> float:
    """Resident set size now (VmRSS of /proc/self/status), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mib() -> float:
    """High-water mark of the resident set of this process (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def keep_freed_memory() -> bool:
    """The same glibc ``mallopt`` setting as ``hf_i3d.inference.keep_freed_memory`` (copied so that the reference
    side, which must not import hf_i3d, can run with it too): large blocks from the heap, heap never trimmed."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(-4, 0)) and bool(libc.mallopt(-1, 2**31 - 1))  # M_MMAP_MAX, M_TRIM_THRESHOLD


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(build: Callable[[dict], tuple[Callable[[], object], Callable[[], dict]]], versions: dict) -> None:
    """Build the step with ``build(spec)`` -> ``(step, check)``, then answer ``run.py`` until it says quit.

    ``step()`` is one timed call; ``check()`` returns the tensors that ``run.py`` compares across sides.
    """
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else written to stdout (Python or C) goes to the log
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")

    args = parse_worker_args()
    spec = json.loads(args.spec)
    import torch

    torch.set_num_threads(args.threads)
    try:
        start = time.perf_counter()
        step, check = build(spec)
        setup_s = time.perf_counter() - start
    except Exception:
        send({"error": traceback.format_exc()})
        return
    setup_rss = current_rss_mib()
    send({"ready": True, "setup_s": setup_s, "versions": versions, "threads": torch.get_num_threads()})
    for line in sys.stdin:
        command, *rest = line.split()
        try:
            if command == "run":
                times, cpu = [], []
                for _ in range(int(rest[0])):
                    start, start_cpu = time.perf_counter(), process_cpu_s()
                    step()
                    times.append(time.perf_counter() - start)
                    cpu.append(process_cpu_s() - start_cpu)
                send({"times": times, "cpu": cpu})
            elif command == "check":
                path = Path(spec["files"]["outdir"]) / f"{spec['label']}.pt"
                torch.save(check(), path)
                send({"saved": str(path)})
            elif command == "memory":
                send({"peak_rss_mib": peak_rss_mib(), "setup_rss_mib": setup_rss})
            elif command == "quit":
                return
            else:
                send({"error": f"unknown command {command!r}"})
        except Exception:
            send({"error": traceback.format_exc()})
