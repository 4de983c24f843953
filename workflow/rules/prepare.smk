# Raw files -> PyG folder (raw/ + processed/), once per dataset; training only reads it.
rule prepare:
    input:
        prepare_input,
    output:
        "resources/pyg/{dataset}/{pyg_name}/processed/data.pt",
        str(manifest_path("resources/pyg/{dataset}/{pyg_name}/processed/data.pt")),
    log:
        "logs/prepare/{dataset}/{pyg_name}.log",
    benchmark:
        "benchmarks/prepare/{dataset}/{pyg_name}.tsv"
    conda:
        "../../envs/gsmoe.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        source=lambda wildcards: config["datasets"][wildcards.dataset]["source"],
        root=lambda wildcards: pyg_root(wildcards.dataset),
        verified_members=lambda wildcards: verified_members(config, wildcards.dataset),
        checksums=lambda wildcards: raw_checksums(wildcards.dataset),
    message:
        "prepare {wildcards.dataset}: raw files -> PyG dataset {output}"
    script:
        "../scripts/prepare.py"
