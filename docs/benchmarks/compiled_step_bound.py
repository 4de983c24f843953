r"""How fast an ENZYMES training step of the dense-gated models could run on this CPU with
PyTorch's own means (issue #18): the project's step next to the same model written as
plain tensor code, run eagerly, with Adam's fused step, and compiled by ``torch.compile``
without graph breaks.

The plain version covers the experiments whose layer is a GraphSAGE update with dense
softmax gating (``baseline``, ``moe4_softmax``, ``moe8``, ``moe16``): per-node messages
``ReLU(W h_u + b)`` averaged over the neighbours, the update ``sum_j g_j ReLU(W_j x_v +
b_j)`` of ``x_v = CONCAT(h_v, h_N(v))`` (one ``ReLU(Linear)`` for the baseline), L2
normalisation, ReLU, global max pooling and the head.  Before timing, it is checked
against the project's model with the same parameters on one batch: loss and every
gradient to float32 tolerance.  The mean over the neighbours is a gather and an
``index_add_`` (``torch.compile`` does not trace the project's CSR products).

Each variant keeps its own copy of the parameters and its own optimiser; rounds alternate
over the variants in one process, and each variant's median over the rounds is reported
(the machine is shared: compare the ratios).  Also printed: the multiply-adds of a step
(:class:`gsmoe.flops.MultiplyAddCounter`), the time the project's and the compiled step
spend in matrix products (``torch.profiler``), the project's whole training epoch, the
rate of a 2048 x 2048 product, and how far the compiled code's gradients are from the
eager code's (compiling changes a run's numbers when they differ).  Compilation starts
from an empty cache.

This script is outside the ``gsmoe`` package, so that it does not enter the code
fingerprint of the run records; nothing in training imports it.  Run from the repository
root with the virtual environment, after ``prepare`` made the ENZYMES dataset::

    python docs/benchmarks/compiled_step_bound.py --root resources/pyg/ENZYMES \
        --out docs/benchmarks/compiled_step_bound.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gsmoe.bench.runs import PRODUCT_OPS
from gsmoe.config import load_config, resolve_run
from gsmoe.datasets import load_dataset
from gsmoe.flops import MultiplyAddCounter, dense_rate
from gsmoe.nn.runtime import keep_freed_memory
from gsmoe.tasks import train_step
from gsmoe.train import start_run

EXPERIMENTS = ("baseline", "moe4_softmax", "moe8", "moe16")


def plain_parameters(model: torch.nn.Module, gradients: bool = False) -> dict[str, torch.Tensor]:
    """The project model's parameters (or, with ``gradients``, their gradients) in the plain
    layout: ``(in, out)`` matrices, the experts of a layer side by side as ``(in, E * out)``."""

    def value(p: torch.Tensor) -> torch.Tensor:
        return (p.grad if gradients else p).detach()

    params = {}
    for i, conv in enumerate(model.convs):
        message = conv.lin_message
        params[f"{i}.wm"], params[f"{i}.bm"] = value(message.weight).t(), value(message.bias)
        if conv.update_experts is None:
            update = conv.lin_update
            params[f"{i}.we"], params[f"{i}.be"] = value(update.weight).t(), value(update.bias)
        else:
            weight = value(conv.update_experts.weight)  # (E, in, out)
            params[f"{i}.we"] = weight.permute(1, 0, 2).reshape(weight.size(1), -1)
            params[f"{i}.be"] = value(conv.update_experts.bias).reshape(-1)
            gate = conv.update_gate.lin
            params[f"{i}.wg"], params[f"{i}.bg"] = value(gate.weight).t(), value(gate.bias)
    params["w1"], params["b1"] = value(model.head[0].weight).t(), value(model.head[0].bias)
    params["w2"], params["b2"] = value(model.head[2].weight).t(), value(model.head[2].bias)
    return {name: p.contiguous().clone().requires_grad_(not gradients) for name, p in params.items()}


def plain_loss(p: dict[str, torch.Tensor], x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
               inv_degree: torch.Tensor, batch: torch.Tensor, num_graphs: int, y: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The NLL loss of the dense-gated model, as plain tensor code (see the module docstring)."""
    h = x
    hidden = p["0.bm"].numel()
    for i in range(2):
        message = torch.relu(h @ p[f"{i}.wm"] + p[f"{i}.bm"])
        agg = torch.zeros(h.size(0), hidden, dtype=h.dtype).index_add_(0, dst, message[src]) * inv_degree
        x_cat = torch.cat([h, agg], 1)
        if f"{i}.wg" in p:
            gate = torch.softmax(x_cat @ p[f"{i}.wg"] + p[f"{i}.bg"], -1)
            experts = torch.relu(x_cat @ p[f"{i}.we"] + p[f"{i}.be"]).view(h.size(0), -1, hidden)
            out = (gate.unsqueeze(-1) * experts).sum(1)
        else:
            out = torch.relu(x_cat @ p[f"{i}.we"] + p[f"{i}.be"])
        h = torch.relu(F.normalize(out, p=2.0, dim=-1))
    index = batch.unsqueeze(-1).expand(-1, hidden)
    pooled = torch.full((num_graphs, hidden), float("-inf"), dtype=h.dtype).scatter_reduce(0, index, h, "amax")
    logits = (pooled @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]  # the head has no activation
    return F.nll_loss(F.log_softmax(logits, -1), y)


def plain_inputs(batch: Any) -> tuple:
    src, dst = batch.edge_index
    degree = torch.bincount(dst, minlength=batch.num_nodes).clamp_min(1).to(batch.x.dtype).unsqueeze(-1)
    return batch.x, src, dst, 1.0 / degree, batch.batch, batch.num_graphs, batch.y.view(-1)


def check_plain_equals_project(model: torch.nn.Module, batch: Any) -> float:
    """Loss and gradients of the plain code against the project's model (same parameters,
    one batch); returns the largest absolute gradient difference."""
    params = plain_parameters(model)
    model.zero_grad()
    out = model(batch)
    loss = F.nll_loss(out.log_probs, batch.y.view(-1)) + out.aux_loss
    loss.backward()
    plain = plain_loss(params, *plain_inputs(batch))
    plain.backward()
    torch.testing.assert_close(plain, loss.detach(), rtol=1e-5, atol=1e-6)
    reference = plain_parameters(model, gradients=True)
    worst = 0.0
    for name, p in params.items():
        torch.testing.assert_close(p.grad, reference[name], rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
        worst = max(worst, float((p.grad - reference[name]).abs().max()))
    model.zero_grad()
    return worst


def timed_rounds(variants: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds of one call of each variant over ``rounds`` alternating rounds."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, epoch in variants.items():
            start = time.perf_counter()
            epoch()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def product_ms(step: Callable[[], None], steps: int) -> float:
    """Milliseconds per step that ``step`` spends in matrix products (profiler self time)."""
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(steps):
            step()
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in PRODUCT_OPS) / steps / 1e3


def measure(config: dict, dataset: Any, experiment: str, rounds: int) -> dict[str, Any]:
    run = resolve_run(config, "ENZYMES", experiment, 0)
    task, model, optimizer = start_run(run, dataset, torch.device("cpu"))
    model.train()
    batches = [batch for batch, _ in zip(task.loader, range(15))]
    worst = check_plain_equals_project(model, batches[0])
    with MultiplyAddCounter() as counter:
        train_step(model, optimizer, batches[0])
    lr, weight_decay = run["training"]["lr"], run["training"]["weight_decay"]
    inputs = [plain_inputs(batch) for batch in batches]

    def plain_epoch(loss_fn: Callable[..., torch.Tensor], fused: bool) -> Callable[[], None]:
        params = plain_parameters(model)
        adam = torch.optim.Adam(params.values(), lr=lr, weight_decay=weight_decay, foreach=not fused, fused=fused)

        def epoch() -> None:
            for args in inputs:
                adam.zero_grad()
                loss_fn(params, *args).backward()
                adam.step()

        return epoch

    torch.compiler.reset()  # compile for this model alone, as a training process would
    breaks_before = sum(torch._dynamo.utils.counters["graph_break"].values())
    compiled = torch.compile(plain_loss)  # sizes that change between batches become dynamic
    variants = {
        "project": lambda: [train_step(model, optimizer, batch) for batch in batches],
        "plain": plain_epoch(plain_loss, fused=False),
        "plain_fused_adam": plain_epoch(plain_loss, fused=True),
        "compiled_fused_adam": plain_epoch(compiled, fused=True),
    }
    start = time.perf_counter()
    for epoch in variants.values():  # warm-up; compiles the compiled variant
        epoch()
    warm_up_s = time.perf_counter() - start
    compiled_grad_diff = compiled_against_eager(model, compiled, inputs[0])
    # The project's whole training epoch (batching and the loss read-out included, as a run
    # trains it) beside its steps alone, to turn the step times into epoch times.
    variants["project_epoch"] = lambda: task.train_epoch(model, optimizer)
    per_epoch = timed_rounds(variants, rounds)
    return {
        "experiment": experiment,
        "multiply_adds": counter.multiply_adds,
        "ms": {name: seconds / len(batches) * 1e3 for name, seconds in per_epoch.items()},
        "products_ms": {
            name: product_ms(variants[name], 1) / len(batches) for name in ("project", "compiled_fused_adam")
        },
        "worst_grad_diff": worst,
        "compiled_grad_diff": compiled_grad_diff,
        "warm_up_s": warm_up_s,
        "graph_breaks": sum(torch._dynamo.utils.counters["graph_break"].values()) - breaks_before,
    }


def compiled_against_eager(model: torch.nn.Module, compiled: Callable[..., torch.Tensor], args: tuple) -> float:
    """Largest absolute difference between the compiled and the eager plain code's gradients
    on one batch (same parameters): whether compiling would change a run's numbers."""
    grads = []
    for loss_fn in (plain_loss, compiled):
        params = plain_parameters(model)
        loss_fn(params, *args).backward()
        grads.append([p.grad for p in params.values()])
    return max(float((a - b).abs().max()) for a, b in zip(*grads))


def report(results: list[dict[str, Any]], peak: float, rounds: int) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# ENZYMES step: the project's against plain, fused-Adam and compiled code",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit: {commit}; "
        f"load average at the end: {load}",
        f"- machine: {platform.machine()}, {torch.get_num_threads()} thread, torch {torch.__version__}, "
        f"python {platform.python_version()}",
        f"- dense 2048 x 2048 product: {peak / 1e9:.1f} G multiply-adds/s",
        f"- {rounds} alternating rounds of one epoch (15 steps of 32 graphs, seed 0) per variant; median ms per step",
        "- products: profiler self time of the matrix products in one epoch, per step",
        "- epoch: the project's whole training epoch per step (its steps, the batching and the loss read-out); "
        "compiled epoch = that less the project's steps plus the compiled steps",
        "",
        "| experiment | M multiply-adds / step | project ms | plain ms | plain + fused Adam ms "
        "| compiled + fused Adam ms | step: project / compiled | project epoch ms | epoch: project / compiled "
        "| of the dense rate: project, compiled | products ms: project, compiled | products at the dense rate ms "
        "| outside the products ms: project, compiled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ms, products = r["ms"], r["products_ms"]

        def rate(step_ms: float) -> float:
            return r["multiply_adds"] / (step_ms / 1e3) / peak

        project, compiled = ms["project"], ms["compiled_fused_adam"]
        epoch = ms["project_epoch"]
        compiled_epoch = epoch - project + compiled
        lines.append(
            f"| {r['experiment']} | {r['multiply_adds'] / 1e6:.1f} | {project:.2f} | {ms['plain']:.2f} "
            f"| {ms['plain_fused_adam']:.2f} | {compiled:.2f} | {project / compiled:.2f} "
            f"| {epoch:.2f} | {epoch / compiled_epoch:.2f} "
            f"| {rate(project):.0%}, {rate(compiled):.0%} "
            f"| {products['project']:.2f}, {products['compiled_fused_adam']:.2f} "
            f"| {r['multiply_adds'] / peak * 1e3:.2f} "
            f"| {project - products['project']:.2f}, {compiled - products['compiled_fused_adam']:.2f} |"
        )
    warm_up = ", ".join(f"{r['experiment']} {r['warm_up_s']:.0f} s" for r in results)
    compiled_diff = ", ".join(f"{r['experiment']} {r['compiled_grad_diff']:.1e}" for r in results)
    breaks = ", ".join(f"{r['experiment']} {r['graph_breaks']}" for r in results)
    lines += [
        "",
        "Checks: the plain code's loss and gradients equal the project's on the first batch "
        f"(largest gradient difference {max(r['worst_grad_diff'] for r in results):.1e}); "
        "compiled against eager plain code, largest gradient difference on the first batch: "
        f"{compiled_diff}; "
        f"graph breaks of the compiled code: {breaks}; "
        f"warm-up of the four variants, compilation from an empty cache included: {warm_up}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the prepared ENZYMES folder (resources/pyg/ENZYMES)")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS, choices=EXPERIMENTS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    # An empty compile cache, so that the warm-up includes compilation, as in the first
    # training process on a machine (torch's compiler reads the variable when it compiles).
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="compiled_step_bound_")
    torch.set_num_threads(1)
    keep_freed_memory()
    config = load_config(args.config)
    first = resolve_run(config, "ENZYMES", args.experiments[0], 0)
    dataset = load_dataset(first["source"], first["pyg_name"], Path(args.root))
    peak = dense_rate()
    results = [measure(config, dataset, experiment, args.rounds) for experiment in args.experiments]
    text = report(results, peak, args.rounds)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
