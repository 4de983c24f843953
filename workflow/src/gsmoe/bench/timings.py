"""Layer, step and epoch timings of the workloads against their per-expert loop reference."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gsmoe.bench.timer import Timer
from gsmoe.bench.workloads import Tasks, build, describe, epoch_job, layer_job, load, step_input, step_job, workload_run
from gsmoe.config import dataset_config
from gsmoe.nn.reference import ReferenceConv, reference_model

#: (dataset, scope) where the loop reference of the 128-expert workloads is not timed
#: (over 15 s per call; the layer scope has it).
NO_REFERENCE_128 = (("PubMed", "epoch"),)

CSV_FIELDS = (
    "dataset", "scope", "config", "num_experts", "top_k", "pool",
    "vectorized_ms", "reference_ms", "speedup", "vectorized_repeats", "reference_repeats",
    "persistent_mb", "activation_mb", "step_mb", "peak_rss_mb",
)  # fmt: skip


def scopes(task: str, quick: bool) -> list[str]:
    """``layer`` and ``epoch``; graph tasks also ``step`` (one mini-batch), and quick runs
    leave out their epoch."""
    if task == "node":
        return ["layer", "epoch"]
    return ["layer", "step"] if quick else ["layer", "step", "epoch"]


def _jobs(scope: str, run: Mapping[str, Any], ds: Any, tasks: Tasks) -> dict[str, Callable[[], None]]:
    """The vectorised job of one workload and, where it is timed, its loop reference."""
    model = build(run, ds)
    task = tasks(run)
    if scope == "layer":
        conv = model.convs[0].train()
        data = step_input(task)[0]
        return {
            "vectorized": layer_job(conv, data, vectorized=True),
            "reference": layer_job(ReferenceConv(conv), data, vectorized=False),
        }
    make = epoch_job if scope == "epoch" else step_job
    jobs = {"vectorized": make(model, run, task, vectorized=True)}
    if not (run["model"]["num_experts"] == 128 and (run["dataset"], scope) in NO_REFERENCE_128):
        jobs["reference"] = make(reference_model(model), run, task, vectorized=False)
    return jobs


def bench_dataset(config: Mapping[str, Any], dataset: str, data_root: Path, workloads: Sequence[str], quick: bool,
                  timer: Timer, log: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """Time every workload (vectorised and reference) on one dataset; CSV rows."""
    ds = load(config, dataset, data_root)
    tasks = Tasks(ds)
    runs = {name: workload_run(config, dataset, name) for name in workloads}
    rows = []
    for scope in scopes(dataset_config(config, dataset)["task"], quick):
        jobs = {
            f"{name}/{kind}": job for name, run in runs.items() for kind, job in _jobs(scope, run, ds, tasks).items()
        }
        start = time.perf_counter()
        medians = timer.run(jobs)
        log(f"  {dataset} {scope}: {len(jobs)} jobs in {time.perf_counter() - start:.1f}s")
        for name, run in runs.items():
            vec, ref = medians[f"{name}/vectorized"], medians.get(f"{name}/reference")
            rows.append({
                "dataset": dataset, "scope": scope, "config": name, **describe(run["model"]),
                "vectorized_ms": round(vec * 1e3, 3), "reference_ms": "" if ref is None else round(ref * 1e3, 3),
                "speedup": "" if ref is None else round(ref / vec, 3),
                "vectorized_repeats": len(timer.times[f"{name}/vectorized"]),
                "reference_repeats": len(timer.times.get(f"{name}/reference", [])),
                "persistent_mb": "", "activation_mb": "", "step_mb": "", "peak_rss_mb": "",
            })  # fmt: skip
        del jobs
        gc.collect()
    return rows
