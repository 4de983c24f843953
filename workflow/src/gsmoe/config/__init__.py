"""Load and check the workflow configuration; resolve one run's config; the run table.

The workflow (``workflow/rules/common.smk``) and the unit tests both go through
:func:`validate_config` (or :func:`load_config`), so every rule sees a configuration that

1. passed ``workflow/schemas/config.schema.yaml`` (:mod:`gsmoe.config.schema`; a failure
   names the key path and the fix),
2. passed the checks a JSON schema cannot express (:mod:`gsmoe.config.semantics`, the
   claims in :mod:`gsmoe.config.claims`), every problem reported at once, and the values
   that would make results meaningless (:func:`check_meaningful_values`),
3. has every schema default filled in, ``mirror`` made absolute, and the "null = all"
   shorthands (``experiments.<e>.datasets``, ``tables.<t>.columns``, row labels, a graph
   dataset's ``split``) expanded.

Runs of such a config (:mod:`gsmoe.config.runs`): :func:`resolve_run`, :func:`run_table`,
raw files and paths.  Torch-, pandas- and scipy-free: the report stage validates too.
"""

from gsmoe.config.load import load_config, validate_config
from gsmoe.config.runs import (
    dataset_config,
    experiment_datasets,
    needs_roles,
    raw_file_key,
    raw_files,
    regex_alternatives,
    resolve_run,
    run_record_path,
    run_table,
    seed_chunks,
    verified_members,
)
from gsmoe.config.schema import (
    SCHEMA_PATH,
    ConfigError,
    load_schema,
    model_defaults,
    schema_error_message,
    split_defaults,
)
from gsmoe.config.semantics import check_meaningful_values, semantic_errors

__all__ = [
    "SCHEMA_PATH",
    "ConfigError",
    "load_config",
    "load_schema",
    "validate_config",
    "schema_error_message",
    "semantic_errors",
    "check_meaningful_values",
    "model_defaults",
    "dataset_config",
    "resolve_run",
    "run_record_path",
    "run_table",
    "raw_files",
    "verified_members",
    "raw_file_key",
    "needs_roles",
    "seed_chunks",
    "experiment_datasets",
    "regex_alternatives",
    "split_defaults",
]
