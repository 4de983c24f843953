"""``python -m gsmoe.bench [layers|runs|products] [options]``: one measurement per call.

``layers`` (the default) times the MoE layer, training steps and epochs against the loop
reference and measures memory (``moe_layer.{csv,md}``); ``runs`` times short training runs
of every experiment (``run_times.csv``); ``products`` measures the share of matrix products
in training (``products.{csv,md}``).  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gsmoe.bench.memory import bench_memory
from gsmoe.bench.render import environment, render_markdown, render_products, write_csv, write_outputs
from gsmoe.bench.runs import bench_products, bench_runs
from gsmoe.bench.targets import targets
from gsmoe.bench.timer import Timer
from gsmoe.bench.timings import CSV_FIELDS, bench_dataset
from gsmoe.bench.workloads import MEMORY_WORKLOADS, QUICK_WORKLOADS, WORKLOADS, workload_names
from gsmoe.config import ConfigError, dataset_config, load_config
from gsmoe.nn.runtime import keep_freed_memory

#: Left out of ``layers --quick`` unless named with --datasets (its epochs take longest).
QUICK_SKIPS = ("PubMed",)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=Path("config.yaml"),
                        help="the workflow config whose experiments are measured (default: config.yaml)")  # fmt: skip
    common.add_argument("--data-root", type=Path, default=Path("resources/pyg"),
                        help="folder with one prepared PyG root per dataset (<root>/<dataset>/)")  # fmt: skip
    common.add_argument("--datasets", nargs="+", help="datasets of the config (default: all)")
    common.add_argument("--out-dir", type=Path, default=Path("results/benchmarks"))
    common.add_argument("--threads", type=int, default=1)
    common.add_argument("--default-allocator", action="store_true", help="do not call keep_freed_memory()")
    parser = argparse.ArgumentParser(prog="python -m gsmoe.bench", description=__doc__.split("\n\n")[1].replace("``", ""))
    sub = parser.add_subparsers(dest="measurement", required=True)
    layers = sub.add_parser("layers", parents=[common], help="layer, step and epoch timings and memory (the default)")
    layers.add_argument("--quick", action="store_true", help="fewer workloads, datasets and repeats (under a minute)")
    layers.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    runs = sub.add_parser("runs", parents=[common], help="time training runs of every experiment")
    runs.add_argument("--epochs", type=int, default=20, help="epochs timed per run (default: 20)")
    products = sub.add_parser("products", parents=[common], help="share of matrix products in training epochs")
    products.add_argument("--epochs", type=int, default=3, help="epochs profiled per experiment (default: 3)")
    return parser


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _layers(args: argparse.Namespace, config: Mapping[str, Any], datasets: list[str], env: dict[str, str]) -> None:
    if args.quick:
        timer = Timer(min_repeats=2, max_repeats=5, budget_s=2.0, slow_s=0.3, slow_samples=1)
        datasets = datasets if args.datasets else [d for d in datasets if d not in QUICK_SKIPS]
    else:
        timer = Timer(min_repeats=3, max_repeats=7, budget_s=10.0, slow_s=0.5)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for dataset in datasets:
        _log(f"{dataset}:")
        names = workload_names(dataset, QUICK_WORKLOADS if args.quick else tuple(WORKLOADS))
        rows += bench_dataset(config, dataset, args.data_root, names, args.quick, timer, _log)
    if not args.no_memory:
        rows += bench_memory(config, args.config, datasets[:1] if args.quick else datasets,
                             MEMORY_WORKLOADS[:2] if args.quick else MEMORY_WORKLOADS,
                             args.data_root, args.threads, _log)  # fmt: skip
    checks = targets(rows)
    write_outputs(args.out_dir, "moe_layer", rows, CSV_FIELDS, render_markdown(rows, checks, env, args.quick))
    elapsed = time.perf_counter() - started
    _log(f"wrote {args.out_dir / 'moe_layer.csv'} and {args.out_dir / 'moe_layer.md'} in {elapsed:.0f}s")
    for c in checks:
        result = "PASS" if c["passed"] else "FAIL"
        _log(f"  {result} {c['dataset']} {c['scope']}: {c['target']} (measured {c['value']:.2f})")


def _runs(args: argparse.Namespace, config: Mapping[str, Any], datasets: list[str], env: dict[str, str]) -> None:
    rows = bench_runs(config, args.data_root, args.epochs, datasets, _log)
    write_csv(args.out_dir / "run_times.csv", rows, list(rows[0]))
    _log(f"wrote {args.out_dir / 'run_times.csv'}")


def _products(args: argparse.Namespace, config: Mapping[str, Any], datasets: list[str], env: dict[str, str]) -> None:
    rows = bench_products(config, args.data_root, args.epochs, datasets, _log)
    write_outputs(args.out_dir, "products", rows, list(rows[0]), render_products(rows, env))
    _log(f"wrote {args.out_dir / 'products.csv'} and {args.out_dir / 'products.md'}")


#: The measurements, by their command-line name (the parser's subcommands).
MEASURE: dict[str, Callable[[argparse.Namespace, Mapping[str, Any], list[str], dict[str, str]], None]] = {
    "layers": _layers,
    "runs": _runs,
    "products": _products,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one measurement; without a measurement name, ``layers``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*MEASURE, "-h", "--help"):
        argv.insert(0, "layers")
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        datasets = list(args.datasets or config["datasets"])
        for dataset in datasets:
            dataset_config(config, dataset)
    except (ConfigError, OSError) as err:
        _log(f"error: {err}")
        return 1
    torch.set_num_threads(args.threads)
    tuned = False if args.default_allocator else keep_freed_memory()
    try:
        MEASURE[args.measurement](args, config, datasets, environment(args.threads, tuned))
    except ConfigError as err:  # e.g. the config has no experiment a workload names
        _log(f"error: {err}; the benchmark's workloads are gsmoe.bench.workloads.WORKLOADS")
        return 1
    return 0
