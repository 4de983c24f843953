# GraphRole role distributions of every graph of a dataset (for the roles gate).
rule roles:
    input:
        lambda wildcards: prepared_path(wildcards.dataset),
    output:
        "results/roles/{dataset}.npz",
    log:
        "logs/roles/{dataset}.log",
    benchmark:
        "benchmarks/roles/{dataset}.tsv"
    conda:
        "../../envs/gsmoe.yaml"
    threads: config["roles"]["workers"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        source=lambda wildcards: config["datasets"][wildcards.dataset]["source"],
        pyg_name=lambda wildcards: config["datasets"][wildcards.dataset]["pyg_name"],
        root=lambda wildcards: pyg_root(wildcards.dataset),
        n_roles=config["roles"]["n_roles"],
        seed=config["roles"]["seed"],
    message:
        "roles {wildcards.dataset}: GraphRole, {params.n_roles} roles per node, {threads} worker(s); log {log}"
    script:
        "../scripts/roles.py"
