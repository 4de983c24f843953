"""Multiply-adds of a training step and the rate a step achieves, next to the rate of a
large dense product measured in the same process (the core's practical peak).

``python -m gsmoe.flops DATASET EXPERIMENT --root PREPARED_FOLDER [--roles ROLES.npz]``
prints, for one training step of seed 0 (a mini-batch of a graph task, the full graph of
a node task), the multiply-adds of its matrix products (forward and backward), the step's
median time, the rate that gives, the rate of a ``2048 x 2048`` single-precision product
and the ratio of the two (docs/performance.md).

Counted: dense ``mm``/``addmm``/``bmm``/``baddbmm`` as ``rows x inner x columns``, and a
sparse (CSR) operand as its non-zeros times the dense operand's columns.  Elementwise
work is not counted: it is what a step should spend little time on.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_PRODUCTS = {
    torch.ops.aten.mm.default: (0, 1),
    torch.ops.aten.addmm.default: (1, 2),
    torch.ops.aten.addmm_.default: (1, 2),
    torch.ops.aten.bmm.default: (0, 1),
    torch.ops.aten.baddbmm.default: (1, 2),
}
_PRODUCTS_OUT = {torch.ops.aten.mm.out: (0, 1), torch.ops.aten.addmm.out: (1, 2)}


def _multiply_adds(left: torch.Tensor, right: torch.Tensor) -> int:
    if left.layout != torch.strided:
        return int(left.values().numel()) * right.shape[-1]
    if right.layout != torch.strided:
        return int(right.values().numel()) * left.shape[0]
    batch = left.shape[0] if left.dim() == 3 else 1
    return batch * left.shape[-2] * left.shape[-1] * right.shape[-1]


class MultiplyAddCounter(TorchDispatchMode):
    """Counts the multiply-adds of the matrix products run while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.multiply_adds = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        operands = _PRODUCTS.get(func) or _PRODUCTS_OUT.get(func)
        if operands is not None:
            self.multiply_adds += _multiply_adds(args[operands[0]], args[operands[1]])
        return func(*args, **(kwargs or {}))


def dense_rate(size: int = 2048, repeats: int = 5) -> float:
    """Multiply-adds per second of a ``size x size`` float32 product (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return size**3 / best


def step_rate(run_cfg: dict[str, Any], dataset: Any, steps: int = 30) -> dict[str, float]:
    """Multiply-adds of one training step of the run and its median time over ``steps``."""
    from gsmoe.tasks import GraphTask, train_step
    from gsmoe.train import start_run

    task, model, optimizer = start_run(run_cfg, dataset, torch.device("cpu"))
    model.train()
    if isinstance(task, GraphTask):
        batch, mask = next(iter(task.loader)), None
    else:
        batch, mask = task.data, task.data.train_mask
    train_step(model, optimizer, batch, mask)  # warm-up: caches, Adam state
    with MultiplyAddCounter() as counter:
        train_step(model, optimizer, batch, mask)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step(model, optimizer, batch, mask)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {"multiply_adds": float(counter.multiply_adds), "step_s": step_s, "rate": counter.multiply_adds / step_s}


def main(argv: list[str] | None = None) -> None:
    from gsmoe.config import load_config, resolve_run
    from gsmoe.datasets import load_dataset
    from gsmoe.nn.runtime import keep_freed_memory
    from gsmoe.roles import attach_roles, load_roles

    parser = argparse.ArgumentParser(prog="python -m gsmoe.flops", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--root", required=True, help="prepared PyG dataset folder")
    parser.add_argument("--roles", help="roles .npz (needed by role-gated experiments)")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    keep_freed_memory()
    config = load_config(args.config)
    first = resolve_run(config, args.dataset, args.experiments[0], 0)
    dataset = load_dataset(first["source"], first["pyg_name"], Path(args.root))
    if args.roles:
        attach_roles(dataset, load_roles(args.roles))
    peak = dense_rate()
    print(f"dense 2048^3 product: {peak / 1e9:.1f} G multiply-adds/s (1 thread)")
    print("| dataset | experiment | M multiply-adds / step | ms / step | G multiply-adds/s | of the dense rate |")
    print("|---|---|---:|---:|---:|---:|")
    for experiment in args.experiments:
        result = step_rate(resolve_run(config, args.dataset, experiment, 0), dataset, args.steps)
        print(f"| {args.dataset} | {experiment} | {result['multiply_adds'] / 1e6:.1f} | {result['step_s'] * 1e3:.2f} "
              f"| {result['rate'] / 1e9:.1f} | {result['rate'] / peak:.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
