"""Benchmark of the MoE layer and of training epochs: vectorised code vs the per-expert loop.

``python -m gsmoe.bench [--out-dir results/benchmarks] [--quick] [--threads 1]`` measures,
for the baseline, dense gating with 4, 8 and 16 experts and noisy top-4 of 128 experts
(graph and node pooling), on Cora and PubMed (full graph) and ENZYMES (batches of 32):

``layer``
    forward + backward of one :class:`~gsmoe.nn.SAGEMoEConv` (the first layer, fed as the
    model feeds it: sparse features on Planetoid);
``epoch``
    one training epoch of the model with its optimiser step, as training runs it
    (:func:`gsmoe.optim.make_optimizer`: lazy expert updates; the loop reference takes the
    plain full Adam step) (Cora, PubMed: one full-batch step; ENZYMES: the 15 batches of
    the 480 training graphs, collation included, as training batches them);
``step``
    ENZYMES only: one Adam step on a batch of 32 graphs;
``memory``
    peak resident memory added by training steps (fresh subprocess per configuration).

Each timing is the median of repeats after a warm-up, every configuration and its
:mod:`gsmoe.nn.reference` twin (the straightforward loop over all experts) measured in
turn, round after round, in one process, so that their ratio is not skewed by other load
on the machine.  ``dense128`` (all 128 experts through the vectorised dense path) is
measured on Cora and ENZYMES as the "compute every expert" cost of the top-k target.

Writes ``moe_layer.csv`` (one row per dataset, scope and configuration) and
``moe_layer.md`` (tables and the pass/fail of the targets), atomically.
``--runs`` also times short training runs of every experiment of ``config.yaml`` with
:func:`gsmoe.train.train_run` and extrapolates to the configured epochs (``run_times.csv``).
``--products`` (alone) measures the share of matrix products in a training epoch of every
experiment and their total over the grid (``products.csv``, ``products.md``).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from gsmoe.batching import GraphBatcher, ShuffledBatches
from gsmoe.config import experiment_datasets, load_config, model_defaults, resolve_run
from gsmoe.datasets import load_dataset
from gsmoe.io import atomic_open
from gsmoe.nn import SAGEMoEConv, build_model
from gsmoe.nn.inputs import maybe_sparse, mean_adjacency
from gsmoe.nn.reference import ReferenceConv, reference_model
from gsmoe.nn.runtime import keep_freed_memory, malloc_thresholds
from gsmoe.roles import RoleTable, attach_roles
from gsmoe.splits import graph_splits
from gsmoe.optim import make_optimizer
from gsmoe.tasks import train_step, training_loss
from gsmoe.train import start_run, train_run

DATASETS: dict[str, dict[str, Any]] = {
    # name: loader source, task, training hyper-parameters of config.yaml (the fixed workloads
    # of the layer/step/epoch benchmark; tests/unit/test_bench.py checks that they agree)
    "Cora": {"source": "planetoid", "task": "node", "lr": 0.01, "dropout": 0.5},
    "PubMed": {"source": "planetoid", "task": "node", "lr": 0.001, "dropout": 0.0},
    "ENZYMES": {"source": "tu", "task": "graph", "lr": 0.001, "dropout": 0.0},
}
WEIGHT_DECAY = 0.005
BATCH_SIZE = 32

CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {"placement": "none", "gate": "none", "num_experts": 1},
    "dense4": {"placement": "aggregate", "gate": "dense", "num_experts": 4},
    "dense8": {"placement": "aggregate", "gate": "dense", "num_experts": 8},
    "dense16": {"placement": "aggregate", "gate": "dense", "num_experts": 16},
    "top4of128_graph": {"placement": "aggregate", "gate": "noisy_topk", "num_experts": 128, "top_k": 4, "pool": "graph"},
    "top4of128_node": {"placement": "aggregate", "gate": "noisy_topk", "num_experts": 128, "top_k": 4, "pool": "node"},
    "dense128": {"placement": "aggregate", "gate": "dense", "num_experts": 128},
}
#: dense128 only where it is cheap enough to time (on PubMed one (N, 128 * 32) tensor is 323 MB).
DENSE128_DATASETS = ("Cora", "ENZYMES")
#: Matrix-product operators (dense, sparse CSR and batched GEMM) as ``torch.profiler`` names them.
PRODUCT_OPS = frozenset({"aten::addmm", "aten::addmm_", "aten::mm", "aten::bmm", "aten::baddbmm"})

#: (dataset, scope) where the loop reference of the 128-expert configurations is not timed
#: (over 15 s per call; the layer scope has it).
NO_REFERENCE_128 = (("PubMed", "epoch"),)
QUICK_CONFIGS = ("baseline", "dense4", "dense16", "top4of128_graph")
MEMORY_CONFIGS = ("dense4", "top4of128_graph", "top4of128_node")

CSV_FIELDS = (
    "dataset", "scope", "config", "num_experts", "top_k", "pool",
    "vectorized_ms", "reference_ms", "speedup", "vectorized_repeats", "reference_repeats",
    "persistent_mb", "activation_mb", "step_mb", "peak_rss_mb",
)  # fmt: skip


# --------------------------------------------------------------------------- timing


@dataclass
class Timer:
    """Interleaved timing of several callables: warm-up, then rounds over all of them."""

    min_repeats: int = 3
    max_repeats: int = 7
    budget_s: float = 20.0
    slow_s: float = 1.0  # callables slower than this are measured slow_samples times (warm-up included)
    slow_samples: int = 2
    times: dict[str, list[float]] = field(default_factory=dict)

    def run(self, jobs: dict[str, Callable[[], None]]) -> dict[str, float]:
        """Median seconds per job.  A job slower than ``slow_s`` keeps its warm-up call as a
        sample (a loop over experts has nothing to warm up): ``slow_samples`` calls in all."""
        warm: dict[str, float] = {}
        self.times = {}
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            warm[name] = time.perf_counter() - start
            self.times[name] = [warm[name]] if warm[name] > self.slow_s else []
        began = time.perf_counter()
        for round_ in range(self.max_repeats):
            if round_ >= self.min_repeats and time.perf_counter() - began > self.budget_s:
                break
            for name, job in jobs.items():
                if warm[name] > self.slow_s and len(self.times[name]) >= self.slow_samples:
                    continue
                start = time.perf_counter()
                job()
                self.times[name].append(time.perf_counter() - start)
        return {name: statistics.median(values) for name, values in self.times.items()}


# --------------------------------------------------------------------------- workloads


def _model_cfg(config: str, dataset: str) -> dict[str, Any]:
    return {**model_defaults(), "hidden": 32, "num_layers": 2, "dropout": DATASETS[dataset]["dropout"], **CONFIGS[config]}


def _load(dataset: str, data_root: Path) -> Any:
    return load_dataset(DATASETS[dataset]["source"], dataset, data_root / dataset)


def _workload(dataset: str, ds: Any) -> dict[str, Any]:
    """The data one layer, one step and one epoch read (ENZYMES: batched as in training)."""
    if DATASETS[dataset]["task"] == "node":
        data = ds[0]
        return {"layer": data, "step": data, "loader": None}
    labels = torch.cat([graph.y.view(-1) for graph in ds])
    train = graph_splits(labels, seed=0)["train"]
    batcher = GraphBatcher(ds)
    loader = ShuffledBatches(batcher, train, BATCH_SIZE, torch.Generator().manual_seed(0))
    first = batcher(train[:BATCH_SIZE])
    return {"layer": first, "step": first, "loader": loader}


def _layer_job(conv: torch.nn.Module, data: Data, vectorized: bool) -> Callable[[], None]:
    """Forward + backward of one layer on its input as the model prepares it once per
    graph batch: sparse features and the mean adjacency for the vectorised layer."""
    x = maybe_sparse(data.x) if vectorized else data.x
    batch = getattr(data, "batch", None)
    num_graphs = int(data.num_graphs) if batch is not None else None
    adjacency = mean_adjacency(data.edge_index, data.num_nodes, data.x.dtype) if vectorized else None

    def job() -> None:
        conv.zero_grad(set_to_none=True)
        out, aux = conv(x, data.edge_index, batch=batch, num_graphs=num_graphs, adjacency=adjacency)
        (out.sum() + aux).backward()

    return job


def _optimizer(model: torch.nn.Module, dataset: str, vectorized: bool) -> Any:
    """What training uses (``gsmoe.optim.make_optimizer``, lazy expert updates) for the
    vectorised model; the straightforward full Adam step for the loop reference."""
    return make_optimizer(model, DATASETS[dataset]["lr"], WEIGHT_DECAY, "lazy" if vectorized else "dense")


def _train_mask(data: Data, dataset: str) -> torch.Tensor | None:
    """The rows a training step's loss reads (node task), or None (every graph of a batch)."""
    return data.train_mask if DATASETS[dataset]["task"] == "node" else None


def _step_job(model: torch.nn.Module, dataset: str, data: Data, vectorized: bool) -> Callable[[], None]:
    optimizer = _optimizer(model, dataset, vectorized)
    mask = _train_mask(data, dataset)

    def job() -> None:
        model.train()
        train_step(model, optimizer, data, mask)

    return job


def _epoch_job(model: torch.nn.Module, dataset: str, loader: ShuffledBatches, vectorized: bool) -> Callable[[], None]:
    optimizer = _optimizer(model, dataset, vectorized)

    def job() -> None:
        model.train()
        for batch in loader:
            train_step(model, optimizer, batch)

    return job


def _configs(dataset: str, quick: bool) -> list[str]:
    names = QUICK_CONFIGS if quick else tuple(CONFIGS)
    return [c for c in names if c != "dense128" or dataset in DENSE128_DATASETS]


def bench_dataset(dataset: str, data_root: Path, quick: bool, timer: Timer, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Time every configuration (vectorised and reference) on one dataset; CSV rows."""
    ds = _load(dataset, data_root)
    work = _workload(dataset, ds)
    task = DATASETS[dataset]["task"]
    configs = _configs(dataset, quick)
    scopes = ["layer", "epoch"] if task == "node" else ["layer", "step", "epoch"]
    if quick and task == "graph":
        scopes = ["layer", "step"]
    rows = []
    for scope in scopes:
        jobs: dict[str, Callable[[], None]] = {}
        for config in configs:
            torch.manual_seed(0)
            conv_kwargs = {k: v for k, v in CONFIGS[config].items()}
            if scope == "layer":
                conv = SAGEMoEConv(ds.num_features, 32, **conv_kwargs).train()
                jobs[f"{config}/vectorized"] = _layer_job(conv, work["layer"], vectorized=True)
                jobs[f"{config}/reference"] = _layer_job(ReferenceConv(conv), work["layer"], vectorized=False)
                continue
            model = build_model(_model_cfg(config, dataset), ds.num_features, ds.num_classes, task)
            with_reference = not (CONFIGS[config]["num_experts"] == 128 and (dataset, scope) in NO_REFERENCE_128)
            make = _epoch_job if scope == "epoch" and task == "graph" else _step_job
            data = work["loader"] if scope == "epoch" and task == "graph" else work["step"]
            jobs[f"{config}/vectorized"] = make(model, dataset, data, vectorized=True)
            if with_reference:
                jobs[f"{config}/reference"] = make(reference_model(model), dataset, data, vectorized=False)
        start = time.perf_counter()
        medians = timer.run(jobs)
        log(f"  {dataset} {scope}: {len(jobs)} jobs in {time.perf_counter() - start:.1f}s")
        for config in configs:
            vec, ref = medians[f"{config}/vectorized"], medians.get(f"{config}/reference")
            cfg = CONFIGS[config]
            rows.append({
                "dataset": dataset, "scope": scope, "config": config, "num_experts": cfg["num_experts"],
                "top_k": cfg.get("top_k", cfg["num_experts"]), "pool": cfg.get("pool", ""),
                "vectorized_ms": round(vec * 1e3, 3), "reference_ms": "" if ref is None else round(ref * 1e3, 3),
                "speedup": "" if ref is None else round(ref / vec, 3),
                "vectorized_repeats": len(timer.times[f"{config}/vectorized"]),
                "reference_repeats": len(timer.times.get(f"{config}/reference", [])),
                "persistent_mb": "", "activation_mb": "", "step_mb": "", "peak_rss_mb": "",
            })  # fmt: skip
        del jobs
        gc.collect()
    return rows


# --------------------------------------------------------------------------- memory


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def memory_child(dataset: str, config: str, data_root: Path, threads: int) -> dict[str, float]:
    """Memory of training one configuration, measured in this (fresh) process.

    glibc is told to return freed memory at once, so the resident size follows live memory.
    ``persistent_mb``: what training keeps between steps (parameters, Adam state, cached
    sparse copies), after two warm-up steps; ``activation_mb``: the peak on top of it
    during the forward pass (what autograd saves for the backward pass, and temporaries);
    ``step_mb``: the peak on top of it during the whole step (adds the gradients and Adam's
    temporaries, which scale with the parameters); ``peak_rss_mb``: persistent + step.
    """
    malloc_thresholds(64 * 1024, 128 * 1024)
    torch.set_num_threads(threads)
    ds = _load(dataset, data_root)
    work = _workload(dataset, ds)
    data, mask = work["step"], _train_mask(work["step"], dataset)
    gc.collect()
    before = _rss_kib("VmRSS")
    torch.manual_seed(0)
    model = build_model(_model_cfg(config, dataset), ds.num_features, ds.num_classes, DATASETS[dataset]["task"])
    optimizer = _optimizer(model, dataset, vectorized=True)
    model.train()
    for _ in range(2):
        train_step(model, optimizer, data, mask)
    optimizer.zero_grad()
    gc.collect()
    base = _rss_kib("VmRSS")
    activation = step = 0
    for _ in range(3):
        optimizer.zero_grad()  # frees the gradients (set to None) before the mark is reset
        try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            pass
        loss = training_loss(model, data, mask)
        activation = max(activation, _rss_kib("VmHWM") - base)
        loss.backward()
        optimizer.step()
        del loss
        step = max(step, _rss_kib("VmHWM") - base)
    return {
        "persistent_mb": (base - before) / 1024.0,
        "activation_mb": activation / 1024.0,
        "step_mb": step / 1024.0,
        "peak_rss_mb": (base - before + step) / 1024.0,
    }


def bench_memory(datasets: Sequence[str], configs: Sequence[str], data_root: Path, threads: int,
                 log: Callable[[str], None]) -> dict[tuple[str, str], dict[str, float]]:  # fmt: skip
    """``memory_child`` in a fresh interpreter per (dataset, config)."""
    out = {}
    for dataset in datasets:
        for config in configs:
            if config == "dense128" and dataset not in DENSE128_DATASETS:
                continue
            cmd = [sys.executable, "-m", "gsmoe.bench", "--memory-child", dataset, config,
                   "--data-root", str(data_root), "--threads", str(threads)]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ.copy())
            if result.returncode != 0:
                raise RuntimeError(f"memory measurement {dataset}/{config} failed:\n{result.stderr[-2000:]}")
            out[(dataset, config)] = json.loads(result.stdout.strip().splitlines()[-1])
            log(f"  memory {dataset} {config}: " + ", ".join(f"{k} {v:.1f}" for k, v in out[(dataset, config)].items()))
    return out


# --------------------------------------------------------------------------- targets and report


def _row(rows: list[dict[str, Any]], dataset: str, scope: str, config: str) -> dict[str, Any] | None:
    for row in rows:
        if (row["dataset"], row["scope"], row["config"]) == (dataset, scope, config):
            return row
    return None


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target per dataset and scope: the measured value, the bound, pass or fail."""
    checks = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for scope in dict.fromkeys(r["scope"] for r in rows if r["dataset"] == dataset):
            if scope == "memory":
                continue
            d16 = _row(rows, dataset, scope, "dense16")
            d4 = _row(rows, dataset, scope, "dense4")
            top = _row(rows, dataset, scope, "top4of128_graph")
            d128 = _row(rows, dataset, scope, "dense128")
            if d16 and d16["speedup"] != "":
                checks.append({"dataset": dataset, "scope": scope, "target": "dense16: loop reference / vectorized >= 3",
                               "value": d16["speedup"], "bound": 3.0, "passed": d16["speedup"] >= 3.0})  # fmt: skip
            if top and d4:
                ratio = top["vectorized_ms"] / d4["vectorized_ms"]
                checks.append({"dataset": dataset, "scope": scope, "target": "top4of128 (graph) / dense4 <= 1.5",
                               "value": round(ratio, 3), "bound": 1.5, "passed": ratio <= 1.5})  # fmt: skip
            if top and top["speedup"] != "":
                checks.append({"dataset": dataset, "scope": scope,
                               "target": "all 128 experts (loop reference) / top4of128 (graph) >= 10",
                               "value": top["speedup"], "bound": 10.0, "passed": top["speedup"] >= 10.0})  # fmt: skip
            if top and d128:
                ratio = d128["vectorized_ms"] / top["vectorized_ms"]
                checks.append({"dataset": dataset, "scope": scope,
                               "target": "all 128 experts (vectorized dense128) / top4of128 (graph) >= 10",
                               "value": round(ratio, 3), "bound": 10.0, "passed": ratio >= 10.0})  # fmt: skip
        mem_top = _row(rows, dataset, "memory", "top4of128_graph")
        mem_d4 = _row(rows, dataset, "memory", "dense4")
        if mem_top and mem_d4:
            for key, label in (("activation_mb", "activations"), ("peak_rss_mb", "everything")):
                ratio = mem_top[key] / max(mem_d4[key], 0.1)
                checks.append({"dataset": dataset, "scope": "memory",
                               "target": f"peak memory ({label}) top4of128 (graph) / dense4 <= 2",
                               "value": round(ratio, 3), "bound": 2.0, "passed": ratio <= 2.0})  # fmt: skip
    return checks


def environment(threads: int, tuned_allocator: bool) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD") + (" (+ local changes)" if dirty not in ("", "unknown") else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores visible, {platform.platform()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": str(threads),
        "allocator": "glibc, freed memory kept (gsmoe.nn.runtime.keep_freed_memory)" if tuned_allocator else "glibc default",
    }


def render_markdown(rows: list[dict[str, Any]], checks: list[dict[str, Any]], env: dict[str, str], quick: bool) -> str:
    out = io.StringIO()
    out.write(f"# MoE layer and epoch benchmark{' (quick)' if quick else ''}\n\n")
    out.write("Median milliseconds of forward + backward (layer) or of training with the Adam step (step, epoch), "
              "after a warm-up, vectorized code and the per-expert loop reference (`gsmoe.nn.reference`) timed in "
              "turn in one process. `speedup` = reference / vectorized.\n\n")  # fmt: skip
    for key, value in env.items():
        out.write(f"- {key}: {value}\n")
    out.write("\n## Targets\n\n| dataset | scope | target | measured | result |\n|---|---|---|---:|---|\n")
    for c in checks:
        out.write(f"| {c['dataset']} | {c['scope']} | {c['target']} | {c['value']:.2f} | {'PASS' if c['passed'] else 'FAIL'} |\n")
    out.write("\n## Timings\n\n| dataset | scope | config | vectorized ms | reference ms | speedup | repeats (vec/ref) |\n")
    out.write("|---|---|---|---:|---:|---:|---|\n")
    for r in rows:
        if r["scope"] == "memory":
            continue
        ref = "—" if r["reference_ms"] == "" else f"{r['reference_ms']:.1f}"
        speedup = "—" if r["speedup"] == "" else f"{r['speedup']:.2f}"
        out.write(f"| {r['dataset']} | {r['scope']} | {r['config']} | {r['vectorized_ms']:.1f} | {ref} | "
                  f"{speedup} | {r['vectorized_repeats']}/{r['reference_repeats']} |\n")  # fmt: skip
    memory = [r for r in rows if r["scope"] == "memory"]
    if memory:
        out.write("\n## Memory of training steps\n\nResident memory, fresh process per row, freed memory returned "
                  "to the system at once. persistent: kept between steps (parameters, Adam state, cached sparse "
                  "copies); activations: peak on top of it during the forward pass (saved for backward, "
                  "temporaries); step: peak on top of it during the whole step (adds gradients and Adam's "
                  "temporaries, which scale with the number of parameters); peak: persistent + step.\n\n"
                  "| dataset | config | persistent MB | activations MB | step MB | peak MB |\n"
                  "|---|---|---:|---:|---:|---:|\n")  # fmt: skip
        for r in memory:
            out.write(f"| {r['dataset']} | {r['config']} | {r['persistent_mb']:.1f} | {r['activation_mb']:.1f} | "
                      f"{r['step_mb']:.1f} | {r['peak_rss_mb']:.1f} |\n")  # fmt: skip
    return out.getvalue()


def _write_csv(path: Path, rows: list[dict[str, Any]], fieldnames: Sequence[str]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(out_dir: Path, rows: list[dict[str, Any]], markdown: str, name: str = "moe_layer",
                  fieldnames: Sequence[str] = CSV_FIELDS) -> None:  # fmt: skip
    """``<name>.csv`` (the rows) and ``<name>.md``, each written atomically."""
    _write_csv(out_dir / f"{name}.csv", rows, fieldnames)
    with atomic_open(out_dir / f"{name}.md", "w", encoding="utf-8") as handle:
        handle.write(markdown)


# --------------------------------------------------------------------------- training runs


def _with_random_roles(ds: Any, n_roles: int) -> Any:
    """``ds`` with random role distributions attached (timings do not depend on their values)."""
    data = ds._data  # noqa: SLF001 (collated storage: one roles row per node)
    ptr = np.asarray(ds.slices["x"]) if ds.slices is not None and "x" in ds.slices else np.array([0, data.num_nodes])
    roles = np.random.default_rng(0).dirichlet(np.ones(n_roles), size=int(data.num_nodes)).astype(np.float32)
    attach_roles(ds, RoleTable(roles, ptr.astype(np.int64), np.zeros(len(ptr) - 1, dtype=bool)))
    return ds


def _seed0_runs(config_path: Path, data_root: Path, datasets: Sequence[str]) -> Iterator[tuple[Any, dict[str, Any], int]]:
    """Seed 0 of every experiment the config runs on each of ``datasets``: ``(the loaded
    dataset, the run config, the config's number of seeds)``.  Role gates get random role
    distributions."""
    config = load_config(config_path)
    for dataset in datasets:
        ds = _with_random_roles(_load(dataset, data_root), config["roles"]["n_roles"])
        for experiment in config["experiments"]:
            if dataset in experiment_datasets(config, experiment):
                yield ds, resolve_run(config, dataset, experiment, 0), len(config["seeds"])


def bench_runs(config_path: Path, data_root: Path, epochs: int, datasets: Sequence[str],
               log: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """Time ``epochs`` epochs of every experiment (seed 0) with ``train_run``; extrapolate.

    Role gates get random role distributions (the timing does not depend on their values).
    """
    rows = []
    for ds, run_cfg, _ in _seed0_runs(config_path, data_root, datasets):
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


def bench_products(config_path: Path, data_root: Path, epochs: int, datasets: Sequence[str],
                   log: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """How much of training is matrix products: per experiment (seed 0, after a warm-up
    epoch), the time of a training epoch and the share of it that ``torch.profiler``
    attributes (self CPU time) to :data:`PRODUCT_OPS`; ``grid_product_s`` is that part
    times the configured epochs and seeds, a floor for the grid with these kernels."""
    rows = []
    for ds, run_cfg, seeds in _seed0_runs(config_path, data_root, datasets):
        training = run_cfg["training"]
        task, model, optimizer = start_run(run_cfg, ds, torch.device("cpu"))
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
        rows.append({
            "dataset": run_cfg["dataset"], "experiment": run_cfg["experiment"], "epochs_timed": epochs,
            "epoch_ms": round(epoch_s * 1e3, 2), "product_share": round(share, 4),
            "product_ms": round(share * epoch_s * 1e3, 2),
            "grid_product_s": round(share * epoch_s * int(training["epochs"]) * seeds, 1),
        })  # fmt: skip
        log(f"  products {_run_label(run_cfg)}: {epoch_s * 1e3:.1f} ms/epoch, {share:.0%} in matrix products")
    return rows


def _run_label(run_cfg: dict[str, Any]) -> str:
    return f"{run_cfg['dataset']}/{run_cfg['experiment']}"


def render_products(rows: list[dict[str, Any]], env: dict[str, str], cores: int = 2) -> str:
    """Markdown: per dataset, the epoch of all experiments, its matrix products, and their
    total over the grid (core-seconds, and minutes on ``cores`` cores)."""
    lines = ["# Matrix products in training", "", *(f"- {key}: {value}" for key, value in env.items()), "",
             "| dataset | epoch of all experiments (ms) | of which matrix products (ms) | products, whole grid (core-s) |",
             "|---|---:|---:|---:|"]  # fmt: skip
    total = 0.0
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        mine = [row for row in rows if row["dataset"] == dataset]
        epoch, products = sum(r["epoch_ms"] for r in mine), sum(r["product_ms"] for r in mine)
        grid = sum(r["grid_product_s"] for r in mine)
        total += grid
        lines.append(f"| {dataset} | {epoch:.0f} | {products:.0f} ({products / epoch:.0%}) | {grid:.0f} |")
    lines += ["", f"All datasets: {total:.0f} core-seconds of matrix products, {total / cores / 60:.1f} minutes on {cores} cores.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsmoe.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--data-root", type=Path, default=Path("resources/pyg"),
                        help="folder with one prepared PyG root per dataset (<root>/<dataset>/)")  # fmt: skip
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer configurations and repeats (under a minute)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--default-allocator", action="store_true", help="do not call keep_freed_memory()")
    parser.add_argument("--runs", action="store_true", help="also time training runs of every experiment")
    parser.add_argument("--runs-only", action="store_true", help="only time training runs (implies --runs)")
    parser.add_argument("--run-epochs", type=int, default=20)
    parser.add_argument("--products", action="store_true",
                        help="only measure the share of matrix products in training epochs (products.{csv,md})")
    parser.add_argument("--product-epochs", type=int, default=3)
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--memory-child", nargs=2, metavar=("DATASET", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child, args.data_root, args.threads)))
        return 0

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    torch.set_num_threads(args.threads)
    tuned = False if args.default_allocator else keep_freed_memory()
    if args.quick:
        timer = Timer(min_repeats=2, max_repeats=5, budget_s=2.0, slow_s=0.3, slow_samples=1)
        datasets = [d for d in args.datasets if d != "PubMed"] if args.datasets == list(DATASETS) else args.datasets
    else:
        timer = Timer(min_repeats=3, max_repeats=7, budget_s=10.0, slow_s=0.5)
        datasets = args.datasets
    started = time.perf_counter()
    if args.products:
        product_rows = bench_products(args.config, args.data_root, args.product_epochs, args.datasets, log)
        markdown = render_products(product_rows, environment(args.threads, tuned))
        write_outputs(args.out_dir, product_rows, markdown, name="products", fieldnames=list(product_rows[0]))
        log(f"wrote {args.out_dir / 'products.csv'} and {args.out_dir / 'products.md'}")
        return 0
    if args.runs_only:
        args.runs = True
        datasets = args.datasets
    rows: list[dict[str, Any]] = []
    for dataset in [] if args.runs_only else datasets:
        log(f"{dataset}:")
        rows += bench_dataset(dataset, args.data_root, args.quick, timer, log)
    if not args.no_memory and not args.runs_only:
        memory_datasets = datasets[:1] if args.quick else datasets
        memory_configs = MEMORY_CONFIGS[:2] if args.quick else MEMORY_CONFIGS
        measured = bench_memory(memory_datasets, memory_configs, args.data_root, args.threads, log)
        for (dataset, config), memory in measured.items():
            cfg = CONFIGS[config]
            rows.append({
                "dataset": dataset, "scope": "memory", "config": config, "num_experts": cfg["num_experts"],
                "top_k": cfg.get("top_k", cfg["num_experts"]), "pool": cfg.get("pool", ""), "vectorized_ms": "",
                "reference_ms": "", "speedup": "", "vectorized_repeats": "", "reference_repeats": "",
                **{key: round(value, 1) for key, value in memory.items()},
            })  # fmt: skip
    if rows:
        checks = targets(rows)
        markdown = render_markdown(rows, checks, environment(args.threads, tuned), args.quick)
        write_outputs(args.out_dir, rows, markdown)
        log(f"wrote {args.out_dir / 'moe_layer.csv'} and {args.out_dir / 'moe_layer.md'} in {time.perf_counter() - started:.0f}s")
        for c in checks:
            log(f"  {'PASS' if c['passed'] else 'FAIL'} {c['dataset']} {c['scope']}: {c['target']} (measured {c['value']:.2f})")

    if args.runs:
        run_rows = bench_runs(args.config, args.data_root, args.run_epochs, datasets, log)
        _write_csv(args.out_dir / "run_times.csv", run_rows, list(run_rows[0]))
        log(f"wrote {args.out_dir / 'run_times.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
