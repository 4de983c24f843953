"""Run records with provenance for tests that aggregate them against a config.

``python -m gsmoe report`` and the aggregate rule verify every record against the run it
stands for (gsmoe.report.verify); a hand-made record passes when it carries what
``gsmoe.train.train_and_save`` writes: the schema version, the run's resolved config and
the provenance of the current code and of the config's raw files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gsmoe.config import raw_files, resolve_run
from gsmoe.provenance import RECORD_SCHEMA_VERSION, code_fingerprint


def data_checksums(config: Mapping[str, Any], dataset: str) -> dict[str, dict[str, Any]]:
    """The raw-file checksums a dataset prepared from the config's files carries."""
    return {spec["relpath"]: {"sha256": spec["sha256"], "members": dict(spec["members"])} for spec in raw_files(config, dataset)}


def with_provenance(record: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` (dataset, experiment, seed, metrics ...) as a training job writes it for ``config``."""
    dataset, experiment, seed = record["dataset"], record["experiment"], int(record["seed"])
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        **record,
        "config": resolve_run(config, dataset, experiment, seed),
        "provenance": {"code": code_fingerprint(), "data": data_checksums(config, dataset)},
    }
