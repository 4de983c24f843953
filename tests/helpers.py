"""Helpers shared by the tests: validated configs, run records, a local HTTP server, dataset sizes.

Imported by the test modules (``from helpers import ...``; ``tests/`` is on the path, see
``pythonpath`` in pyproject.toml) and wrapped in fixtures by ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gsmoe.config import raw_files, resolve_run, run_record_path, validate_config
from gsmoe.io import write_json
from gsmoe.provenance import RECORD_SCHEMA_VERSION, code_fingerprint

#: The repository's configuration, whose datasets and sources :func:`validated_config` lends.
CONFIG_YAML = Path(__file__).resolve().parents[1] / "config.yaml"

# --------------------------------------------------------------------------- configs


def validated_config(**sections: Any) -> dict[str, Any]:
    """``sections`` (experiments, tables, figures, seeds, ...) on the repository's datasets
    and sources, validated as the workflow validates it: every schema default and shorthand
    filled in, which is what the package's functions get (they restate no default)."""
    raw = yaml.safe_load(CONFIG_YAML.read_text(encoding="utf-8"))
    lent = {key: raw[key] for key in ("sources", "datasets", "checksum_overrides")}
    return validate_config({**lent, **sections})


# --------------------------------------------------------------------------- run records


def make_record(
    dataset: str, experiment: str, seed: int, last: float = 0.7, *, curve: Sequence[float] | None = None, **fields: Any
) -> dict[str, Any]:
    """A valid run record (docs/design.md, "Run record") with the fields the report reads.

    ``curve``: the paper accuracy at each evaluation, every 10 epochs (default
    ``[0.3, 0.5, last]``); its last value is ``last``.  The other accuracy curves follow it
    (test: 0.05 lower).  Metrics: paper last, best ``last + 0.01`` at epoch 20; standard test
    ``last - 0.05``, val ``last - 0.02`` at epoch 10.  ``wall_time_s`` is ``1.5 + seed``.
    ``fields`` replace top-level fields.
    """
    accuracy = [0.3, 0.5, last] if curve is None else [float(a) for a in curve]
    last = accuracy[-1]
    record: dict[str, Any] = {
        "dataset": dataset,
        "experiment": experiment,
        "seed": seed,
        "task": "node",
        "device": "cpu",
        "curves": {
            "epoch": [10 * i for i in range(len(accuracy))],
            "train_loss": [1.0 / (i + 1) for i in range(len(accuracy))],
            "train_acc": list(accuracy),
            "val_acc": list(accuracy),
            "test_acc": [a - 0.05 for a in accuracy],
            "paper_acc": list(accuracy),
        },
        "metrics": {
            "paper": {"last": last, "best": last + 0.01, "best_epoch": 20},
            "standard": {"test": last - 0.05, "val": last - 0.02, "epoch": 10},
        },
        "wall_time_s": 1.5 + seed,
        "num_parameters": 1000,
        "active_parameters": 800,
    }
    record.update(fields)
    return record


def write_records(runs_dir: Path, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Write each record where the train rule puts it below ``runs_dir``; the paths."""
    paths = []
    for record in records:
        path = run_record_path(str(runs_dir), record["dataset"], record["experiment"], record["seed"])
        write_json(path, record)
        paths.append(path)
    return paths


def data_checksums(config: Mapping[str, Any], dataset: str) -> dict[str, dict[str, Any]]:
    """The raw-file checksums a dataset prepared from the config's files carries."""
    return {s["relpath"]: {"sha256": s["sha256"], "members": dict(s["members"])} for s in raw_files(config, dataset)}


def with_provenance(record: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` as a training job writes it for ``config``: the run-record schema version,
    the run's resolved config and the provenance of the current code and of the config's raw
    files, so that it passes the verification of ``report`` and the aggregate rule."""
    dataset, experiment, seed = record["dataset"], record["experiment"], int(record["seed"])
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        **record,
        "config": resolve_run(config, dataset, experiment, seed),
        "provenance": {"code": code_fingerprint(), "data": data_checksums(config, dataset)},
    }


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Response:
    """What the test server sends for one path: ``body`` after a ``Content-Length`` of
    ``length`` (default: the body's; more announces a transfer cut short), then, if
    ``stall``, nothing more until the server stops."""

    body: bytes
    length: int | None = None
    stall: bool = False


@contextlib.contextmanager
def http_server(routes: Mapping[str, Response]) -> Iterator[str]:
    """A local HTTP server answering ``routes`` (404 elsewhere), in a thread; its base URL."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            response = routes.get(self.path)
            if response is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(response.body) if response.length is None else response.length))
            self.end_headers()
            self.wfile.write(response.body)
            self.wfile.flush()
            if response.stall:
                release.wait(120)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        release.set()  # stalled handlers return, so that shutdown does not wait for them
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------- datasets


def dataset_sizes(dataset: Any) -> dict[str, int]:
    """Sizes that identify a prepared PyG dataset: graphs, nodes, edges, features, classes
    and, where the data has masks, the train/val/test mask sizes."""
    data = dataset._data  # noqa: SLF001 (the collated storage; avoids iterating 600 graphs)
    sizes = {
        "graphs": len(dataset),
        "nodes": int(data.num_nodes),
        "edges": int(data.edge_index.size(1)),
        "features": int(dataset.num_features),
        "classes": int(dataset.num_classes),
    }
    for mask in ("train_mask", "val_mask", "test_mask"):
        if mask in data:
            sizes[mask.removesuffix("_mask")] = int(data[mask].sum())
    return sizes
