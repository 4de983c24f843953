"""Command line: ``python -m gsmoe <command>`` (or the ``gsmoe`` entry point).

The Snakemake rules call the same package functions through their scripts; this CLI is
for people: fetch and prepare a dataset, extract its roles, or train one run from a
config file without Snakemake.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gsmoe.config import load_config, raw_files, resolve_run


def _fetch(args: argparse.Namespace) -> None:
    from gsmoe.datasets import prepare_dataset
    from gsmoe.download import fetch

    config = load_config(args.config)
    spec = config["datasets"][args.dataset]
    paths = []
    for item in raw_files(config, args.dataset):
        dest = Path(args.raw_dir) / spec["source"] / item["relpath"]
        if not dest.exists():
            print(f"fetching {item['url']} -> {dest}", file=sys.stderr)
            fetch(item["url"], dest, sha256=item.get("sha256"), members=item.get("members"))
        paths.append(dest)
    prepare_dataset(spec["source"], spec["pyg_name"], paths, Path(args.root))
    print(f"{args.dataset} prepared in {args.root}", file=sys.stderr)


def _roles(args: argparse.Namespace) -> None:
    from gsmoe.datasets import load_dataset
    from gsmoe.roles import dataset_roles, save_roles

    config = load_config(args.config)
    spec = config["datasets"][args.dataset]
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
    train.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    train.set_defaults(func=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0
