"""Probe tables: what a probe overlay's experiments (``docs/probes/*.yaml``) did, from their
run records, as Markdown: the paper protocol's and the standard protocol's accuracy, the
training accuracy at the last evaluation, and the expert load of noisy top-k layers (how
many experts the evaluation pass routed to, and the share of the busiest k).

    python -m gsmoe.report.probes --config config.yaml tests/workflow/mirror.yaml \\
        docs/probes/topk128_enzymes_ablation.yaml --with topk128 --datasets ENZYMES

The config files are merged in order, as Snakemake's ``--configfile`` does; the
experiments are those the last file defines, after the ``--with`` ones (grid experiments
to compare with).  Every record is verified first (:func:`gsmoe.report.verify.verify_records`:
its config, data and code against today's), so a table never mixes settings or code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gsmoe.config import experiment_datasets, run_record_path, validate_config
from gsmoe.io import read_json
from gsmoe.modelspec import GATES
from gsmoe.overlay import resolve_base
from gsmoe.protocols import STANDARD_METRIC
from gsmoe.report.aggregate import runs_frame, write_csv
from gsmoe.report.stats import sample_std
from gsmoe.report.tables import DASH, format_mean_std
from gsmoe.report.verify import verify_records

__all__ = ["probe_rows", "probe_markdown", "main"]


def _mean_std(values: Sequence[float]) -> str:
    return format_mean_std(sum(values) / len(values), sample_std(values))


def _load_summary(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """(experts with load > 0, share of the busiest k) averaged over the record's sparse
    stages; None without a sparse stage.  A sparse stage's loads are the fraction of routing
    rows choosing each expert, so they sum to k."""
    spec = GATES.get(record["config"]["model"]["gate"])
    if spec is None or not spec.sparse:
        return None
    top_k = record["config"]["model"]["top_k"]
    used, shares = [], []
    for loads in record["expert_load"].values():
        total = sum(loads)
        used.append(sum(1 for load in loads if load > 0))
        shares.append(sum(sorted(loads, reverse=True)[:top_k]) / total if total else 0.0)
    return sum(used) / len(used), sum(shares) / len(shares)


def probe_rows(records: Iterable[Mapping[str, Any]], table_metric: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per (experiment, dataset), in the order first seen: ``table_metric`` (what
    the tables show) and the standard protocol's test accuracy."""
    metrics = {"table": (table_metric["protocol"], table_metric["metric"]), "standard": STANDARD_METRIC}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["experiment"], record["dataset"]), []).append(record)
    rows = []
    for (experiment, dataset), runs in groups.items():
        loads = [s for s in map(_load_summary, runs) if s is not None]
        rows.append({
            "experiment": experiment,
            "dataset": dataset,
            "n": len(runs),
            **{
                column: _mean_std([r["metrics"][protocol][metric] for r in runs])
                for column, (protocol, metric) in metrics.items()
            },
            "train": _mean_std([r["curves"]["train_acc"][-1] for r in runs]),
            "experts_used": f"{sum(u for u, _ in loads) / len(loads):.1f}" if loads else DASH,
            "busiest_k_share": f"{sum(s for _, s in loads) / len(loads):.2f}" if loads else DASH,
        })  # fmt: skip
    return rows


def probe_markdown(rows: Sequence[Mapping[str, Any]], table_metric: Mapping[str, str]) -> str:
    """The rows as a Markdown table (mean ± sample standard deviation over seeds)."""
    columns = {
        "experiment": "experiment",
        "dataset": "dataset",
        "n": "seeds",
        "table": f"{table_metric['protocol']} protocol, {table_metric['metric']}",
        "standard": f"{STANDARD_METRIC[0]} protocol, {STANDARD_METRIC[1]}",
        "train": "training accuracy, last evaluation",
        "experts_used": "experts used (evaluation pass)",
        "busiest_k_share": "share of the busiest k",
    }
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[key]) for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsmoe.report.probes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", nargs="+", required=True, help="config files, merged in order; the last is the probe")
    parser.add_argument("--runs-dir", default="results/runs", help="run records (default: %(default)s)")
    parser.add_argument("--with", dest="compare", nargs="*", default=[], help="grid experiments to show first")
    parser.add_argument("--datasets", nargs="*", default=None, help="only these datasets (default: each experiment's)")
    parser.add_argument("--runs-csv", default=None, help="also write the runs as a runs.csv (one row per run, with its code)")
    args = parser.parse_args(argv)

    # Read and merged as the workflow reads a config's base files (their errors, "*" entries).
    config = validate_config(resolve_base({"base": list(args.config)}))
    probe = resolve_base({"base": [args.config[-1]]})
    experiments = [*args.compare, *(probe.get("experiments") or {})]
    found, missing = [], []
    for experiment in experiments:
        for dataset in experiment_datasets(config, experiment):
            if args.datasets is not None and dataset not in args.datasets:
                continue
            for seed in config["seeds"]:
                path = run_record_path(args.runs_dir, dataset, experiment, seed)
                if Path(path).exists():
                    found.append((path, read_json(path)))
                else:
                    missing.append(f"{dataset}/{experiment}/seed{seed}")
    if not found:
        print(f"no run records of {', '.join(experiments)} under {args.runs_dir}", file=sys.stderr)
        return 1
    if missing:  # a probe of fewer seeds is fine, but the table must not pass for the full one
        print(f"{len(missing)} configured run(s) not found (the table's seed counts exclude them): "
              f"{', '.join(missing)}", file=sys.stderr)  # fmt: skip
    verify_records(found, config, verify_code=config["verify_code"])
    if args.runs_csv:
        write_csv(runs_frame([record for _, record in found]), args.runs_csv)
    rows = probe_rows((record for _, record in found), config["table_metric"])
    sys.stdout.write(probe_markdown(rows, config["table_metric"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
