# runs.csv -> the paper's section 6.4 claims with paired statistics (claims.md, claims.csv).
rule claims:
    input:
        "results/runs.csv",
    output:
        md=report(
            "results/claims.md",
            caption="../report/claims.rst",
            category="Claims",
        ),
        csv="results/claims.csv",
    log:
        "logs/claims/claims.log",
    benchmark:
        "benchmarks/claims/claims.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        config=lambda wildcards: {
            key: config[key]
            for key in (
                "datasets",
                "experiments",
                "claims",
                "claims_alpha",
                "references",
            )
        },
    script:
        "../scripts/claims.py"
