"""Peak memory of training steps, each workload measured in a fresh interpreter.

The parent (:func:`bench_memory`) starts ``python -m gsmoe.bench.memory --config <file>
--data-root <folder> --threads <n> <dataset> <workload>`` once per (dataset, workload); the
child measures (:func:`memory_child`) and prints its measurements as one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gsmoe.bench.workloads import Tasks, build, describe, load, optimizer, step_input, workload_names, workload_run
from gsmoe.config import load_config
from gsmoe.nn.runtime import malloc_thresholds
from gsmoe.tasks import train_step, training_loss


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def memory_child(config: Mapping[str, Any], dataset: str, workload: str, data_root: Path, threads: int) -> dict[str, float]:
    """Memory of training one workload, measured in this (fresh) process.

    glibc is told to return freed memory at once, so the resident size follows live memory.
    ``persistent_mb``: what training keeps between steps (parameters, Adam state, cached
    sparse copies), after two warm-up steps; ``activation_mb``: the peak on top of it
    during the forward pass (what autograd saves for the backward pass, and temporaries);
    ``step_mb``: the peak on top of it during the whole step (adds the gradients and Adam's
    temporaries, which scale with the parameters); ``peak_rss_mb``: persistent + step.
    """
    malloc_thresholds(64 * 1024, 128 * 1024)
    torch.set_num_threads(threads)
    ds = load(config, dataset, data_root)
    run = workload_run(config, dataset, workload)
    data, mask = step_input(Tasks(ds)(run))
    gc.collect()
    before = _rss_kib("VmRSS")
    model = build(run, ds)
    opt = optimizer(model, run, vectorized=True)
    model.train()
    for _ in range(2):
        train_step(model, opt, data, mask)
    opt.zero_grad()
    gc.collect()
    base = _rss_kib("VmRSS")
    activation = step = 0
    for _ in range(3):
        opt.zero_grad()  # frees the gradients (set to None) before the mark is reset
        try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            pass
        loss = training_loss(model, data, mask)
        activation = max(activation, _rss_kib("VmHWM") - base)
        loss.backward()
        opt.step()
        del loss
        step = max(step, _rss_kib("VmHWM") - base)
    return {
        "persistent_mb": (base - before) / 1024.0,
        "activation_mb": activation / 1024.0,
        "step_mb": step / 1024.0,
        "peak_rss_mb": (base - before + step) / 1024.0,
    }


def bench_memory(config: Mapping[str, Any], config_path: Path, datasets: Sequence[str], workloads: Sequence[str],
                 data_root: Path, threads: int, log: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`memory_child` in a fresh interpreter per (dataset, workload); CSV rows."""
    rows = []
    for dataset in datasets:
        for name in workload_names(dataset, workloads):
            cmd = [sys.executable, "-m", "gsmoe.bench.memory", "--config", str(config_path),
                   "--data-root", str(data_root), "--threads", str(threads), dataset, name]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ.copy())
            if result.returncode != 0:
                raise RuntimeError(f"memory measurement {dataset}/{name} failed:\n{result.stderr[-2000:]}")
            memory = json.loads(result.stdout.strip().splitlines()[-1])
            log(f"  memory {dataset} {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in memory.items()))
            rows.append({
                "dataset": dataset, "scope": "memory", "config": name,
                **describe(workload_run(config, dataset, name)["model"]), "vectorized_ms": "",
                "reference_ms": "", "speedup": "", "vectorized_repeats": "", "reference_repeats": "",
                **{key: round(value, 1) for key, value in memory.items()},
            })  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """The child: measure one (dataset, workload), print the measurements as JSON."""
    parser = argparse.ArgumentParser(prog="python -m gsmoe.bench.memory", description=memory_child.__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("dataset")
    parser.add_argument("workload")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    print(json.dumps(memory_child(config, args.dataset, args.workload, args.data_root, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
