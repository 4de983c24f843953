"""Command line: ``python -m gsmoe <command>`` (or the ``gsmoe`` entry point).

The Snakemake rules call the same package functions through their scripts; this CLI is
for people: fetch and prepare a dataset, extract its roles, train one run from a config
file without Snakemake, or report on the runs that exist.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from gsmoe.config import dataset_config, load_config, raw_files, resolve_run, verified_members
from gsmoe.report.verify import VERIFY_CODE_MODES


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fetch(args: argparse.Namespace) -> None:
    from gsmoe.datasets import prepare_dataset
    from gsmoe.download import fetch

    config = load_config(args.config)
    spec = dataset_config(config, args.dataset)
    files = raw_files(config, args.dataset)
    paths = []
    for item in files:
        dest = Path(args.raw_dir) / spec["source"] / item["relpath"]
        if not dest.exists():
            print(f"fetching {item['url']} -> {dest}", file=sys.stderr)
            fetch(item["url"], dest, sha256=item["sha256"], members=item["members"])
        paths.append(dest)
    # As the prepare rule: files verified again (also those fetched earlier), and a zip
    # checked member by member yields those members only.
    prepare_dataset(
        spec["source"], spec["pyg_name"], paths, Path(args.root), verified_members(config, args.dataset), checksums=files
    )
    print(f"{args.dataset} prepared in {args.root}", file=sys.stderr)


def _roles(args: argparse.Namespace) -> None:
    from gsmoe.datasets import load_dataset
    from gsmoe.roles import dataset_roles, save_roles

    config = load_config(args.config)
    spec = dataset_config(config, args.dataset)
    dataset = load_dataset(spec["source"], spec["pyg_name"], Path(args.root))
    roles = config["roles"]
    table = dataset_roles(dataset, n_roles=roles["n_roles"], seed=roles["seed"], workers=args.workers)
    save_roles(args.out, table)


def _train(args: argparse.Namespace) -> None:
    from gsmoe.train import train_and_save

    config = load_config(args.config)
    run_cfg = resolve_run(config, args.dataset, args.experiment, args.seed)
    if args.epochs is not None:
        run_cfg["training"]["epochs"] = args.epochs
    train_and_save([run_cfg], [args.out], args.root, args.roles, device=args.device or config["device"],
                   threads=args.threads)


def _report(args: argparse.Namespace) -> None:
    from gsmoe.config import run_record_path, run_table
    from gsmoe.report.aggregate import aggregate_runs
    from gsmoe.report.claims import write_claims
    from gsmoe.report.figures import write_figure
    from gsmoe.report.tables import write_tables

    config = load_config(args.config)
    if args.verify_code is not None:
        config["verify_code"] = args.verify_code
    out = Path(args.out)
    expected = run_table(config)
    paths = [run_record_path(args.runs_dir, r["dataset"], r["experiment"], r["seed"]) for r in expected]
    aggregate_runs(paths, expected, str(out / "runs.csv"), str(out / "summary.csv"),
                   allow_missing=args.allow_missing, config=config)
    write_tables(str(out / "summary.csv"), config["tables"], config["experiments"], config["table_metric"],
                 len(config["seeds"]), str(out / "tables"))
    for name, figure in config["figures"].items():
        figure_runs = [
            path
            for path, run in zip(paths, expected, strict=True)
            if run["dataset"] == figure["dataset"] and run["experiment"] in figure["experiments"]
            and Path(path).exists()
        ]
        pdf, png = out / "figures" / f"{name}.pdf", out / "figures" / f"{name}.png"
        if not figure_runs and args.allow_missing:
            # A copy from an earlier report would pass for a figure of these runs.
            pdf.unlink(missing_ok=True)
            png.unlink(missing_ok=True)
            warnings.warn(
                f"figure {name}: no runs of {figure['experiments']} on {figure['dataset']} in {args.runs_dir}; "
                "skipped (an earlier copy of it in --out is removed)"
            )
            continue
        write_figure(figure_runs, figure, config["experiments"], str(pdf), str(png))
    write_claims(str(out / "runs.csv"), config, str(out / "claims.md"), str(out / "claims.csv"))
    print(f"report of {args.runs_dir} written to {out}", file=sys.stderr)


def _accept_code(args: argparse.Namespace) -> None:
    from gsmoe.provenance import update_code_fingerprint_file

    update_code_fingerprint_file(args.file, accept=True)
    print(
        f"{args.file}: the current code is accepted, existing run records are not retrained for it. "
        "Aggregate them with `verify_code: grid` in the config (or report --verify-code grid).",
        file=sys.stderr,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m gsmoe``."""
    parser = argparse.ArgumentParser(prog="gsmoe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml", help="workflow config file (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch", help="download (or copy from the mirror), verify and prepare a dataset")
    fetch.add_argument("dataset")
    fetch.add_argument("--raw-dir", default="resources/raw", help="where raw files go (default: %(default)s)")
    fetch.add_argument("--root", required=True, help="PyG dataset folder to prepare, e.g. resources/pyg/Cora")
    fetch.set_defaults(func=_fetch)

    roles = commands.add_parser("roles", help="extract GraphRole role distributions of a prepared dataset")
    roles.add_argument("dataset")
    roles.add_argument("--root", required=True, help="prepared PyG dataset folder")
    roles.add_argument("--out", required=True, help="output .npz file")
    roles.add_argument("--workers", type=int, default=1, help="processes for per-graph extraction")
    roles.set_defaults(func=_roles)

    train = commands.add_parser("train", help="train one (dataset, experiment, seed) run and write its JSON record")
    train.add_argument("dataset")
    train.add_argument("experiment")
    train.add_argument("seed", type=int)
    train.add_argument("--root", required=True, help="prepared PyG dataset folder")
    train.add_argument("--roles", default=None, help="roles .npz (needed by role-gated experiments)")
    train.add_argument("--out", required=True, help="output JSON file")
    train.add_argument("--device", default=None, help="auto, cpu or cuda (default: the config's device)")
    train.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    train.add_argument("--epochs", type=_positive_int, default=None, help="override the number of epochs (the record's config then differs from the config's run, "
                       "and report refuses it: for trying things out)")
    train.set_defaults(func=_train)

    report = commands.add_parser(
        "report",
        help="aggregate the run records that exist into summary, tables, figures and claims "
        "(what the workflow's last stages do, also for an incomplete grid with --allow-missing)",
    )
    report.add_argument("--runs-dir", default="results/runs", help="folder of run records (default: %(default)s)")
    report.add_argument("--out", required=True, help="output folder")
    report.add_argument("--allow-missing", action="store_true",
                        help="report cells with fewer seeds than configured (n is recorded per cell) "
                        "instead of failing on missing runs; a figure without any runs is skipped with a "
                        "warning and its file from an earlier report removed")
    report.add_argument("--verify-code", choices=VERIFY_CODE_MODES, default=None,
                        help="code fingerprint check of every record: current (equal to this code's) or grid "
                        "(equal across all records); default: the config's verify_code")
    report.set_defaults(func=_report)

    accept = commands.add_parser(
        "accept-code",
        help="after a code change known not to alter results: record the current code fingerprint "
        "without making the training jobs outdated (docs/config.md, 'Code changes')",
    )
    accept.add_argument("--file", default="results/code_fingerprint.txt",
                        help="the workflow's fingerprint file (default: %(default)s)")
    accept.set_defaults(func=_accept_code)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status.

    Bad input (the package raises ``ValueError`` for it, ``ConfigError`` included), a
    missing file and missing runs end in one ``error: ...`` on stderr and status 1; any
    other exception is a bug and keeps its traceback.
    """
    from gsmoe.report.aggregate import IncompleteRunsError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except IncompleteRunsError as err:
        print(f"error: {err.message('--allow-missing')}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
