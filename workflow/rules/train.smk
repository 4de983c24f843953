# One JSON run record per (dataset, experiment, seed).  With seeds_per_job == 1 this is
# one rule `train` with a {seed} wildcard; otherwise one rule per chunk of seeds
# (train_seeds_<first>_<last>) whose job trains the chunk's seeds in one process.
for _name, _seeds in TRAIN_JOBS:

    rule:
        name:
            _name
        input:
            unpack(train_input),
        output:
            train_outputs(_seeds),
        log:
            f"logs/train/{train_stem(_seeds)}.log",
        benchmark:
            f"benchmarks/train/{train_stem(_seeds)}.tsv"
        retries: 1
        conda:
            "../../envs/gsmoe.yaml"
        threads: config["threads_per_job"]
        resources:
            mem_mb=lambda wildcards, attempt: 3000 * attempt,
            runtime=train_runtime(_seeds),
            gpu=1 if config["gpu"] else 0,
        params:
            runs=train_runs_param(_seeds),
            root=lambda wildcards: pyg_root(wildcards.dataset),
            device=config["device"],
        message:
            train_message(_seeds)
        script:
            "../scripts/train.py"


# Target rules: `snakemake --cores all dataset_Cora` trains every run of one dataset.
for _dataset in DATASETS:

    rule:
        name:
            f"dataset_{_dataset}"
        input:
            dataset_run_paths(_dataset),
        localrule: True
        message:
            f"every run on {_dataset}"
