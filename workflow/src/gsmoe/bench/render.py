"""The benchmark's outputs: the environment it ran in, Markdown reports, atomic CSV and Markdown files."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gsmoe.io import atomic_open


def environment(threads: int, tuned_allocator: bool) -> dict[str, str]:
    """Where and how the benchmark ran: date, commit, machine, versions, threads, allocator."""

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
    """Markdown of the layer benchmark: the environment, the targets, the timings, the memory."""
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
    minutes = total / cores / 60
    lines += ["", f"All datasets: {total:.0f} core-seconds of matrix products, {minutes:.1f} minutes on {cores} cores.", ""]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]], fieldnames: Sequence[str]) -> None:
    """``rows`` as CSV with the columns ``fieldnames``, written atomically."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(out_dir: Path, name: str, rows: list[dict[str, Any]], fieldnames: Sequence[str], markdown: str) -> None:
    """``<name>.csv`` (the rows) and ``<name>.md``, each written atomically."""
    write_csv(out_dir / f"{name}.csv", rows, fieldnames)
    with atomic_open(out_dir / f"{name}.md", "w", encoding="utf-8") as handle:
        handle.write(markdown)
