# runs.csv -> the paper's section 6.4 claims with paired statistics (claims.md, claims.csv).
rule claims:
    input:
        "results/runs.csv",
    output:
        md=report(
            "results/claims.md",
            caption="../report/claims.rst",
            category="Claims",
            labels={"claims": "section 6.4", "format": "Markdown"},
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
        datasets=DATASETS,
        experiments={
            e: {"paper": cfg["paper"]} for e, cfg in config["experiments"].items()
        },
        claims=config["claims"],
        claims_alpha=config["claims_alpha"],
        claims_design=config["claims_design"],
        seeds=config["seeds"],
        references=config["references"],
    message:
        "claims: the paper's claims, paired tests -> {output.md}, {output.csv}"
    script:
        "../scripts/claims.py"


# claims.csv -> the claims with verdicts and intervals as an HTML page, shown in the report.
rule claims_html:
    input:
        "results/claims.csv",
    output:
        report(
            "results/claims.html",
            caption="../report/claims.rst",
            category="Claims",
            labels={"claims": "section 6.4", "format": "HTML"},
        ),
    log:
        "logs/claims/claims_html.log",
    benchmark:
        "benchmarks/claims/claims_html.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        protocols=lambda wildcards: protocols_text(),
    message:
        "claims as HTML for the report, verdicts and intervals -> {output}"
    script:
        "../scripts/claims_html.py"
