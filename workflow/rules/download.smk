# One job per raw file, verified against its SHA-256 (or its zip members) before it lands.
rule download:
    output:
        "resources/raw/{source}/{relpath}",
    log:
        "logs/download/{source}/{relpath}.log",
    benchmark:
        "benchmarks/download/{source}/{relpath}.tsv"
    retries: 2
    localrule: True
    conda:
        "../../envs/gsmoe.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 500 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
    params:
        spec=download_spec,
    message:
        "download {wildcards.source}/{wildcards.relpath} from {params.spec[url]}, checksum-verified"
    script:
        "../scripts/download.py"
