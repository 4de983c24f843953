# Configuration, run table, input functions and wildcard constraints.  The logic lives
# in gsmoe.config (unit-tested); this file only wires it into the workflow.
import copy
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# ---------------------------------------------------------------- the package on the path
# This process imports gsmoe (workflow/src) from the checkout; job scripts put the same
# folder first on their sys.path (PYTHONPATH would not do: conda envs block it).
GSMOE_SRC = str(Path(workflow.basedir, "workflow", "src").resolve())
if GSMOE_SRC not in sys.path:
    sys.path.insert(0, GSMOE_SRC)

from gsmoe.config import (
    ConfigError,
    needs_roles,
    raw_files,
    regex_alternatives,
    resolve_run,
    run_record_path,
    run_table,
    seed_chunks,
    validate_config,
    verified_members,
)
from gsmoe.provenance import (
    DamagedDatasetError,
    check_prepared,
    manifest_path,
    update_code_fingerprint_file,
)
from gsmoe.overlay import OverlayError, resolve_base
from gsmoe.report.evaluation_sets import protocol_descriptions, run_datasets

# ---------------------------------------------------------------- config
# A --configfile is a complete config on its own: it replaces config.yaml instead of being
# merged into it, so that a test config with fewer datasets really has fewer.  It may be an
# overlay that names its `base:` files (tests/workflow/config_smoke.yaml: config.yaml and
# the mirror's file, gsmoe.overlay), resolved against the repository root.  --config
# key=value still overrides single keys.  (Snakemake's --replace-workflow-config does the
# same but is not passed on to cluster jobs.)  If the result is invalid, the error also
# names the top-level keys of config.yaml that it lacks (a partial file meant as an overlay).
_DEFAULT_KEYS = set(config) if workflow.overwrite_configfiles else set()
if workflow.overwrite_configfiles:
    config.clear()
    config.update(copy.deepcopy(dict(workflow.config_settings.overwrite_config)))
try:
    _resolved = resolve_base(config, workflow.basedir)
except OverlayError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_resolved)
_DROPPED_KEYS = sorted(_DEFAULT_KEYS - set(config))


def config_error(err):
    """WorkflowError of a ConfigError; says so when a --configfile left out keys of config.yaml."""
    message = str(err)
    if _DROPPED_KEYS:
        files = " ".join(str(f) for f in workflow.overwrite_configfiles)
        message += (
            f"\nconfig: --configfile {files} replaces config.yaml instead of being merged into "
            f"it, so these keys of config.yaml are not set: {', '.join(_DROPPED_KEYS)}. To "
            f"change only some keys of config.yaml, pass --configfile config.yaml {files}, "
            "or name it in the file: base: config.yaml (docs/config.md, Overlays)"
        )
    return WorkflowError(message)


# One validation (workflow/schemas/config.schema.yaml, then the semantic checks), every
# error at once, each naming its key path and the fix.
try:
    _checked = validate_config(config, base_dir=workflow.basedir)
except ConfigError as err:
    raise config_error(err) from None
config.clear()
config.update(_checked)  # defaults filled, mirror absolute, "null = all" expanded

# ---------------------------------------------------------------- code fingerprint
# The hash of the package sources (gsmoe.provenance), an input of every training job.  It is
# rewritten only when the code changed, so Snakemake retrains then, whatever its metadata
# says (its `code` trigger sees the rule scripts, not the package).  For a change known not
# to alter results: `python -m gsmoe accept-code` (docs/config.md, "Code changes").
CODE_FINGERPRINT = "results/code_fingerprint.txt"
update_code_fingerprint_file(CODE_FINGERPRINT, Path(GSMOE_SRC, "gsmoe"))

DATASETS = list(config["datasets"])
EXPERIMENTS = list(config["experiments"])
SEEDS = [int(s) for s in config["seeds"]]
RUNS = run_table(config)
TABLES = list(config["tables"])
FIGURES = list(config["figures"])

# every raw file, keyed by (source, relpath)
RAW = {
    (config["datasets"][d]["source"], f["relpath"]): f
    for d in DATASETS
    for f in raw_files(config, d)
}
# train jobs: one generic rule with a {seed} wildcard, or one rule per chunk of seeds
if config["seeds_per_job"] == 1:
    TRAIN_JOBS = [("train", None)]
else:
    TRAIN_JOBS = [
        (f"train_seeds_{chunk[0]}_{chunk[-1]}", chunk)
        for chunk in seed_chunks(SEEDS, config["seeds_per_job"])
    ]


wildcard_constraints:
    dataset=regex_alternatives(DATASETS),
    experiment=regex_alternatives(EXPERIMENTS),
    seed=r"\d+",
    source=regex_alternatives(config["sources"]),
    relpath=regex_alternatives(sorted({relpath for _, relpath in RAW})),
    pyg_name=regex_alternatives(
        sorted({config["datasets"][d]["pyg_name"] for d in DATASETS})
    ),
    figure=regex_alternatives(FIGURES),


# ---------------------------------------------------------------- paths
def raw_path(source, relpath):
    return f"resources/raw/{source}/{relpath}"


def dataset_raw_paths(dataset):
    ds = config["datasets"][dataset]
    return [raw_path(ds["source"], f["relpath"]) for f in ds["files"]]


def pyg_root(dataset):
    return f"resources/pyg/{dataset}"


def prepared_path(dataset):
    """PyG's processed file: the output of the prepare rule."""
    return f"{pyg_root(dataset)}/{config['datasets'][dataset]['pyg_name']}/processed/data.pt"


def prepared_manifest_path(dataset):
    """The raw-file checksums and the processed file's size and hash, written by prepare."""
    return str(manifest_path(prepared_path(dataset)))


def roles_path(dataset):
    return f"results/roles/{dataset}.npz"


def run_path(dataset, experiment, seed):
    return run_record_path("results/runs", dataset, experiment, seed)


def all_run_paths():
    return [run_path(r["dataset"], r["experiment"], r["seed"]) for r in RUNS]


def dataset_run_paths(dataset):
    return [run_path(**r) for r in RUNS if r["dataset"] == dataset]


def table_paths():
    return [f"results/tables/{t}.tex" for t in TABLES] + ["results/tables/tables.tex"]


def figure_paths():
    return [f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")]


def figure_run_paths(figure):
    fig = config["figures"][figure]
    return [run_path(fig["dataset"], e, s) for e in fig["experiments"] for s in SEEDS]


def html_paths():
    """The results as HTML pages for the report (rules summary_html, tables_html, claims_html)."""
    tables = [f"results/tables/{t}.html" for t in TABLES]
    return ["results/summary.html", *tables, "results/claims.html"]


def final_outputs():
    """Inputs of the default target: summary, claims, tables, figures (and so every run)."""
    return [
        "results/summary.csv",
        "results/claims.md",
        *table_paths(),
        *figure_paths(),
        *html_paths(),
    ]


# ---------------------------------------------------------------- report parameters
# A report item's "Job parameters" panel lists its job's params: pass what the job reads.
def experiment_labels():
    """{experiment: label} in config order."""
    return {e: cfg["label"] for e, cfg in config["experiments"].items()}


def table_report_label(table):
    """A table's label in the report's Tables category: its key and its title."""
    return f"{table}: {config['tables'][table]['title']}"


def experiment_labels_and_papers():
    """{experiment: {label, paper: {dataset: value}}}: row labels and the paper's values."""
    return {
        e: {"label": label, "paper": config["experiments"][e]["paper"]}
        for e, label in experiment_labels().items()
    }


# ---------------------------------------------------------------- input functions
def download_spec(wildcards):
    """url, sha256 and members of one raw file (mirror and checksum_overrides applied)."""
    return RAW[(wildcards.source, wildcards.relpath)]


def raw_checksums(dataset):
    """The prepare rule's checksums: relpath, sha256, members of each raw file (no URL, so
    that moving the mirror does not prepare again)."""
    return [
        {key: spec[key] for key in ("relpath", "sha256", "members")}
        for spec in raw_files(config, dataset)
    ]


def prepare_input(wildcards):
    if config["datasets"][wildcards.dataset]["pyg_name"] != wildcards.pyg_name:
        raise WorkflowError(
            f"resources/pyg/{wildcards.dataset}/{wildcards.pyg_name}: dataset "
            f"{wildcards.dataset} has pyg_name {config['datasets'][wildcards.dataset]['pyg_name']}"
        )
    return dataset_raw_paths(wildcards.dataset)


_INTACT = {}


def check_prepared_size(dataset):
    """Fail before scheduling any training job when a prepared file has another size than
    prepare wrote (a truncated data.pt would fail every job, each attempt, alike)."""
    path, manifest = prepared_path(dataset), prepared_manifest_path(dataset)
    if not (Path(path).is_file() and Path(manifest).is_file()):
        return  # prepare (re)builds it
    key = (path, Path(path).stat().st_mtime_ns, Path(path).stat().st_size)
    if key not in _INTACT:
        try:
            check_prepared(path, hash_contents=False)
        except DamagedDatasetError as err:
            raise WorkflowError(str(err)) from None
        _INTACT[key] = True


def train_input(wildcards):
    """The prepared dataset and its manifest, the code fingerprint, plus the roles table when
    the experiment uses the roles gate."""
    check_prepared_size(wildcards.dataset)
    inputs = {
        "dataset": prepared_path(wildcards.dataset),
        "manifest": prepared_manifest_path(wildcards.dataset),
        "code": CODE_FINGERPRINT,
    }
    if needs_roles(config, wildcards.dataset, wildcards.experiment):
        inputs["roles"] = roles_path(wildcards.dataset)
    return inputs


def train_outputs(seeds):
    if seeds is None:
        return [run_path("{dataset}", "{experiment}", "{seed}")]
    return [run_path("{dataset}", "{experiment}", s) for s in seeds]


def train_stem(seeds):
    """Log/benchmark name of a train job: seed{seed} or seeds<first>-<last>."""
    if seeds is None:
        return "{dataset}/{experiment}/seed{seed}"
    return f"{{dataset}}/{{experiment}}/seeds{seeds[0]}-{seeds[-1]}"


def train_runs_param(seeds):
    """params.runs of a train job: the resolved run configs, one per output."""

    def runs(wildcards):
        job_seeds = [int(wildcards.seed)] if seeds is None else seeds
        return [
            resolve_run(config, wildcards.dataset, wildcards.experiment, s)
            for s in job_seeds
        ]

    return runs


def train_runtime(seeds):
    """Minutes for a train job: 30 per seed, times the attempt number (1, 2, 3, ...)."""
    n = 1 if seeds is None else len(seeds)
    return lambda wildcards, attempt: 30 * n * attempt


def protocols_text():
    """{protocol: what it measures on the datasets that run}: captions and HTML pages."""
    return protocol_descriptions(run_datasets(config))


def train_message(seeds):
    """`message:` of a train job: what it trains, for how many epochs, and its log."""
    if seeds is None:
        which = "seed {wildcards.seed}"
    elif seeds == list(range(seeds[0], seeds[-1] + 1)):
        which = (
            f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
        )
    else:
        which = "seeds " + ", ".join(str(s) for s in seeds)
    return (
        f"train {{wildcards.dataset}} {{wildcards.experiment}} {which}, "
        "{params.runs[0][training][epochs]} epochs; log {log}"
    )
