"""Whole training runs of every experiment of the config: time per run, share of matrix products."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsmoe.bench.workloads import CPU, load
from gsmoe.config import experiment_datasets, resolve_run
from gsmoe.roles import RoleTable, attach_roles
from gsmoe.train import start_run, train_run

#: Matrix-product operators (dense, sparse CSR and batched GEMM) as ``torch.profiler`` names them.
PRODUCT_OPS = frozenset({"aten::addmm", "aten::addmm_", "aten::mm", "aten::bmm", "aten::baddbmm"})


def _with_random_roles(ds: Any, n_roles: int) -> Any:
    """``ds`` with random role distributions attached (timings do not depend on their values)."""
    data = ds._data  # noqa: SLF001 (collated storage: one roles row per node)
    ptr = np.asarray(ds.slices["x"]) if ds.slices is not None and "x" in ds.slices else np.array([0, data.num_nodes])
    roles = np.random.default_rng(0).dirichlet(np.ones(n_roles), size=int(data.num_nodes)).astype(np.float32)
    attach_roles(ds, RoleTable(roles, ptr.astype(np.int64), np.zeros(len(ptr) - 1, dtype=bool)))
    return ds


def _seed0_runs(config: Mapping[str, Any], data_root: Path, datasets: Sequence[str]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Seed 0 of every experiment the config runs on each of ``datasets``: ``(the loaded
    dataset, the run config)``.  Role gates get random role distributions."""
    for dataset in datasets:
        ds = _with_random_roles(load(config, dataset, data_root), config["roles"]["n_roles"])
        for experiment in config["experiments"]:
            if dataset in experiment_datasets(config, experiment):
                yield ds, resolve_run(config, dataset, experiment, 0)


def _run_label(run_cfg: Mapping[str, Any]) -> str:
    return f"{run_cfg['dataset']}/{run_cfg['experiment']}"


def bench_runs(config: Mapping[str, Any], data_root: Path, epochs: int, datasets: Sequence[str],
               log: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """Time ``epochs`` epochs of every experiment (seed 0) with ``train_run``; extrapolate
    to the configured epochs."""
    rows = []
    for ds, run_cfg in _seed0_runs(config, data_root, datasets):
        full_epochs = int(run_cfg["training"]["epochs"])
        run_cfg["training"]["epochs"] = epochs
        start = time.perf_counter()
        record = train_run(run_cfg, ds, device="cpu")
        total = time.perf_counter() - start
        per_epoch = record["wall_time_s"] / epochs
        rows.append({
            "dataset": run_cfg["dataset"], "experiment": run_cfg["experiment"], "epochs_timed": epochs,
            "seconds_per_epoch": round(per_epoch, 5), "setup_s": round(total - record["wall_time_s"], 3),
            "estimated_run_s": round(per_epoch * full_epochs + (total - record["wall_time_s"]), 2),
            "full_epochs": full_epochs,
        })  # fmt: skip
        log(f"  run {_run_label(run_cfg)}: {per_epoch * 1e3:.1f} ms/epoch -> {rows[-1]['estimated_run_s']:.1f}s per run")
    return rows


def bench_products(config: Mapping[str, Any], data_root: Path, epochs: int, datasets: Sequence[str],
                   log: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """How much of training is matrix products: per experiment (seed 0, after a warm-up
    epoch), the time of a training epoch and the share of it that ``torch.profiler``
    attributes (self CPU time) to :data:`PRODUCT_OPS`; ``grid_product_s`` is that part
    times the configured epochs and seeds, a floor for the grid with these kernels."""
    rows = []
    for ds, run_cfg in _seed0_runs(config, data_root, datasets):
        task, model, optimizer = start_run(run_cfg, ds, CPU)
        task.train_epoch(model, optimizer)
        start = time.perf_counter()
        for _ in range(epochs):
            task.train_epoch(model, optimizer)
        epoch_s = (time.perf_counter() - start) / epochs
        with torch.profiler.profile() as profiler:
            for _ in range(epochs):
                task.train_epoch(model, optimizer)
        events = profiler.key_averages()
        share = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS) / sum(
            e.self_cpu_time_total for e in events
        )
        grid_epochs = int(run_cfg["training"]["epochs"]) * len(config["seeds"])
        rows.append({
            "dataset": run_cfg["dataset"], "experiment": run_cfg["experiment"], "epochs_timed": epochs,
            "epoch_ms": round(epoch_s * 1e3, 2), "product_share": round(share, 4),
            "product_ms": round(share * epoch_s * 1e3, 2), "grid_product_s": round(share * epoch_s * grid_epochs, 1),
        })  # fmt: skip
        log(f"  products {_run_label(run_cfg)}: {epoch_s * 1e3:.1f} ms/epoch, {share:.0%} in matrix products")
    return rows
